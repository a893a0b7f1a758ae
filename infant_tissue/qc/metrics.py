"""QC measures of one session: pure functions on arrays (one grid, one brain mask).

Every function takes boolean ``brain`` (the voxels that were segmented) and returns plain floats,
``nan`` when the measure is undefined (an empty class, a constant image). Labels are in the
model's order (0 background, 1 CSF, 2 GM, 3 WM).
"""

from __future__ import annotations

import math

import numpy as np

#: Disagreement at or above which a voxel counts as contested (half the members or more
#: voted for another label than the ensemble).
CONTESTED = 0.5
#: Model labels of grey and white matter.
GM, WM = 2, 3
#: Scale of the median absolute deviation to a normal SD.
MAD_TO_SD = 1.4826


def disagreement_summary(
    disagreement: np.ndarray | None, brain: np.ndarray
) -> dict[str, float | None]:
    """Mean disagreement in the brain and the share of brain voxels at or above
    :data:`CONTESTED`; ``None`` for both without a disagreement map (a single member)."""
    if disagreement is None or not brain.any():
        return {"disagreement_mean": None, "disagreement_high_share": None}
    values = np.asarray(disagreement)[brain]
    return {
        "disagreement_mean": float(values.mean()),
        "disagreement_high_share": float((values >= CONTESTED - 1e-6).mean()),
    }


def mean_inside(values: np.ndarray, brain: np.ndarray) -> float:
    return float(np.asarray(values)[brain].mean()) if brain.any() else math.nan


def correlation_ratio(image: np.ndarray, labels: np.ndarray, brain: np.ndarray) -> float:
    """Correlation ratio η² of the image's intensities given the tissue labels, in the brain.

    ``η² = 1 - Σ_k n_k var_k / (n var)``: the share of the intensity variance the labels explain
    (Roche et al. 1998). Labels drawn from the T1w and a T2w that is aligned with it give a high
    value; a misaligned T2w mixes the classes and lowers it.
    """
    x = np.asarray(image, dtype=np.float64)[brain]
    k = np.asarray(labels)[brain]
    if x.size < 2 or x.var() <= 0:
        return math.nan
    within = 0.0
    for label in np.unique(k):
        values = x[k == label]
        within += values.size * values.var()
    return float(1.0 - within / (x.size * x.var()))


def intensity_correlation(a: np.ndarray, b: np.ndarray, brain: np.ndarray) -> float:
    """Pearson correlation of two images' intensities in the brain.

    A genuine infant T1w/T2w pair is anti-correlated (cerebrospinal fluid is dark on T1w and
    bright on T2w); a T1w handed over as the T2w correlates strongly and positively.
    """
    x = np.asarray(a, dtype=np.float64)[brain]
    y = np.asarray(b, dtype=np.float64)[brain]
    if x.size < 2 or x.std() <= 0 or y.std() <= 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def _robust_location_scale(values: np.ndarray) -> tuple[float, float]:
    median = float(np.median(values))
    return median, MAD_TO_SD * float(np.median(np.abs(values - median)))


def contrast_to_noise(image: np.ndarray, labels: np.ndarray, brain: np.ndarray) -> float:
    """Grey/white-matter contrast-to-noise ratio ``|m_GM - m_WM| / sqrt((s_GM² + s_WM²) / 2)``.

    Medians and MAD-based SDs of each tissue's intensities, so the partial-volume voxels at the
    tissue boundaries do not count as noise. ``nan`` when a tissue has under 10 voxels.
    """
    x = np.asarray(image, dtype=np.float64)
    k = np.asarray(labels)
    gm, wm = x[brain & (k == GM)], x[brain & (k == WM)]
    if gm.size < 10 or wm.size < 10:
        return math.nan
    m_gm, s_gm = _robust_location_scale(gm)
    m_wm, s_wm = _robust_location_scale(wm)
    noise = math.sqrt((s_gm**2 + s_wm**2) / 2)
    if noise <= 0:
        return math.nan
    return abs(m_gm - m_wm) / noise


def tissue_fractions(labels: np.ndarray, brain: np.ndarray) -> dict[str, float]:
    """Share of the segmented voxels labelled CSF, GM and WM."""
    k = np.asarray(labels)[brain]
    n = max(int(k.size), 1)
    return {
        "csf_fraction": float((k == 1).sum() / n),
        "gm_fraction": float((k == GM).sum() / n),
        "wm_fraction": float((k == WM).sum() / n),
    }
