"""Tissue context maps of seed 001's two-stage pipeline (FCN-1 → distance maps → FCN-2).

Seed 001 §3 computes "a distance map for each brain tissue" from FCN-1's initial segmentation and
feeds the maps to FCN-2 as a third stream; the maps themselves are not specified.

Chosen reading (spec §7): per tissue (CSF, GM, WM = model classes 1, 2, 3) the **unsigned**
Euclidean distance in mm from each voxel to the nearest voxel of that tissue (0 inside the
tissue), clipped at 20 mm and divided by 20, so every map lies in [0, 1]. A tissue absent from
the segmentation gives a map of ones (everything is "at least 20 mm away"). Pure NumPy/SciPy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

#: Model classes whose distance maps form the context stream, in channel order.
CONTEXT_TISSUES = (1, 2, 3)  # CSF, GM, WM
#: Number of model outputs (background, CSF, GM, WM).
NUM_CLASSES = 4


def _as_labels(labels_or_probabilities: np.ndarray) -> np.ndarray:
    arr = np.asarray(labels_or_probabilities)
    if arr.ndim == 4:
        if arr.shape[0] != NUM_CLASSES:
            raise ValueError(
                f"probabilities must be ({NUM_CLASSES}, D, H, W), got shape {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError("probabilities contain non-finite values")
        return np.argmax(arr, axis=0)
    if arr.ndim != 3:
        raise ValueError(
            f"expected a label volume (D, H, W) or probabilities ({NUM_CLASSES}, D, H, W), "
            f"got shape {arr.shape}"
        )
    if not np.issubdtype(arr.dtype, np.integer):
        if not (np.all(np.isfinite(arr)) and np.array_equal(arr, np.round(arr))):
            raise ValueError("a 3-D label volume must hold integer labels")
        arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= NUM_CLASSES):
        raise ValueError(f"labels must lie in 0..{NUM_CLASSES - 1}, got {arr.min()}..{arr.max()}")
    return arr


def context_maps(
    labels_or_probabilities: np.ndarray,
    voxel_mm: float | Sequence[float] = 1.0,
    clip_mm: float = 20.0,
) -> np.ndarray:
    """Clipped, normalised distance-to-tissue maps for CSF, GM and WM.

    Parameters
    ----------
    labels_or_probabilities
        A label volume ``(D, H, W)`` with 0 background, 1 CSF, 2 GM, 3 WM, or class
        probabilities ``(4, D, H, W)`` (FCN-1's softmax output), reduced by argmax.
    voxel_mm
        Voxel size in mm, one value or one per axis (passed to ``distance_transform_edt`` as
        ``sampling``).
    clip_mm
        Distances are clipped at this value and divided by it (20 mm).

    Returns
    -------
    numpy.ndarray
        float32 ``(3, D, H, W)``: for tissue t in (CSF, GM, WM),
        ``min(d_t(x), clip_mm) / clip_mm`` where ``d_t(x)`` is the Euclidean distance in mm from
        voxel x to the nearest voxel labelled t (0 for voxels of t; 1 everywhere if t is absent).
    """
    labels = _as_labels(labels_or_probabilities)
    sampling = np.broadcast_to(np.asarray(voxel_mm, dtype=np.float64), (3,))
    if not np.all(np.isfinite(sampling)) or np.any(sampling <= 0):
        raise ValueError(f"voxel_mm must be positive, got {voxel_mm!r}")
    if not np.isfinite(clip_mm) or clip_mm <= 0:
        raise ValueError(f"clip_mm must be positive, got {clip_mm!r}")
    out = np.ones((len(CONTEXT_TISSUES), *labels.shape), dtype=np.float32)
    for channel, tissue in enumerate(CONTEXT_TISSUES):
        inside = labels == tissue
        if not inside.any():
            continue
        # distance_transform_edt measures the distance to the nearest zero: zeros = the tissue.
        distance = ndimage.distance_transform_edt(~inside, sampling=tuple(sampling))
        out[channel] = np.minimum(distance, clip_mm) / clip_mm
    return out
