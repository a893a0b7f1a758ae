"""The age model: the robust fit against age, its scale, and when outliers fall back to the
cohort-wide robust z. Numbers only (no files); the phantom cohort is in
``test_age_model_phantoms.py``."""

from __future__ import annotations

import numpy as np
import pytest

from infant_tissue.group.agemodel import AgeModelError, choose_basis, fit_age_model
from infant_tissue.group.outliers import score_outliers
from infant_tissue.group.read import SessionVolumes

MAD_TO_SD = 0.6744897501960817


def test_fit_follows_the_curve_not_the_failures_and_scales_by_the_mad():
    rng = np.random.default_rng(0)
    ages = np.linspace(3, 12, 30)
    truth = 100 + 20 * ages - 0.5 * ages**2
    values = truth + rng.normal(0, 2.0, ages.size)
    values[[10, 20]] -= 40  # two failed sessions, 20 SD low
    model = fit_age_model(ages, values)
    assert (model.basis, model.n, model.age_range) == ("spline", 30, (3.0, 12.0))
    assert np.abs(model.expected(ages) - truth).max() < 2.0  # within one noise SD
    # the scale by hand: MAD of the residuals about 0, normalised, times sqrt(n / (n - p))
    resid = values - model.expected(ages)
    by_hand = np.median(np.abs(resid)) / MAD_TO_SD * np.sqrt(30 / 26)
    assert model.scale == pytest.approx(by_hand, rel=1e-9)
    assert 1.5 < model.scale < 2.5  # the noise SD is 2
    z = model.z(ages, values)
    assert (z[[10, 20]] < -15).all()
    assert np.abs(np.delete(z, [10, 20])).max() < 3.5
    np.testing.assert_allclose(model.centile_curve(ages, 50), model.expected(ages))
    np.testing.assert_allclose(
        model.centile_curve(ages, 95) - model.expected(ages), 1.6448536 * model.scale
    )
    fit = model.summary()
    assert fit["Basis"] == "natural cubic spline (3 df)" and len(fit["Coefficients"]) == 4


def test_basis_choice_and_what_cannot_be_fitted():
    assert choose_basis(8, 8) == "quadratic"
    assert choose_basis(20, 6) == "spline"
    assert choose_basis(40, 5) == "quadratic"
    assert choose_basis(12, 2) == "linear"
    ages = np.linspace(3, 12, 8)
    assert fit_age_model(ages, 2 * ages + np.sin(ages)).basis == "quadratic"
    assert fit_age_model([4.0] * 4 + [8.0] * 4, [1, 2, 3, 4, 5, 6, 7, 9]).basis == "linear"
    with pytest.raises(AgeModelError, match="7 session"):
        fit_age_model(ages[:7], ages[:7])
    with pytest.raises(AgeModelError, match="same age"):
        fit_age_model([6.0] * 9, range(9))
    with pytest.raises(AgeModelError, match="no spread"):
        fit_age_model(ages, 3 * ages + 1)  # every session exactly on a line


# --- cohorts of numbers: which method flags what ---------------------------------------------------


def _cohort(ages, planted_age: float, seed: int = 1) -> list[SessionVolumes]:
    """Sessions with realistic steep growth (GM +90 % from 3 to 12 months), 4 % between-infant
    variation, and one more session at ``planted_age`` with its GM halved."""
    rng = np.random.default_rng(seed)
    records = []
    for i, age in enumerate([*ages, planted_age]):
        wobble = 1 + 0.04 * rng.standard_normal(3)
        vol = {
            "GM": (200e3 + 30e3 * age) * wobble[0],
            "WM": (150e3 + 12e3 * age) * wobble[1],
            "CSF": (80e3 + 4e3 * age) * wobble[2],
        }
        if i == len(ages):
            vol["GM"] /= 2
        vol["brain"] = sum(vol.values())
        voxels = {k: round(v) for k, v in vol.items()}
        records.append(
            SessionVolumes(f"{i + 1:02d}", None, voxels, vol, dict.fromkeys(vol), float(age))
        )
    return records


def _z(scores, subject: str, measure: str) -> tuple[float, float, bool]:
    """(z of the method used, cohort-wide robust z, flagged) of one value."""
    row = next(r for r in scores.rows if r["subject"] == subject and r["measure"] == measure)
    return row["z"], row["robust_z"], row["outlier"]


def test_spread_of_ages_hides_a_failure_from_the_cohort_z():
    """Ages spread evenly over 3-12 months: growth widens the cohort's spread so much that a
    halved GM at the median age is within 3.5 robust SD of the cohort median; not of its age."""
    scores = score_outliers(_cohort(np.linspace(3, 12, 20), planted_age=7.5))
    assert scores.method == "age-model" and scores.models["gm_mm3"].basis == "spline"
    z, cohort_z, flagged = _z(scores, "21", "gm_mm3")
    assert flagged and z < -10
    assert -3.5 < cohort_z < -1.5  # the cohort-wide score would have missed it
    flagged_units = {(o.subject, o.measure) for o in scores.flagged}
    assert {s for s, _ in flagged_units} == {"21"}
    assert ("21", "gm_fraction") in flagged_units


def test_out_of_window_ages_are_flagged_by_the_cohort_z_only():
    """A 6-month visit (6.0-7.0 months) with one session at 3 and one at 12 months: against
    the cohort median both extremes stand out for their age alone; against the age model
    neither does. (The oldest stands out in every draw; the youngest's cohort z depends on the
    draw: -3.9, -5.8 and -2.9 for seeds 1-3.)"""
    ages = [3.0, *np.linspace(6.0, 7.0, 16), 12.0]
    scores = score_outliers(_cohort(ages, planted_age=6.5))
    assert scores.models["gm_mm3"].basis == "quadratic"  # 19 sessions
    youngest, oldest, planted = "01", "18", "19"
    for subject in (youngest, oldest):
        z, cohort_z, flagged = _z(scores, subject, "gm_mm3")
        assert abs(cohort_z) > 3.5 and abs(z) < 2.0 and not flagged
    assert _z(scores, youngest, "gm_mm3")[1] < -3.5 < 3.5 < _z(scores, oldest, "gm_mm3")[1]
    z, cohort_z, flagged = _z(scores, planted, "gm_mm3")
    assert flagged and z < -10 and cohort_z < -3.5  # here both catch the failure
    assert {o.subject for o in scores.flagged} == {planted}


def test_fallback_to_the_cohort_z_with_too_few_ages():
    records = _cohort(np.linspace(4, 8, 9), planted_age=6.0)
    for rec in records[:3]:  # 7 of 10 sessions have an age: one short of the age model
        rec.age_months = None
    scores = score_outliers(records)
    assert scores.method == "cohort" and scores.models == {}
    assert scores.note.startswith("cohort-wide robust z: 7 session(s) have an age, the age ")
    assert all(r["method"] == "cohort" and r["note"] == scores.note for r in scores.rows)
    for row in scores.rows:  # the cohort-wide score, under both names
        assert row["z"] == row["robust_z"] and row["expected"] == row["cohort_median"]
    planted = [o for o in scores.flagged if o.subject == "10"]
    assert {o.measure for o in planted} >= {"gm_mm3"}
    assert all(o.method == "cohort" and o.expected is not None for o in planted)


def test_sessions_without_an_age_are_scored_against_the_cohort():
    records = _cohort(np.linspace(3, 12, 10), planted_age=7.5)
    records[0].age_months = None
    scores = score_outliers(records)
    assert scores.method == "age-model"
    assert scores.note.endswith("; 1 session(s) without an age scored against the cohort")
    rows = [r for r in scores.rows if r["subject"] == "01"]
    assert {r["method"] for r in rows} == {"cohort"}
    assert {r["note"] for r in rows} == {"no age: scored against the whole cohort (robust z)"}
    assert {r["method"] for r in scores.rows if r["subject"] != "01"} == {"age-model"}
