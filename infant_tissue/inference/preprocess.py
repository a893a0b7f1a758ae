"""Input checks and the reference intensity normalisation."""

from __future__ import annotations

import numpy as np


def normalise(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Z-score ``image`` over its voxels > 0, then zero everything that was not > 0.

    The reference ``image_norm``: ``mask = img > 0``; ``(img - mean) / std * mask`` with the
    population standard deviation (``ddof=0``). Statistics are computed in float64, as NumPy
    does for the reference; the result is float32, the network's input type.

    Parameters
    ----------
    image
        3-D intensity array (skull-stripped: background is 0).
    name
        Used in error messages ("T1w", "T2w").

    Raises
    ------
    ValueError
        If the image has no voxel > 0, or those voxels all have the same value (the z-score is
        undefined), or it holds NaN/inf.
    """
    data = np.asarray(image)
    if data.ndim != 3:
        raise ValueError(f"{name} must be a 3-D array, got shape {data.shape}")
    if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold real numbers, got dtype {data.dtype}")
    data = data.astype(np.float64, copy=False)
    if not np.isfinite(data).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    mask = data > 0
    if not mask.any():
        raise ValueError(f"{name} has no voxel > 0; is it skull-stripped brain data?")
    values = data[mask]
    mean = values.mean()
    std = values.std()
    if std == 0:
        raise ValueError(f"{name} has a single intensity over its voxels > 0; cannot z-score it")
    return (((data - mean) / std) * mask).astype(np.float32)


def check_pair(t1w: np.ndarray, t2w: np.ndarray) -> None:
    """Both modalities must be 3-D arrays on the same grid."""
    a, b = np.asarray(t1w), np.asarray(t2w)
    if a.ndim != 3 or b.ndim != 3:
        raise ValueError(f"T1w and T2w must be 3-D arrays, got shapes {a.shape} and {b.shape}")
    if a.shape != b.shape:
        raise ValueError(
            f"T1w {a.shape} and T2w {b.shape} differ in shape; resample them to one grid first"
        )
