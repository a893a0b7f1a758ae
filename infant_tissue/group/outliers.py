"""Outlier scores of every session and measure: against its age when possible, else the cohort.

:func:`score_outliers` decides, once per run, how sessions are compared:

* with at least :data:`~.agemodel.MIN_AGED_SESSIONS` sessions of known age, each measure of
  :data:`~.stats.OUTLIER_MEASURES` is fitted against age (:func:`~.agemodel.fit_age_model`) and
  every session with an age is scored by its residual z-score; ``|z| > 3.5`` is flagged;
* otherwise, and for the sessions without an age, and for a measure the model cannot be fitted
  to, the cohort-wide robust z of :func:`~.stats.find_outliers` decides, with a note saying so
  (it does not allow for growth: read its flags at the youngest and oldest ages with care).

Every row keeps the cohort-wide robust z as well, so the two can be compared.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .agemodel import MIN_AGED_SESSIONS, AgeModel, AgeModelError, centile, fit_age_model
from .read import SessionVolumes
from .stats import (
    METHOD_AGE_MODEL,
    METHOD_COHORT,
    OUTLIER_MEASURES,
    ROBUST_Z_THRESHOLD,
    Outlier,
    _fmt_reason_value,
    _measure_phrase,
    find_outliers,
)

LOGGER = logging.getLogger(__name__)


@dataclass
class OutlierScores:
    """What :func:`score_outliers` found.

    Attributes
    ----------
    rows
        One per session and measure: the keys of :func:`~.stats.find_outliers` rows plus
        ``method``, ``expected``, ``z``, ``centile`` and ``note`` (numbers unformatted).
    flagged
        The values with ``|z| > 3.5`` under the method used for them.
    method
        ``"age-model"`` when any measure was scored against age, else ``"cohort"``.
    note
        One sentence for the table's sidecar and the report: the model used, or why not.
    models
        The fitted age model of each measure that has one.
    """

    rows: list[dict[str, Any]]
    flagged: list[Outlier]
    method: str
    note: str
    models: dict[str, AgeModel] = field(default_factory=dict)

    def sidecar(self) -> dict[str, Any]:
        """The ``AgeModel`` entry of ``tissue_volumes_outliers.json``."""
        return {
            "Method": self.method,
            "Note": self.note,
            "Threshold": ROBUST_Z_THRESHOLD,
            "MinimumSessionsWithAge": MIN_AGED_SESSIONS,
            "Fit": "statsmodels RLM, Huber's T norm",
            "Scale": "MAD of the residuals / 0.6745 x sqrt(n / (n - parameters))",
            "Measures": {m: model.summary() for m, model in self.models.items()},
        }


def _age_reason(measure: str, value: float, z: float, expected: float, age: float) -> str:
    name, unit = _measure_phrase(measure)
    side = "above" if z > 0 else "below"
    c = centile(z)
    where = "<0.1" if c is not None and c < 0.1 else ">99.9" if c and c > 99.9 else f"{c:.1f}"
    return (
        f"{name} {_fmt_reason_value(value, unit)} is {abs(z):.1f} robust SD {side} the "
        f"{_fmt_reason_value(expected, unit)} expected at {age:g} months "
        f"(age model; centile {where})"
    )


def _fit_all(
    records: Sequence[SessionVolumes],
) -> tuple[dict[str, AgeModel], dict[str, str]]:
    """The age model of every measure that can be fitted, and why the others cannot."""
    models: dict[str, AgeModel] = {}
    failures: dict[str, str] = {}
    measures = [r.measures() for r in records]
    for measure in OUTLIER_MEASURES:
        pairs = [
            (r.age_months, m[measure])
            for r, m in zip(records, measures, strict=True)
            if r.age_months is not None and m[measure] is not None
        ]
        try:
            models[measure] = fit_age_model([a for a, _ in pairs], [v for _, v in pairs])
        except AgeModelError as exc:
            failures[measure] = str(exc)
    return models, failures


def score_outliers(records: Sequence[SessionVolumes]) -> OutlierScores:
    """Score every session for every measure (see the module docstring).

    Parameters
    ----------
    records
        The usable sessions.

    Returns
    -------
    OutlierScores
    """
    rows, cohort_flags = find_outliers(records)
    for row in rows:  # the cohort-wide score, until the age model replaces it
        row.update(
            method=METHOD_COHORT,
            expected=row["cohort_median"] if row["cohort_n"] else None,
            z=row["robust_z"],
            centile=centile(row["robust_z"]),
            note="",
        )
    n_aged = sum(1 for r in records if r.age_months is not None)
    if n_aged < MIN_AGED_SESSIONS:
        note = (
            f"cohort-wide robust z: {n_aged} session(s) have an age, the age model needs at "
            f"least {MIN_AGED_SESSIONS}; the cohort median does not allow for growth"
        )
        for row in rows:
            row["note"] = note
        return OutlierScores(rows, cohort_flags, METHOD_COHORT, note)

    models, failures = _fit_all(records)
    by_key = {(o.subject, o.session, o.measure): o for o in cohort_flags}
    flagged: list[Outlier] = []
    for row in rows:
        measure, age, value = row["measure"], row["age_months"], row["value"]
        key = (row["subject"], row["session"], measure)
        model = models.get(measure)
        if model is None or age is None or value is None:
            if value is None:
                pass  # "no value" already says it all
            elif age is None:
                row["note"] = "no age: scored against the whole cohort (robust z)"
            else:
                row["note"] = f"no age model for {measure} ({failures[measure]}): robust z"
            if key in by_key:
                flagged.append(by_key[key])
            continue
        expected = float(model.expected([age])[0])
        z = float(model.z([age], [value])[0])
        row.update(
            method=METHOD_AGE_MODEL,
            expected=expected,
            z=z,
            centile=centile(z),
            outlier=abs(z) > ROBUST_Z_THRESHOLD,
            reason="",
        )
        if row["outlier"]:
            row["reason"] = _age_reason(measure, value, z, expected, age)
            flagged.append(
                Outlier(
                    row["subject"],
                    row["session"],
                    measure,
                    value,
                    z,
                    row["reason"],
                    METHOD_AGE_MODEL,
                    expected,
                    row["centile"],
                    age,
                )
            )
    for measure, why in failures.items():
        LOGGER.warning("no age model for %s (%s): cohort-wide robust z used", measure, why)
    if models:
        kinds = sorted({m.description for m in models.values()})
        note = f"age model ({'; '.join(kinds)}) for {len(models)} measure(s)"
        if failures:
            note += f"; cohort-wide robust z for {', '.join(sorted(failures))}"
        method = METHOD_AGE_MODEL
    else:
        why = "; ".join(sorted(set(failures.values())))
        note = f"cohort-wide robust z: no measure could be modelled against age ({why})"
        method = METHOD_COHORT
    if n_aged < len(records):
        note += f"; {len(records) - n_aged} session(s) without an age scored against the cohort"
    return OutlierScores(rows, flagged, method, note, models)
