"""Cohort statistics: robust z-scores, outliers, summaries, age bins, and the fallback trend."""

from __future__ import annotations

import math

import numpy as np
import pytest

from infant_tissue.group.figures import trend_line
from infant_tissue.group.read import SessionVolumes
from infant_tissue.group.stats import age_bin, describe, find_outliers, robust_z


def test_robust_z_by_hand():
    z, median, mad = robust_z([1.0, 2.0, 3.0, 4.0, 100.0])
    # median 3; |x - 3| = 2, 1, 0, 1, 97 -> MAD 1
    assert (median, mad) == (3.0, 1.0)
    np.testing.assert_allclose(z, [-1.349, -0.6745, 0.0, 0.6745, 65.4265])
    z, median, mad = robust_z([5.0, 5.0, 5.0, 6.0, 9.0])
    assert mad == 0.0 and np.isnan(z).all()


def _record(sub: str, gm: float, wm: float = 400_000.0, csf: float = 100_000.0) -> SessionVolumes:
    vol = {"GM": gm, "WM": wm, "CSF": csf, "brain": gm + wm + csf}
    return SessionVolumes(sub, None, {k: 1 for k in vol}, vol, dict.fromkeys(vol), age_months=6.0)


def test_find_outliers_small_case_reason():
    records = [_record(f"0{i}", gm) for i, gm in enumerate([500e3, 510e3, 520e3, 530e3, 200e3])]
    rows, flagged = find_outliers(records)
    gm_flags = [o for o in flagged if o.measure == "gm_mm3"]
    assert len(gm_flags) == 1 and gm_flags[0].subject == "04"
    # median 510000; |dev| 10000, 0, 10000, 20000, 310000 -> MAD 10000; z = 0.6745 * -31
    assert gm_flags[0].z == pytest.approx(-20.9095)
    assert (gm_flags[0].method, gm_flags[0].expected) == ("cohort", 510e3)
    assert gm_flags[0].centile == pytest.approx(0.0, abs=1e-12)
    assert gm_flags[0].reason == (
        "GM volume 200000 mm³ is 20.9 robust SD below the cohort median 510000 mm³"
    )
    # WM and CSF are identical everywhere: MAD 0, so a note and no flag
    wm = [r for r in rows if r["measure"] == "wm_mm3"]
    assert all(r["robust_z"] is None and not r["outlier"] for r in wm)
    assert "median absolute deviation is 0" in wm[0]["reason"]
    assert not any(o.measure in ("wm_mm3", "csf_mm3") for o in flagged)


def test_describe_and_age_bins():
    stats = describe([1.0, None, 2.0, 3.0, 10.0, math.nan])
    assert stats == {
        "n": 4,
        "mean": 4.0,
        "sd": pytest.approx(np.std([1, 2, 3, 10], ddof=1)),
        "median": 2.5,
        "q1": 1.75,
        "q3": 4.75,
        "iqr": 3.0,
    }
    assert describe([7.0])["sd"] is None and describe([])["mean"] is None
    got = [age_bin(a) for a in (0.5, 2.99, 3.0, 4.99, 5, 6.9, 7, 9, 11.9, 12, 30, None)]
    assert got == [
        "<3",
        "<3",
        "3-5",
        "3-5",
        "5-7",
        "5-7",
        "7-9",
        "9-12",
        "9-12",
        ">=12",
        ">=12",
        "unknown",
    ]


def test_trend_line_reproduces_lines_and_resists_a_wild_point():
    """Without an age model the figures draw statsmodels' LOWESS (10+ points), else a line."""
    x = np.linspace(3, 12, 15)
    y = 2.0 * x + 1.0
    gx, gy, label = trend_line(x, y)
    assert label == "LOWESS"
    np.testing.assert_allclose(gy, 2.0 * gx + 1.0, atol=1e-9)
    y_bad = y.copy()
    y_bad[7] += 100.0
    gx, gy, _ = trend_line(x, y_bad)
    np.testing.assert_allclose(np.delete(gy, 7), np.delete(y, 7), atol=1e-6)
    gx, gy, label = trend_line(x[:4], y[:4])
    assert label == "linear fit" and gx.tolist() == [3.0, x[3]]
    np.testing.assert_allclose(gy, 2.0 * gx + 1.0)
    assert trend_line(np.array([1.0, 2.0]), np.array([1.0, 2.0])) is None
