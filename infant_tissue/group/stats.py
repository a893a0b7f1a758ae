"""Cohort statistics: pure functions on numbers, no files.

Age bins (:func:`age_bin`), n/mean/SD/quartiles (:func:`describe`), robust z-scores
(:func:`robust_z`), and :func:`find_outliers`, which scores every session for every outlier
measure against the whole cohort and returns the flagged values as :class:`Outlier` with a
sentence saying why. Scoring against the expected value at each session's age is in
:mod:`.agemodel` and :mod:`.outliers`, which falls back to :func:`find_outliers`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._common import FRACTION_MEASURES, VOLUME_MEASURES, _float
from .agemodel import centile
from .read import SessionVolumes

#: |robust z| above which a value is flagged (Iglewicz & Hoaglin's recommendation).
ROBUST_Z_THRESHOLD = 3.5
#: Fewest sessions with a value for outliers to be assessed; a median of fewer means little.
MIN_SESSIONS_FOR_OUTLIERS = 5
#: 0.6745 = the 75th percentile of the standard normal: makes MAD comparable to an SD.
MAD_TO_SD = 0.6745

#: Lower edges (months) of the age bins after the first; bins are half-open ``[lo, hi)``.
AGE_BIN_EDGES: tuple[float, ...] = (3.0, 5.0, 7.0, 9.0, 12.0)
#: Labels of the age bins, one more than the edges.
AGE_BIN_LABELS: tuple[str, ...] = ("<3", "3-5", "5-7", "7-9", "9-12", ">=12")
#: Age bin of sessions without a known age.
UNKNOWN_AGE_BIN = "unknown"
#: Measures assessed for outliers.
OUTLIER_MEASURES: tuple[str, ...] = VOLUME_MEASURES + FRACTION_MEASURES


#: How a value was scored: against the expected value at its age, or against the whole cohort.
METHOD_AGE_MODEL, METHOD_COHORT = "age-model", "cohort"


@dataclass(frozen=True)
class Outlier:
    """One flagged value: which session, which measure, its z-score and the reason.

    ``z`` is the residual z-score from the age model (``method`` ``"age-model"``) or the
    cohort-wide robust z (``"cohort"``); ``expected`` is the value expected at the session's age
    or the cohort median; ``centile`` (in %) is the normal CDF of ``z``; ``age_months`` is the
    session's age (None when unknown).
    """

    subject: str
    session: str | None
    measure: str
    value: float
    z: float
    reason: str
    method: str = METHOD_COHORT
    expected: float | None = None
    centile: float | None = None
    age_months: float | None = None


def _measure_phrase(measure: str) -> tuple[str, str]:
    """``('GM volume', 'mm³')`` for ``gm_mm3``; ``('GM fraction', '')`` for ``gm_fraction``."""
    name, _, kind = measure.partition("_")
    tissue = "brain" if name == "brain" else name.upper()
    if kind == "fraction":
        return f"{tissue} fraction", ""
    if kind == "pv_mm3":
        return f"{tissue} partial-volume volume", "mm³"
    return f"{tissue} volume", "mm³"


def _fmt_reason_value(value: float, unit: str) -> str:
    return f"{value:.0f} {unit}" if unit else f"{value:.3f}"


# --- statistics (pure) -------------------------------------------------------------------------


def age_bin(age_months: float | None) -> str:
    """The age bin of an age in months (half-open bins ``[lo, hi)``; see :data:`AGE_BIN_LABELS`).

    Examples
    --------
    >>> age_bin(4.9), age_bin(5.0), age_bin(12), age_bin(None)
    ('3-5', '5-7', '>=12', 'unknown')
    """
    if age_months is None or not math.isfinite(age_months):
        return UNKNOWN_AGE_BIN
    return AGE_BIN_LABELS[bisect.bisect_right(AGE_BIN_EDGES, float(age_months))]


def describe(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """n, mean, sample SD, median, quartiles and IQR of the non-missing values.

    Parameters
    ----------
    values
        Numbers; None and NaN are left out.

    Returns
    -------
    dict
        Keys ``n, mean, sd, median, q1, q3, iqr``. Quartiles use numpy's default (linear,
        Hyndman & Fan type 7, as R's ``quantile``); ``sd`` has ``ddof=1`` and is None for n < 2;
        everything but ``n`` is None for n = 0.
    """
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = int(x.size)
    if n == 0:
        return {
            "n": 0,
            "mean": None,
            "sd": None,
            "median": None,
            "q1": None,
            "q3": None,
            "iqr": None,
        }
    q1, median, q3 = (float(q) for q in np.percentile(x, [25.0, 50.0, 75.0]))
    return {
        "n": n,
        "mean": float(x.mean()),
        "sd": float(x.std(ddof=1)) if n > 1 else None,
        "median": median,
        "q1": q1,
        "q3": q3,
        "iqr": q3 - q1,
    }


def robust_z(values: Sequence[float]) -> tuple[np.ndarray, float, float]:
    """Robust z-scores ``0.6745 * (x - median) / MAD`` (Iglewicz & Hoaglin, 1993).

    The median and the median absolute deviation are not pulled by the outliers they are
    meant to find, unlike the mean and SD (one bad segmentation in ten inflates the SD enough
    to hide itself).

    Parameters
    ----------
    values
        Finite numbers.

    Returns
    -------
    z : numpy.ndarray
        One score per value; all NaN when the MAD is 0 (more than half the values equal).
    median, mad : float
        The cohort median and the (unscaled) median absolute deviation.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return np.empty(0), math.nan, math.nan
    median = float(np.median(x))
    mad = float(np.median(np.abs(x - median)))
    if mad <= 1e-12 * abs(median) or mad == 0.0:
        return np.full(x.shape, np.nan), median, mad
    return MAD_TO_SD * (x - median) / mad, median, mad


def find_outliers(
    records: Sequence[SessionVolumes],
) -> tuple[list[dict[str, Any]], list[Outlier]]:
    """Robust z-score of every session for every measure of :data:`OUTLIER_MEASURES`.

    The cohort is every usable session; scores are not age-adjusted. Volumes grow fast in the
    first year, so in a cohort spread over many months a failure can hide in the spread due to
    growth (and the youngest or oldest sessions may stand out for their age alone); the tissue
    fractions change slowly with age and are the more sensitive check. This is why
    :func:`~infant_tissue.group.outliers.score_outliers` uses it only when too few sessions
    have an age for the age model. A measure with fewer than
    :data:`MIN_SESSIONS_FOR_OUTLIERS` values or a MAD of 0 gets no flags and a note instead of a
    score.

    Returns
    -------
    rows : list of dict
        One per session and measure, keys of :data:`OUTLIER_COLUMNS` (numbers unformatted,
        ``outlier`` a bool, ``robust_z`` None when not assessed).
    flagged : list of Outlier
        The values with ``|z| > 3.5``.
    """
    measures = [r.measures() for r in records]
    rows: list[dict[str, Any]] = []
    flagged: list[Outlier] = []
    by_measure: dict[str, tuple[dict[int, int], np.ndarray, float, float, str]] = {}
    for measure in OUTLIER_MEASURES:
        idx = [i for i, m in enumerate(measures) if m[measure] is not None]
        values = [_float(measures[i][measure]) for i in idx]
        note = ""
        if len(values) < MIN_SESSIONS_FOR_OUTLIERS:
            z = np.full(len(values), np.nan)
            median = float(np.median(values)) if values else math.nan
            mad = float(np.median(np.abs(np.subtract(values, median)))) if values else math.nan
            note = (
                f"not assessed: {len(values)} session(s) with a value, "
                f"at least {MIN_SESSIONS_FOR_OUTLIERS} needed"
            )
        else:
            z, median, mad = robust_z(values)
            if np.isnan(z).all():
                note = "not assessed: the median absolute deviation is 0 (most values identical)"
        by_measure[measure] = ({i: k for k, i in enumerate(idx)}, z, median, mad, note)
    for i, rec in enumerate(records):
        for measure in OUTLIER_MEASURES:
            idx, z, median, mad, note = by_measure[measure]
            value = measures[i][measure]
            score = None
            reason = note
            if value is None:
                reason = "no value"
            elif not math.isnan(z[idx[i]]):
                score = float(z[idx[i]])
                reason = ""
            is_outlier = False
            if score is not None and value is not None and abs(score) > ROBUST_Z_THRESHOLD:
                is_outlier = True
                name, unit = _measure_phrase(measure)
                side = "above" if score > 0 else "below"
                reason = (
                    f"{name} {_fmt_reason_value(value, unit)} is {abs(score):.1f} robust SD "
                    f"{side} the cohort median {_fmt_reason_value(median, unit)}"
                )
                flagged.append(
                    Outlier(
                        rec.subject,
                        rec.session,
                        measure,
                        value,
                        score,
                        reason,
                        METHOD_COHORT,
                        median,
                        centile(score),
                        rec.age_months,
                    )
                )
            rows.append(
                {
                    "subject": rec.subject,
                    "session": rec.session,
                    "age_months": rec.age_months,
                    "measure": measure,
                    "value": value,
                    "cohort_n": len(idx),
                    "cohort_median": median,
                    "cohort_mad": mad,
                    "robust_z": score,
                    "outlier": is_outlier,
                    "reason": reason,
                }
            )
    return rows, flagged
