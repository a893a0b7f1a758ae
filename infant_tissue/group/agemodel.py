"""The age model: what a tissue volume (or fraction) is expected to be at a given age.

Tissue volumes grow steeply in the first year (total brain volume about +45 % between 3 and 12
months, gray matter faster still), so a cohort-wide median compares a 3-month-old with a
12-month-old: sessions far from the cohort's usual age stand out for their age alone (a 6-month
study with a few scans at 3 or 12 months), and with ages spread evenly a segmentation failure at
the median age can hide in the spread that growth adds.
When enough sessions have an age, each measure is modelled against age instead and a session is
compared with what is expected *at its age*.

The fit is a robust linear model (statsmodels ``RLM`` with Huber's T norm) on a basis of age
chosen by the number of sessions:

* a natural cubic regression spline with 3 degrees of freedom (patsy ``cr``) from
  :data:`MIN_SPLINE_SESSIONS` sessions and :data:`MIN_SPLINE_AGES` distinct ages, flexible
  enough for the slowing of growth over the first years;
* a quadratic in age below that (3 parameters: steady with a dozen sessions);
* a straight line when only two distinct ages are present.

Huber's weights let a few failed sessions pull the curve only a little. The unit of the z-scores
is the robust scale of the residuals: their median absolute deviation divided by 0.6745, as
the cohort-wide robust z uses about the median (Iglewicz & Hoaglin), times ``sqrt(n / (n -
p))`` because residuals from a curve of ``p`` parameters fitted to ``n`` sessions are smaller
than the scatter they estimate. So a session's z is the cohort robust z with growth taken out.
Huber's proposal 2 (an M-estimate of the scale, less noisy than the MAD with few sessions) was
tried and rejected: one halved gray matter among 9 sessions inflated it four-fold and hid
itself (z -2.3 instead of -12.9). The centile is the normal CDF of the z-score, and the centile
bands of the figures are the expected value plus the normal quantile times the scale (a constant
spread across ages: adequate over the first year).

With few sessions any robust scale is noisy and 7 measures x n sessions are tested, so an
atypical but genuine session may be flagged now and then: a flag asks for a look at the
session's report, not for exclusion. ``benchmarks/group_age_model.py`` measures the age model
against the cohort-wide robust z on seeded phantom cohorts.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Fewest sessions with an age (and a value) for the age model; fewer fall back to cohort z.
MIN_AGED_SESSIONS = 8
#: Fewest sessions for the spline basis (about 5 per parameter); fewer get the quadratic.
MIN_SPLINE_SESSIONS = 20
#: Fewest distinct ages for the spline basis (its 4 knots need ages to sit on).
MIN_SPLINE_AGES = 6

#: patsy formulas of the bases (an intercept is added by patsy).
BASES: dict[str, str] = {
    "spline": "cr(age, df=3, constraints='center')",
    "quadratic": "age + I(age ** 2)",
    "linear": "age",
}
#: How the bases are named in tables and reports.
BASIS_NAMES: dict[str, str] = {
    "spline": "natural cubic spline (3 df)",
    "quadratic": "quadratic in age",
    "linear": "linear in age",
}


class AgeModelError(ValueError):
    """The age model cannot be fitted to these values; the message says why."""


@dataclass(frozen=True)
class AgeModel:
    """A robust fit of one measure against age.

    Attributes
    ----------
    basis
        Key of :data:`BASES`.
    n
        Sessions in the fit.
    scale
        Robust scale of the residuals (the unit of the residual z-scores), in the measure's unit.
    age_range
        Youngest and oldest age in the fit (months); curves are drawn over this range only.
    warnings
        Messages statsmodels raised while fitting (e.g. an iteration limit), for the sidecar.
    """

    basis: str
    n: int
    scale: float
    age_range: tuple[float, float]
    params: tuple[float, ...]
    warnings: tuple[str, ...] = ()
    _design_info: Any = field(default=None, repr=False, compare=False)

    @property
    def description(self) -> str:
        """``"quadratic in age, Huber robust fit, n = 14"``."""
        return f"{BASIS_NAMES[self.basis]}, Huber robust fit, n = {self.n}"

    def expected(self, ages: Sequence[float] | np.ndarray) -> np.ndarray:
        """The fitted (median) value at each age."""
        import patsy

        x = np.atleast_1d(np.asarray(ages, dtype=float))
        (design,) = patsy.build_design_matrices([self._design_info], {"age": x})
        return np.asarray(design) @ np.asarray(self.params)

    def z(self, ages: Sequence[float], values: Sequence[float]) -> np.ndarray:
        """Residual z-scores: ``(value - expected) / scale``."""
        return (np.asarray(values, dtype=float) - self.expected(ages)) / self.scale

    def centile_curve(self, ages: Sequence[float] | np.ndarray, centile: float) -> np.ndarray:
        """The ``centile`` (in %) of the measure at each age: expected + Φ⁻¹(centile) × scale."""
        from scipy.stats import norm

        if not 0.0 < centile < 100.0:
            raise ValueError(f"centile must be in (0, 100), got {centile}")
        return self.expected(ages) + float(norm.ppf(centile / 100.0)) * self.scale

    def summary(self) -> dict[str, Any]:
        """What the outliers table's sidecar records of the fit."""
        return {
            "Basis": BASIS_NAMES[self.basis],
            "Formula": BASES[self.basis],
            "Sessions": self.n,
            "AgeRangeMonths": list(self.age_range),
            "RobustScale": self.scale,
            "Coefficients": list(self.params),
            **({"Warnings": list(self.warnings)} if self.warnings else {}),
        }


def centile(z: float | None) -> float | None:
    """The centile (in %) of a z-score under the normal distribution; None for None or NaN."""
    if z is None or not math.isfinite(z):
        return None
    from scipy.stats import norm

    return float(norm.cdf(z) * 100.0)


def choose_basis(n: int, distinct_ages: int) -> str:
    """The basis for ``n`` sessions with ``distinct_ages`` different ages (see module doc)."""
    if n >= MIN_SPLINE_SESSIONS and distinct_ages >= MIN_SPLINE_AGES:
        return "spline"
    return "quadratic" if distinct_ages >= 3 else "linear"


def fit_age_model(
    ages: Sequence[float], values: Sequence[float], *, basis: str | None = None
) -> AgeModel:
    """Fit one measure against age with a robust linear model (see the module docstring).

    Parameters
    ----------
    ages, values
        One finite pair per session.
    basis
        Key of :data:`BASES`; by default :func:`choose_basis` picks it.

    Raises
    ------
    AgeModelError
        With fewer than :data:`MIN_AGED_SESSIONS` sessions, a single age, or residuals without
        spread (most sessions on the curve exactly: z-scores would be meaningless).
    """
    import patsy
    import statsmodels.api as sm

    x = np.asarray(ages, dtype=float)
    y = np.asarray(values, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"ages and values must be 1-D of one length, got {x.shape}, {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("ages and values must be finite")
    if x.size < MIN_AGED_SESSIONS:
        raise AgeModelError(f"{x.size} session(s) with an age, at least {MIN_AGED_SESSIONS} needed")
    distinct = int(np.unique(x).size)
    if distinct < 2:
        raise AgeModelError(f"every session has the same age ({x[0]:g} months)")
    basis = basis or choose_basis(x.size, distinct)
    design = patsy.dmatrix(BASES[basis], {"age": x})
    exog = np.asarray(design)
    n, p = exog.shape
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = sm.RLM(y, exog, M=sm.robust.norms.HuberT()).fit(maxiter=100)
    caught = sorted({str(w.message).splitlines()[0] for w in seen})
    # the MAD of the residuals about 0, normalised; residuals of a fitted curve are shrunk
    scale = float(sm.robust.scale.mad(result.resid, center=0.0)) * math.sqrt(n / (n - p))
    typical = float(np.median(np.abs(y))) or 1.0
    if not math.isfinite(scale) or scale <= 1e-9 * typical:
        raise AgeModelError(
            "the residuals have no spread (half the sessions or more lie exactly on the curve)"
        )
    return AgeModel(
        basis=basis,
        n=int(x.size),
        scale=scale,
        age_range=(float(x.min()), float(x.max())),
        params=tuple(float(p) for p in result.params),
        warnings=tuple(caught),
        _design_info=design.design_info,
    )
