"""Synthetic 6-month-old infant head phantoms for tests, the demo and training smoke runs.

Real infant data are gated, so the test suite and the README demo need data that look enough
like an isointense-phase (about 6 months) T1w/T2w pair to exercise the whole pipeline:

* geometry, in a head frame (mm, RAS, origin at the brain centre): an ellipsoidal brain hull
  with gentle bumps, an extra-cerebral CSF layer, skull and scalp shells; inside the hull a
  folded cortex: sulci are CSF clefts along the zero set of a smooth random field on the
  sphere, the cortical GM ribbon is every brain voxel within ``cortex_mm`` (2-3 mm, Euclidean,
  from a distance transform) of CSF, so it follows the folds and lines the interhemispheric
  fissure; WM fills the rest, with lateral ventricles (CSF) and deep GM nuclei inside;
* contrast of the isointense phase: GM and WM means within a few percent in T1w, CSF dark in
  T1w and bright in T2w, WM slightly darker than GM in T2w; intra-tissue texture, Gaussian
  partial-volume blur, a smooth multiplicative bias field and Rician noise.

The same subject renders into two forms, each with its own grids:

* the preprocessed iSeg form: skull-stripped T1/T2 and labels on one 1 mm grid
  (:func:`make_iseg_subject`, :func:`write_iseg_dataset`);
* the raw BIDS form: T1w with skull at 0.8-1 mm, T2w on a different grid (voxel size, FOV,
  sometimes orientation) with the head moved by a known rigid transform, oblique or
  left-right-flipped affines for some subjects, plus a manual ``dseg`` derivative in T1w space
  (:func:`make_bids_subject`, :func:`write_bids_dataset`).

Everything is drawn from ``numpy.random.Generator`` streams spawned from ``(seed, index)``, so
a subject is the same whichever form is rendered first and however many subjects are made.
Labels inside arrays use the model coding (0 bg, 1 CSF, 2 GM, 3 WM; skull and scalp are
background); writers convert to the iSeg (0/10/150/250) or NiPreps (1 GM, 2 WM, 3 CSF) coding.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from .. import __version__
from ..images import write_atomic
from ..labels import NIPREPS_DSEG_TSV, from_model

logger = logging.getLogger(__name__)

#: default iSeg-form grid (1 mm): LR x AP x SI
DEFAULT_SHAPE: tuple[int, int, int] = (96, 112, 96)
#: smallest grid side that still leaves room for a folded cortex and ventricles
MIN_SIDE = 32

# internal tissue classes (rendering only); labels map them onto the model coding
AIR, CSF, GM, WM, SKULL, SCALP, DEEP_GM = range(7)
_LABEL_OF_CLASS = np.array([0, 1, 2, 3, 0, 0, 2], dtype=np.uint8)
ORIENTATIONS = ("ras", "las", "oblique")
SESSION = "01"
_INTENSITY_SCALE = 1000.0


# --------------------------------------------------------------------------------------------
# random building blocks


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


# --------------------------------------------------------------------------------------------
# subject description


@dataclass(frozen=True)
class Anatomy:
    """Geometry of one head in its own frame (mm, RAS, origin at the brain centre)."""

    brain_axes: np.ndarray  # semi-axes of the brain hull
    hull_bump_amp: float
    hull_bumps: SphereField
    extra_csf_mm: float
    extra_csf_field: SphereField
    skull_mm: float
    scalp_mm: float
    cortex_mm: float
    sulcal_depth_mm: float
    sulcal_half_width_mm: float  # of the CSF cleft, at the brain surface
    folds: SphereField  # sulci run along its zero set
    sulcal_depth_field: SphereField  # modulates the depth along each sulcus
    fissure_half_width_mm: float
    fissure_floor_mm: float  # the corpus callosum's top, above which the hemispheres part
    callosum_half_length_mm: float
    ventricles: tuple[Ellipsoid, ...]
    deep_gm: tuple[Ellipsoid, ...]

    def head_semi_axes(self) -> np.ndarray:
        """Semi-axes of an ellipsoid that contains the whole head (scalp included)."""
        outer = self.extra_csf_mm * 1.5 + self.skull_mm + self.scalp_mm + 1.0
        return self.brain_axes * (1 + self.hull_bump_amp) + outer


@dataclass(frozen=True)
class Contrast:
    """Mean intensity per internal class and the degradation parameters of one subject."""

    t1w: tuple[float, ...]  # indexed by class: AIR, CSF, GM, WM, SKULL, SCALP, DEEP_GM
    t2w: tuple[float, ...]
    blur_mm: float
    noise: float  # Rician sigma relative to the mean of GM and WM
    bias: float  # amplitude of the log bias field
    texture: float  # relative amplitude of the smooth intra-tissue texture


@dataclass(frozen=True)
class Acquisition:
    """Raw BIDS grids: voxel sizes, orientations, FOV margins and the T1w -> T2w head motion."""

    orientation: str  # "ras", "las" (left-right flipped) or "oblique"
    t1w_voxel: tuple[float, float, float]
    t2w_voxel: tuple[float, float, float]
    t1w_rotation: np.ndarray  # grid axes in T1w world (may be improper: flipped)
    t2w_rotation: np.ndarray
    t1w_margin_mm: float
    t2w_margin_mm: float
    t1w_offset_mm: np.ndarray
    t2w_offset_mm: np.ndarray
    t1w_to_t2w: np.ndarray  # 4x4 rigid: T1w scanner mm -> T2w scanner mm of the same point


@dataclass(frozen=True)
class PhantomSubject:
    """Everything that defines one synthetic subject; rendering adds only noise."""

    seed: int
    index: int
    age_months: float
    sex: str
    shape: tuple[int, int, int]  # the iSeg-form grid (1 mm)
    anatomy: Anatomy
    contrast: Contrast
    acquisition: Acquisition

    @property
    def participant(self) -> str:
        """BIDS participant label (without ``sub-``), 1-based and zero-padded."""
        return f"{self.index + 1:02d}"

    @property
    def iseg_number(self) -> int:
        """Number in the iSeg file names ``subject-N-*``, 1-based."""
        return self.index + 1

    def rng(self, purpose: str) -> np.random.Generator:
        """Independent generator for one rendering step, reproducible in any call order."""
        purposes = ("iseg", "t1w", "t2w")
        return np.random.default_rng([self.seed, self.index, 1 + purposes.index(purpose)])


def _check_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    values = tuple(int(s) for s in shape)
    if len(values) != 3 or any(s < MIN_SIDE for s in values):
        raise ValueError(
            f"phantom shape must be three sides of at least {MIN_SIDE} voxels, got {tuple(shape)}"
        )
    return values  # type: ignore[return-value]


def _sample_anatomy(rng: np.random.Generator, shape: tuple[int, int, int]) -> Anatomy:
    # extra-cerebral CSF is thinner on small test grids, else it would dominate their volume
    size = float(np.clip(min(shape) / 90.0, 0.5, 1.0))
    extra_csf = 1.0 + rng.uniform(0.2, 1.2) * size
    bump = rng.uniform(0.02, 0.04)
    # the brain mask (extra-cerebral CSF included) fills most of the grid but never touches it
    room = np.asarray(shape, dtype=float) / 2 - 1.5 * extra_csf - 1.5
    a = room * rng.uniform(0.9, 0.98, 3) / (1 + bump)
    mean_r = float(a.mean())
    cortex = rng.uniform(2.2, 3.0)
    ventricles, deep_gm = [], []
    for side in (-1.0, 1.0):
        # lateral ventricles: elongated front to back, just off the midline, yawed outwards
        yaw = rotation_matrix((0, 0, 1), side * rng.uniform(3, 10))
        centre = a * [
            side * rng.uniform(0.12, 0.17),
            rng.uniform(-0.1, 0.0),
            rng.uniform(-0.05, 0.05),
        ]
        axes = a * [rng.uniform(0.05, 0.08), rng.uniform(0.28, 0.38), rng.uniform(0.08, 0.12)]
        ventricles.append(Ellipsoid(centre, np.maximum(axes, 1.2), yaw))
        # deep GM (thalamus / basal ganglia): lateral and below the ventricles
        centre = a * [
            side * rng.uniform(0.18, 0.24),
            rng.uniform(-0.12, -0.02),
            rng.uniform(-0.3, -0.2),
        ]
        axes = a * [rng.uniform(0.10, 0.14), rng.uniform(0.14, 0.20), rng.uniform(0.10, 0.14)]
        deep_gm.append(Ellipsoid(centre, axes, np.eye(3)))
    # sulci about 8-11 mm apart whatever the brain size (zero-set spacing ~ pi r / frequency)
    fold_freq = (np.pi * mean_r / 11.0, np.pi * mean_r / 8.0)
    return Anatomy(
        brain_axes=a,
        hull_bump_amp=bump,
        hull_bumps=SphereField.sample(rng, 8, (1.0, 2.5)),
        extra_csf_mm=extra_csf,
        extra_csf_field=SphereField.sample(rng, 8, (1.0, 3.0)),
        skull_mm=rng.uniform(1.5, 2.5),
        scalp_mm=rng.uniform(2.5, 4.0),
        cortex_mm=cortex,
        sulcal_depth_mm=mean_r * rng.uniform(0.24, 0.3),
        sulcal_half_width_mm=rng.uniform(0.5, 0.8),
        folds=SphereField.sample(rng, 24, fold_freq),
        sulcal_depth_field=SphereField.sample(rng, 8, (2.0, 4.0)),
        fissure_half_width_mm=0.8,
        fissure_floor_mm=a[2] * rng.uniform(0.3, 0.38) + cortex + 1.0,
        callosum_half_length_mm=a[1] * rng.uniform(0.35, 0.45),
        ventricles=tuple(ventricles),
        deep_gm=tuple(deep_gm),
    )


def _sample_contrast(rng: np.random.Generator) -> Contrast:
    gm1, gm2 = rng.uniform(0.60, 0.66), rng.uniform(0.55, 0.62)
    # GM loses a few percent to partial volume with CSF: WM is drawn slightly darker than GM
    t1 = (0.0, rng.uniform(0.25, 0.35), gm1, gm1 * rng.uniform(0.92, 0.97), 0.12, 0.85, gm1 * 1.04)
    t2 = (0.0, rng.uniform(0.90, 1.00), gm2, gm2 * rng.uniform(0.85, 0.93), 0.10, 0.45, gm2 * 0.95)
    return Contrast(
        t1w=tuple(float(v) for v in t1),
        t2w=tuple(float(v) for v in t2),
        blur_mm=rng.uniform(0.4, 0.7),
        noise=rng.uniform(0.015, 0.035),
        bias=rng.uniform(0.05, 0.15),
        texture=0.02,
    )


def _sample_acquisition(rng: np.random.Generator, index: int) -> Acquisition:
    orientation = ORIENTATIONS[index % len(ORIENTATIONS)]
    v1 = float(rng.choice([0.8, 0.9, 1.0]))
    t2_options = [(1.0, 1.0, 1.0), (1.1, 1.1, 1.1), (0.9, 0.9, 1.2), (1.0, 1.0, 1.25)]
    t2_options = [v for v in t2_options if v != (v1, v1, v1)]
    v2 = t2_options[int(rng.integers(len(t2_options)))]
    if orientation == "ras":
        r1, r2 = np.eye(3), np.eye(3)
    elif orientation == "las":
        r1 = r2 = np.diag([-1.0, 1.0, 1.0])
    else:
        r1, r2 = _random_rotation(rng, (6, 15)), _random_rotation(rng, (4, 12))
    motion = np.eye(4)
    motion[:3, :3] = _random_rotation(rng, (2, 5))
    motion[:3, 3] = rng.uniform(-5, 5, 3)
    return Acquisition(
        orientation=orientation,
        t1w_voxel=(v1, v1, v1),
        t2w_voxel=v2,
        t1w_rotation=r1,
        t2w_rotation=r2,
        t1w_margin_mm=rng.uniform(6, 10),
        t2w_margin_mm=rng.uniform(10, 16),
        t1w_offset_mm=rng.uniform(-3, 3, 3),
        t2w_offset_mm=rng.uniform(-3, 3, 3),
        t1w_to_t2w=motion,
    )


def sample_subject(seed: int, index: int, shape: Sequence[int] = DEFAULT_SHAPE) -> PhantomSubject:
    """Draw subject ``index`` of the cohort generated by ``seed``.

    Parameters
    ----------
    seed : int
        Cohort seed; subjects of different seeds (or indices) differ.
    index : int
        0-based subject index.
    shape : sequence of 3 int
        iSeg-form grid at 1 mm (LR, AP, SI); the brain is scaled to fill about 80 % of it, and
        the raw BIDS grids grow around the head as needed.

    Returns
    -------
    PhantomSubject
    """
    if index < 0:
        raise ValueError(f"subject index must be non-negative, got {index}")
    shape = _check_shape(shape)
    rng = np.random.default_rng([int(seed), int(index), 0])
    anatomy = _sample_anatomy(rng, shape)
    contrast = _sample_contrast(rng)
    acquisition = _sample_acquisition(rng, index)
    age = float(np.round(np.clip(rng.normal(6.0, 0.4), 5.0, 7.0), 1))
    sex = str(rng.choice(["F", "M"]))
    return PhantomSubject(int(seed), int(index), age, sex, shape, anatomy, contrast, acquisition)


def sample_subjects(
    n_subjects: int, seed: int, shape: Sequence[int] = DEFAULT_SHAPE
) -> list[PhantomSubject]:
    """The first ``n_subjects`` subjects of the cohort ``seed`` (see :func:`sample_subject`)."""
    if n_subjects < 1:
        raise ValueError(f"n_subjects must be at least 1, got {n_subjects}")
    return [sample_subject(seed, i, shape) for i in range(n_subjects)]


# --------------------------------------------------------------------------------------------
# rendering


def _zooms(vox2mm: np.ndarray) -> np.ndarray:
    return np.linalg.norm(vox2mm[:3, :3], axis=0)


def _bounding_box(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    """Slices of the bounding box of a non-empty ``mask`` grown by ``margin`` (clamped)."""
    box = []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(j for j in range(mask.ndim) if j != axis)))
        box.append(
            slice(max(int(hit[0]) - margin, 0), min(int(hit[-1]) + 1 + margin, mask.shape[axis]))
        )
    return tuple(box)


def render_classes(anatomy: Anatomy, shape: Sequence[int], vox2head: np.ndarray) -> np.ndarray:
    """Internal tissue classes (air, CSF, GM, WM, skull, scalp, deep GM) on a voxel grid.

    Parameters
    ----------
    anatomy : Anatomy
        Head geometry.
    shape : sequence of 3 int
        Grid shape.
    vox2head : numpy.ndarray
        4x4 affine from voxel indices to the head frame (mm); its columns must be orthogonal
        (any rotation, flip and voxel size), so that the cortical ribbon, defined by a
        Euclidean distance transform with ``sampling`` = voxel size, is the same in mm on any
        grid.

    Returns
    -------
    numpy.ndarray
        ``uint8`` classes of shape ``shape``.
    """
    shape = tuple(int(s) for s in shape)
    idx = np.indices(shape, dtype=np.float32).reshape(3, -1)
    xyz = vox2head[:3, :3].astype(np.float32) @ idx + vox2head[:3, 3:4].astype(np.float32)
    del idx
    r = np.sqrt((xyz**2).sum(axis=0))
    a = anatomy.brain_axes
    extra_max = anatomy.extra_csf_mm * 1.5
    r_in = a.min() * (1 - anatomy.hull_bump_amp) - anatomy.sulcal_depth_mm - 1.0
    r_out = (
        a.max() * (1 + anatomy.hull_bump_amp)
        + extra_max
        + anatomy.skull_mm
        + anatomy.scalp_mm
        + 1.0
    )
    classes = np.full(r.shape, AIR, dtype=np.uint8)
    classes[r <= r_in] = WM  # provisional: every brain-tissue voxel starts as WM
    shell = np.flatnonzero((r > r_in) & (r < r_out))
    rs = r[shell]
    u = xyz[:, shell] / np.maximum(rs, 1e-6)
    hull = 1.0 / np.sqrt(((u / a[:, None].astype(np.float32)) ** 2).sum(axis=0))
    hull *= 1 + np.float32(anatomy.hull_bump_amp) * anatomy.hull_bumps(u)
    depth = hull - rs  # mm below the brain hull
    del hull
    cls = np.full(shell.shape, WM, dtype=np.uint8)
    outside = np.flatnonzero(depth < 0)
    extra = np.clip(
        anatomy.extra_csf_mm * (1 + 0.35 * anatomy.extra_csf_field(u[:, outside])), 1.0, extra_max
    )
    d_out = depth[outside]
    shells = np.full(outside.shape, AIR, dtype=np.uint8)
    shells[d_out > -(extra + anatomy.skull_mm + anatomy.scalp_mm)] = SCALP
    shells[d_out > -(extra + anatomy.skull_mm)] = SKULL
    shells[d_out > -extra] = CSF
    cls[outside] = shells
    # sulci: CSF clefts with parallel walls along the fold field's zero set
    near = np.flatnonzero((depth >= 0) & (depth < anatomy.sulcal_depth_mm))
    un = u[:, near]
    in_cleft = anatomy.folds.distance_to_zero_set(un) * rs[near] < anatomy.sulcal_half_width_mm
    cleft_depth = anatomy.sulcal_depth_mm * np.clip(
        0.75 + 0.25 * anatomy.sulcal_depth_field(un[:, in_cleft]), 0.3, 1.0
    )
    cleft = near[in_cleft][depth[near[in_cleft]] < cleft_depth]
    cls[cleft] = CSF
    classes[shell] = cls
    del u, un, depth, extra, d_out, shells, cls, rs
    x, y, z = xyz
    floor = np.where(np.abs(y) < anatomy.callosum_half_length_mm, anatomy.fissure_floor_mm, -np.inf)
    fissure = (np.abs(x) < anatomy.fissure_half_width_mm) & (z > floor) & (classes == WM)
    classes[fissure] = CSF
    brain = (classes == WM).reshape(shape)
    # The ribbon's distance transform only needs the brain's bounding box plus one voxel: the
    # nearest non-brain voxel of a brain voxel is never outside it (projecting onto the box
    # only brings points closer), so the result equals the full-grid one.
    box = _bounding_box(brain, margin=1)
    inner = ndimage.distance_transform_edt(brain[box], sampling=_zooms(vox2head))
    cortex = np.zeros(shape, dtype=bool)
    cortex[box] = brain[box] & (inner <= anatomy.cortex_mm)
    classes[cortex.ravel()] = GM
    for nucleus in anatomy.deep_gm:
        inside = classes == WM
        inside[inside] = nucleus.contains(xyz[:, inside])
        classes[inside] = DEEP_GM
    for ventricle in anatomy.ventricles:
        inside = (classes == WM) | (classes == DEEP_GM)
        inside[inside] = ventricle.contains(xyz[:, inside])
        classes[inside] = CSF
    return classes.reshape(shape)


def tissue_labels(classes: np.ndarray) -> np.ndarray:
    """Model-coded labels (0 bg, 1 CSF, 2 GM, 3 WM) of internal classes; skull/scalp are bg."""
    return _LABEL_OF_CLASS[classes]


def _bias_field(rng: np.random.Generator, shape: tuple[int, ...], amplitude: float) -> np.ndarray:
    """Smooth multiplicative field ``exp(p)``, ``p`` a random quadratic polynomial of the grid."""
    axes = [np.linspace(-1, 1, n, dtype=np.float32) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    terms = [x, y, z, x * x, y * y, z * z, x * y, x * z, y * z]
    coeffs = rng.normal(0, 1, len(terms))
    coeffs *= amplitude / np.sqrt((coeffs**2).sum())
    log_field = np.zeros(shape, dtype=np.float32)
    for c, t in zip(coeffs, terms, strict=True):
        log_field += np.float32(c) * t
    return np.exp(log_field - log_field.mean())


def render_image(
    classes: np.ndarray,
    contrast: Contrast,
    modality: str,
    zooms: Sequence[float],
    rng: np.random.Generator,
) -> np.ndarray:
    """A T1w or T2w image of a class map: means, texture, blur, bias field, Rician noise.

    Parameters
    ----------
    classes : numpy.ndarray
        Internal classes from :func:`render_classes`.
    contrast : Contrast
        Intensities and degradation parameters.
    modality : {"T1w", "T2w"}
        Which means to use.
    zooms : sequence of float
        Voxel size (mm), so that blur and texture are in mm whatever the grid.
    rng : numpy.random.Generator
        Source of texture, bias and noise.

    Returns
    -------
    numpy.ndarray
        ``float32`` image in units of about 1 (GM near 0.6); see :func:`to_int16`.
    """
    if modality not in ("T1w", "T2w"):
        raise ValueError(f"modality must be 'T1w' or 'T2w', got {modality!r}")
    means = np.asarray(contrast.t1w if modality == "T1w" else contrast.t2w, dtype=np.float32)
    zooms = np.asarray(zooms, dtype=float)
    image = means[classes]
    texture = ndimage.gaussian_filter(
        rng.standard_normal(classes.shape, dtype=np.float32), 1.5 / zooms
    )
    texture /= max(float(texture.std()), 1e-6)
    image *= 1 + np.float32(contrast.texture) * texture
    del texture
    image = ndimage.gaussian_filter(image, contrast.blur_mm / zooms)
    image *= _bias_field(rng, classes.shape, contrast.bias)
    sigma = np.float32(contrast.noise * 0.5 * (means[GM] + means[WM]))
    real = image + sigma * rng.standard_normal(classes.shape, dtype=np.float32)
    imag = sigma * rng.standard_normal(classes.shape, dtype=np.float32)
    return np.sqrt(real * real + imag * imag)


def to_int16(image: np.ndarray) -> np.ndarray:
    """Scale a rendered image (GM near 0.6) to the int16 range scanners write (GM near 600)."""
    return np.clip(np.rint(image * _INTENSITY_SCALE), 0, np.iinfo(np.int16).max).astype(np.int16)


@dataclass(frozen=True)
class IsegVolumes:
    """Preprocessed iSeg form of one subject: skull-stripped, co-registered, 1 mm."""

    t1: np.ndarray  # int16, 0 outside the brain
    t2: np.ndarray  # int16, 0 outside the brain
    labels: np.ndarray  # uint8, model coding
    affine: np.ndarray  # nibabel's Analyze default for the grid (LAS, centred)


@dataclass(frozen=True)
class BidsVolumes:
    """Raw BIDS form of one subject."""

    t1w: np.ndarray  # int16, with skull and scalp
    t1w_affine: np.ndarray
    t2w: np.ndarray  # int16, on its own grid
    t2w_affine: np.ndarray
    dseg: np.ndarray  # uint8, model coding, on the T1w grid
    t2w_to_t1w: np.ndarray  # 4x4: T2w scanner mm -> T1w scanner mm of the same point
    orientation: str


def iseg_affine(shape: Sequence[int]) -> np.ndarray:
    """The affine nibabel gives an Analyze file of ``shape`` at 1 mm (LAS, origin at centre).

    Rendering on exactly this grid makes the Analyze round trip lossless: what is read back
    is where the phantom was drawn.
    """
    header = nib.AnalyzeHeader()
    header.set_data_shape(tuple(int(s) for s in shape))
    header.set_zooms((1.0, 1.0, 1.0))
    return header.get_best_affine()


def make_iseg_subject(subject: PhantomSubject) -> IsegVolumes:
    """Render the preprocessed iSeg form (skull-stripped T1/T2 and labels on one 1 mm grid)."""
    affine = iseg_affine(subject.shape)
    classes = render_classes(subject.anatomy, subject.shape, affine)
    labels = tissue_labels(classes)
    rng = subject.rng("iseg")
    brain = labels > 0
    images = []
    for modality in ("T1w", "T2w"):
        image = to_int16(render_image(classes, subject.contrast, modality, (1.0, 1.0, 1.0), rng))
        image[~brain] = 0
        images.append(image)
    return IsegVolumes(images[0], images[1], labels, affine)


def _grid(
    rotation: np.ndarray,
    voxel: Sequence[float],
    centre: np.ndarray,
    head_rotation: np.ndarray,
    head_axes: np.ndarray,
    margin: float,
) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and vox->world affine of a grid covering the head ellipsoid plus ``margin``.

    The head's half-extent along a grid axis ``d`` is the support function of the (rotated)
    head ellipsoid, ``sqrt(Σ_j ((R_headᵀ d)_j a_j)²)``.
    """
    voxel = np.asarray(voxel, dtype=float)
    directions = head_rotation.T @ rotation
    half = np.sqrt(((directions * head_axes[:, None]) ** 2).sum(axis=0)) + margin
    shape = tuple(int(n) for n in np.ceil(2 * half / voxel))
    affine = np.eye(4)
    affine[:3, :3] = rotation * voxel[None, :]
    affine[:3, 3] = centre - affine[:3, :3] @ ((np.asarray(shape) - 1) / 2)
    return shape, affine  # type: ignore[return-value]


def make_bids_subject(subject: PhantomSubject, skull_stripped: bool = False) -> BidsVolumes:
    """Render the raw BIDS form: T1w with skull, T2w on another grid after a head motion.

    ``skull_stripped=True`` zeroes everything outside the brain in both images (each on its own
    grid), as brain-extracted inputs for ``--skull-stripped`` runs.
    """
    acq, anatomy = subject.acquisition, subject.anatomy
    head_axes = anatomy.head_semi_axes()
    shape1, affine1 = _grid(
        acq.t1w_rotation, acq.t1w_voxel, acq.t1w_offset_mm, np.eye(3), head_axes, acq.t1w_margin_mm
    )
    motion = acq.t1w_to_t2w
    shape2, affine2 = _grid(
        acq.t2w_rotation,
        acq.t2w_voxel,
        motion[:3, 3] + acq.t2w_offset_mm,
        motion[:3, :3],
        head_axes,
        acq.t2w_margin_mm,
    )
    t2w_to_t1w = np.linalg.inv(motion)
    classes1 = render_classes(anatomy, shape1, affine1)  # T1w world is the head frame
    t1w = to_int16(
        render_image(classes1, subject.contrast, "T1w", acq.t1w_voxel, subject.rng("t1w"))
    )
    dseg = tissue_labels(classes1)
    del classes1
    classes2 = render_classes(anatomy, shape2, t2w_to_t1w @ affine2)
    t2w = to_int16(
        render_image(classes2, subject.contrast, "T2w", acq.t2w_voxel, subject.rng("t2w"))
    )
    if skull_stripped:
        t1w = np.where(dseg > 0, t1w, 0).astype(t1w.dtype)
        t2w = np.where(tissue_labels(classes2) > 0, t2w, 0).astype(t2w.dtype)
    return BidsVolumes(t1w, affine1, t2w, affine2, dseg, t2w_to_t1w, acq.orientation)


# --------------------------------------------------------------------------------------------
# writers (every file appears under its final name only once complete)


def save_image_atomic(image: nib.spatialimages.SpatialImage, path: Path) -> None:
    """Save ``image`` so that no reader ever sees a partial file.

    NIfTI goes through :func:`infant_tissue.images.write_atomic`. An Analyze ``.hdr/.img``
    pair (which that function does not handle) is saved under a temporary name in the same
    folder and renamed, the ``.img`` before the ``.hdr``, so a visible header always has its
    data.
    """
    path = Path(path)
    if path.name.endswith((".nii.gz", ".nii")):
        write_atomic(image, path)
        return
    if not path.name.endswith(".hdr"):
        raise ValueError(f"{path}: unsupported image extension (expected .nii.gz, .nii or .hdr)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name[:-4]}.tmp-{os.getpid()}.hdr")
    moves = [(tmp.with_suffix(".img"), path.with_suffix(".img")), (tmp, path)]
    try:
        nib.save(image, str(tmp))
        for src, dst in moves:
            os.replace(src, dst)
    finally:
        for src, _ in moves:
            src.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Write a text file through :func:`infant_tissue.images.write_atomic`."""
    write_atomic(text, Path(path))


def _json(data: dict) -> str:
    return json.dumps(data, indent=2) + "\n"


def write_iseg_subject(
    out_dir: Path, number: int, volumes: IsegVolumes, *, analyze: bool = True, nifti: bool = False
) -> list[Path]:
    """Write ``subject-N-T1``, ``-T2`` and ``-label`` (iSeg coding 0/10/150/250).

    Parameters
    ----------
    out_dir : pathlib.Path
        Destination folder (created).
    number : int
        ``N`` in the file names.
    volumes : IsegVolumes
        From :func:`make_iseg_subject`.
    analyze, nifti : bool
        Write Analyze ``.hdr/.img`` pairs (the challenge's format) and/or ``.nii.gz``.

    Returns
    -------
    list of pathlib.Path
        The written ``.hdr`` / ``.nii.gz`` paths.
    """
    if not (analyze or nifti):
        raise ValueError("choose at least one of analyze and nifti")
    out_dir = Path(out_dir)
    arrays = {
        "T1": volumes.t1,
        "T2": volumes.t2,
        "label": from_model(volumes.labels, "iseg"),
    }
    written = []
    for kind, data in arrays.items():
        stem = out_dir / f"subject-{number}-{kind}"
        if analyze:
            path = stem.with_name(stem.name + ".hdr")
            save_image_atomic(nib.AnalyzeImage(data, volumes.affine), path)
            written.append(path)
        if nifti:
            path = stem.with_name(stem.name + ".nii.gz")
            save_image_atomic(nib.Nifti1Image(data, volumes.affine), path)
            written.append(path)
    return written


def write_iseg_dataset(
    out_dir: Path, subjects: Sequence[PhantomSubject], *, analyze: bool = True, nifti: bool = False
) -> list[Path]:
    """Render and write the iSeg form of every subject into ``out_dir``."""
    written = []
    for subject in subjects:
        logger.info("rendering iSeg subject-%d", subject.iseg_number)
        written += write_iseg_subject(
            out_dir, subject.iseg_number, make_iseg_subject(subject), analyze=analyze, nifti=nifti
        )
    return written


def _nifti(data: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=1)  # scanner
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm", "sec")
    return image


def _description(kind: str, seed: int | None, extra: dict | None = None) -> dict:
    generated = {"Name": "infant-tissue make-phantoms", "Version": __version__}
    if seed is not None:
        generated["Description"] = f"synthetic phantoms, seed {seed}"
    data = {
        "Name": "infant-tissue synthetic 6-month infant phantoms",
        "BIDSVersion": "1.9.0",
        "DatasetType": kind,
        "License": "CC0",
        "GeneratedBy": [generated],
    }
    data.update(extra or {})
    return data


_README = """Synthetic 6-month-old infant head phantoms generated by `infant-tissue make-phantoms`.

No real participant: geometry, contrast, noise and acquisition grids are drawn from a seeded
random generator. T1w and T2w are on different grids; the rigid transform mapping T2w scanner
coordinates onto T1w scanner coordinates is in each T2w sidecar (PhantomT2wToT1w).
derivatives/manual holds the ground-truth tissue segmentation (1 GM, 2 WM, 3 CSF) in T1w space.
"""


def write_bids_dataset(
    root: Path, subjects: Sequence[PhantomSubject], skull_stripped: bool = False
) -> list[Path]:
    """Render and write the raw BIDS form of ``subjects`` plus the manual ``dseg`` derivative.

    Layout::

        dataset_description.json  README  participants.tsv  participants.json
        sub-XX/sub-XX_sessions.tsv
        sub-XX/ses-01/anat/sub-XX_ses-01_T1w.nii.gz (+ .json)
        sub-XX/ses-01/anat/sub-XX_ses-01_T2w.nii.gz (+ .json with PhantomT2wToT1w)
        derivatives/manual/dataset_description.json  desc-manual_dseg.tsv
        derivatives/manual/sub-XX/ses-01/anat/sub-XX_ses-01_desc-manual_dseg.nii.gz (+ .tsv)

    Returns
    -------
    list of pathlib.Path
        Every file written.
    """
    if not subjects:
        raise ValueError("write_bids_dataset needs at least one subject")
    root = Path(root)
    seed = subjects[0].seed
    derivatives = root / "derivatives" / "manual"
    written: list[Path] = []

    def text(path: Path, content: str) -> None:
        write_text_atomic(path, content)
        written.append(path)

    def image(path: Path, img: nib.Nifti1Image) -> None:
        save_image_atomic(img, path)
        written.append(path)

    text(root / "dataset_description.json", _json(_description("raw", seed)))
    text(root / "README", _README)
    participants = ["participant_id\tage\tsex"]
    for subject in subjects:
        sub, ses = f"sub-{subject.participant}", f"ses-{SESSION}"
        logger.info("rendering BIDS %s", sub)
        volumes = make_bids_subject(subject, skull_stripped=skull_stripped)
        anat = root / sub / ses / "anat"
        prefix = f"{sub}_{ses}"
        image(anat / f"{prefix}_T1w.nii.gz", _nifti(volumes.t1w, volumes.t1w_affine))
        text(
            anat / f"{prefix}_T1w.json",
            _json({"Modality": "MR", "MagneticFieldStrength": 3, "SyntheticPhantom": True}),
        )
        image(anat / f"{prefix}_T2w.nii.gz", _nifti(volumes.t2w, volumes.t2w_affine))
        text(
            anat / f"{prefix}_T2w.json",
            _json(
                {
                    "Modality": "MR",
                    "MagneticFieldStrength": 3,
                    "SyntheticPhantom": True,
                    "PhantomT2wToT1w": volumes.t2w_to_t1w.tolist(),
                    "PhantomT2wToT1wDescription": (
                        "4x4 rigid affine (RAS+, mm) mapping the T2w scanner coordinates of a point"
                        " to the T1w scanner coordinates of the same anatomical point"
                    ),
                }
            ),
        )
        text(
            root / sub / f"{sub}_sessions.tsv",
            f"session_id\tage\n{ses}\t{subject.age_months:.1f}\n",
        )
        text(
            root / sub / f"{sub}_sessions.json",
            _json({"age": {"Description": "age at the session", "Units": "months"}}),
        )
        participants.append(f"{sub}\t{subject.age_months:.1f}\t{subject.sex}")
        dseg_dir = derivatives / sub / ses / "anat"
        dseg = from_model(volumes.dseg, "nipreps")
        image(dseg_dir / f"{prefix}_desc-manual_dseg.nii.gz", _nifti(dseg, volumes.t1w_affine))
        text(dseg_dir / f"{prefix}_desc-manual_dseg.tsv", NIPREPS_DSEG_TSV)
    text(root / "participants.tsv", "\n".join(participants) + "\n")
    text(
        root / "participants.json",
        _json(
            {
                "age": {"Description": "age at the session", "Units": "months"},
                "sex": {
                    "Description": "sex of the (synthetic) participant",
                    "Levels": {"F": "female", "M": "male"},
                },
            }
        ),
    )
    text(
        derivatives / "dataset_description.json",
        _json(
            _description(
                "derivative",
                seed,
                {
                    "Name": "Ground-truth tissue segmentations of the synthetic phantoms",
                    "SourceDatasets": [{"URL": "../../"}],
                },
            )
        ),
    )
    text(derivatives / "desc-manual_dseg.tsv", NIPREPS_DSEG_TSV)
    return written
