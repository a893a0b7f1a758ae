"""Mask helpers shared by the overlap/surface metrics and the vectorised MHD.

:func:`_as_masks` checks that two arrays have the same shape and views them as boolean masks;
:func:`_crop_to_union` crops both to the bounding box of their union. Both :mod:`.metrics` and
:mod:`.mhd_vec` use them, and keeping them here lets :mod:`.metrics` import the vectorised MHD
without an import cycle.
"""

from __future__ import annotations

import numpy as np


def _as_masks(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred)
    truth = np.asarray(truth)
    if pred.shape != truth.shape:
        raise ValueError(
            f"pred and truth must have the same shape, got {pred.shape} and {truth.shape}"
        )
    if pred.ndim == 0:
        raise ValueError("masks must have at least one dimension")
    return pred.astype(bool, copy=False), truth.astype(bool, copy=False)


def _crop_to_union(a: np.ndarray, b: np.ndarray, margin: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Crop both (not both empty) masks to the bounding box of their union plus ``margin``.

    For the surface distances a margin of one voxel keeps the erosion identical to the
    uncropped one, and the distance transform then runs on the crop only, which for a tissue
    is much smaller than the image.
    """
    union = a | b
    slices = []
    for axis in range(union.ndim):
        other = tuple(i for i in range(union.ndim) if i != axis)
        hit = np.flatnonzero(union.any(axis=other))
        slices.append(slice(max(hit[0] - margin, 0), min(hit[-1] + 1 + margin, union.shape[axis])))
    return a[tuple(slices)], b[tuple(slices)]
