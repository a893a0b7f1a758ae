"""Random geometric building blocks of the phantoms: smooth fields on the sphere, ellipsoids,
rotations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SphereField:
    """Smooth random function on the unit sphere: a normalised sum of plane waves.

    ``f(u) = sqrt(2/K) * Σ_k cos(ω_k d_k·u + φ_k)`` has zero mean and unit variance; its zero
    set is a network of smooth curves, which is where the sulci go.
    """

    directions: np.ndarray  # (K, 3) unit vectors
    frequencies: np.ndarray  # (K,)
    phases: np.ndarray  # (K,)

    @classmethod
    def sample(
        cls, rng: np.random.Generator, n_waves: int, freq: tuple[float, float]
    ) -> SphereField:
        directions = rng.standard_normal((n_waves, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        return cls(directions, rng.uniform(*freq, n_waves), rng.uniform(0, 2 * np.pi, n_waves))

    def __call__(self, u: np.ndarray) -> np.ndarray:
        """Evaluate at unit vectors ``u`` of shape ``(3, N)``; returns ``(N,)`` float32."""
        out = np.zeros(u.shape[1], dtype=np.float32)
        for d, w, p in zip(self.directions, self.frequencies, self.phases, strict=True):
            out += np.cos(np.float32(w) * (d.astype(np.float32) @ u) + np.float32(p))
        return out * np.float32(np.sqrt(2.0 / len(self.phases)))

    def distance_to_zero_set(self, u: np.ndarray) -> np.ndarray:
        """Approximate angular distance (radians) from ``u`` to the field's zero set.

        First-order estimate ``|f| / |∇_T f|`` with ``∇_T`` the gradient tangent to the sphere;
        times the radius it gives a distance in mm, so a sulcus ``{distance < w}`` has parallel
        walls ``2w`` apart instead of a wedge.
        """
        value = np.zeros(u.shape[1], dtype=np.float32)
        grad = np.zeros(u.shape, dtype=np.float32)
        for d, w, p in zip(self.directions, self.frequencies, self.phases, strict=True):
            phase = np.float32(w) * (d.astype(np.float32) @ u) + np.float32(p)
            value += np.cos(phase)
            grad -= (np.float32(w) * d.astype(np.float32))[:, None] * np.sin(phase)
        grad -= (grad * u).sum(axis=0) * u  # tangential part
        norm = np.sqrt((grad * grad).sum(axis=0))
        # Near critical points the gradient vanishes and the estimate would flood whole
        # patches: floor it at half its typical size, sqrt(2/3 mean(w^2)) for unit variance.
        scale = np.float32(np.sqrt(2.0 / len(self.phases)))
        floor = np.float32(0.5 * np.sqrt(2.0 / 3.0 * np.mean(self.frequencies**2)))
        return np.abs(value * scale) / np.maximum(norm * scale, floor)


@dataclass(frozen=True)
class Ellipsoid:
    """Solid ellipsoid in the head frame (ventricles, deep GM nuclei)."""

    center: np.ndarray  # (3,) mm
    semi_axes: np.ndarray  # (3,) mm
    rotation: np.ndarray  # (3, 3) columns = ellipsoid axes in the head frame

    def scaled(self, factor: float) -> Ellipsoid:
        """The same ellipsoid with its centre and axes scaled about the head origin."""
        return Ellipsoid(self.center * factor, self.semi_axes * factor, self.rotation)

    def contains(self, xyz: np.ndarray) -> np.ndarray:
        """Boolean ``(N,)`` for points ``xyz`` of shape ``(3, N)``."""
        local = self.rotation.T.astype(np.float32) @ (xyz - self.center[:, None].astype(np.float32))
        return ((local / self.semi_axes[:, None].astype(np.float32)) ** 2).sum(axis=0) <= 1.0


def rotation_matrix(axis: Sequence[float], degrees: float) -> np.ndarray:
    """Rotation by ``degrees`` about ``axis`` (Rodrigues)."""
    k = np.asarray(axis, dtype=float)
    k = k / np.linalg.norm(k)
    theta = np.deg2rad(degrees)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * cross + (1 - np.cos(theta)) * cross @ cross


def _random_rotation(rng: np.random.Generator, degrees: tuple[float, float]) -> np.ndarray:
    axis = rng.standard_normal(3)
    return rotation_matrix(axis, rng.uniform(*degrees) * rng.choice([-1.0, 1.0]))
