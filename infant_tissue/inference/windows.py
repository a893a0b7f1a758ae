"""Window positions, the reference skip rule, padding and window weights.

Everything here is pure NumPy/PyTorch on arrays and has no notion of networks or devices, so the
semantic rules of the reference code (``util/predict_funcs.py`` of 3D-MASNet) can be tested in
isolation: where windows start, which ones are evaluated, and how volumes smaller than a window
are padded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

Shape3 = tuple[int, int, int]


def window_starts(length: int, patch: int = 32, stride: int = 8) -> np.ndarray:
    """Start indices of the windows along one axis, exactly as the reference computes them.

    ``np.arange(0, length - patch + 1, stride)``, plus ``length - patch`` appended when
    ``(length - patch) % stride != 0`` so that the last voxels are covered too (the appended
    window overlaps its neighbour by more than the others do).

    Parameters
    ----------
    length
        Extent of the (already padded) volume along the axis; must be at least ``patch``
        (pad with :func:`pad_amounts` first).
    patch, stride
        Window extent and step, positive integers.

    Returns
    -------
    numpy.ndarray
        int64 start indices, increasing.
    """
    for name, value in (("length", length), ("patch", patch), ("stride", stride)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if length < patch:
        raise ValueError(
            f"axis length {length} is smaller than the window ({patch}); pad the volume first"
        )
    starts = np.arange(0, length - patch + 1, stride, dtype=np.int64)
    if (length - patch) % stride != 0:
        starts = np.concatenate([starts, np.array([length - patch], dtype=np.int64)])
    return starts


def window_grid(shape: Sequence[int], patch: Sequence[int], stride: Sequence[int]) -> np.ndarray:
    """All window starts of a 3-D volume, shape ``(N, 3)``, in the reference order.

    The first axis varies slowest (x-major, then y, then z), as in the reference's nested loops.
    The order matters only for floating-point summation order and progress reporting.
    """
    shape3, patch3, stride3 = (
        _triple(shape, "shape"),
        _triple(patch, "patch"),
        _triple(stride, "stride"),
    )
    axes = [window_starts(shape3[i], patch3[i], stride3[i]) for i in range(3)]
    grid = np.meshgrid(*axes, indexing="ij")
    return np.stack([g.reshape(-1) for g in grid], axis=1)


def pad_amounts(shape: Sequence[int], patch: Sequence[int]) -> Shape3:
    """Zeros to append at the end of each axis so that every axis is at least one window long.

    The reference code cannot handle an axis shorter than the window; padding at the end (and
    cropping the result back) keeps voxel coordinates unchanged.
    """
    shape3, patch3 = _triple(shape, "shape"), _triple(patch, "patch")
    return tuple(max(0, p - s) for s, p in zip(shape3, patch3, strict=True))  # type: ignore[return-value]


def pad_end(volume: np.ndarray, amounts: Sequence[int]) -> np.ndarray:
    """Zero-pad the last three axes of ``volume`` at their end (no copy when nothing to pad)."""
    if not any(amounts):
        return volume
    widths = [(0, 0)] * (volume.ndim - 3) + [(0, int(a)) for a in amounts]
    return np.pad(volume, widths, mode="constant", constant_values=0)


def windows_with_foreground(
    mask: np.ndarray, starts: np.ndarray, patch: Sequence[int]
) -> np.ndarray:
    """Which windows contain at least one ``True`` voxel of ``mask``.

    Uses a summed-volume table (3-D integral image), so the cost is one pass over the volume
    plus eight look-ups per window instead of one slice sum per window as in the reference; the
    answer is identical.

    Parameters
    ----------
    mask
        Boolean volume ``(D, H, W)``.
    starts
        ``(N, 3)`` window starts (see :func:`window_grid`).
    patch
        Window extent per axis.

    Returns
    -------
    numpy.ndarray
        Boolean ``(N,)``.
    """
    if mask.ndim != 3:
        raise ValueError(f"mask must be 3-D, got shape {mask.shape}")
    patch3 = _triple(patch, "patch")
    starts = np.asarray(starts, dtype=np.int64).reshape(-1, 3)
    if len(starts) == 0:
        return np.zeros(0, dtype=bool)
    if (starts < 0).any() or (starts + np.array(patch3) > np.array(mask.shape)).any():
        raise ValueError(f"a window of size {patch3} falls outside the volume {mask.shape}")
    table = np.zeros(tuple(s + 1 for s in mask.shape), dtype=np.int64)
    table[1:, 1:, 1:] = mask.astype(np.int64).cumsum(0).cumsum(1).cumsum(2)
    x0, y0, z0 = starts[:, 0], starts[:, 1], starts[:, 2]
    x1, y1, z1 = x0 + patch3[0], y0 + patch3[1], z0 + patch3[2]
    total = (
        table[x1, y1, z1]
        - table[x0, y1, z1]
        - table[x1, y0, z1]
        - table[x1, y1, z0]
        + table[x0, y0, z1]
        + table[x0, y1, z0]
        + table[x1, y0, z0]
        - table[x0, y0, z0]
    )
    return total > 0


def foreground_bbox(mask: np.ndarray, margin: int = 0) -> tuple[slice, slice, slice] | None:
    """Bounding box of the ``True`` voxels grown by ``margin`` and clipped to the volume.

    ``None`` when the mask is empty.
    """
    if not mask.any():
        return None
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        lo = max(0, int(hit[0]) - margin)
        hi = min(mask.shape[axis], int(hit[-1]) + 1 + margin)
        box.append(slice(lo, hi))
    return tuple(box)  # type: ignore[return-value]


def gaussian_importance(patch: Sequence[int], sigma_scale: float = 0.125) -> torch.Tensor:
    """Gaussian window weights, peak 1, as nnU-Net uses for large overlapping tiles.

    Predictions near a tile's border see less context and are down-weighted; the smallest weight
    is clamped to the smallest non-zero value so no voxel of a tile gets weight 0.

    Parameters
    ----------
    patch
        Tile extent per axis.
    sigma_scale
        Standard deviation as a fraction of the tile extent (nnU-Net: 1/8).

    Returns
    -------
    torch.Tensor
        float32 ``patch``-shaped weights.
    """
    if not 0 < sigma_scale:
        raise ValueError(f"sigma_scale must be positive, got {sigma_scale}")
    patch3 = _triple(patch, "patch")
    axes = []
    for n in patch3:
        coords = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
        sigma = n * sigma_scale
        axes.append(np.exp(-0.5 * (coords / sigma) ** 2))
    weights = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    weights /= weights.max()
    weights = np.maximum(weights, weights[weights > 0].min())
    return torch.from_numpy(weights.astype(np.float32))


def _triple(value: Sequence[int] | int, name: str) -> Shape3:
    if isinstance(value, (int, np.integer)):
        value = (int(value),) * 3
    out = tuple(int(v) for v in value)
    if len(out) != 3:
        raise ValueError(f"{name} must have 3 entries, got {tuple(value)!r}")
    return out  # type: ignore[return-value]
