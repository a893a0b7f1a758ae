"""The group tables: their columns, their rows, their sidecars and the TSV writer.

Column constants of ``tissue_volumes.tsv``, ``tissue_volumes_summary.tsv``,
``tissue_volumes_outliers.tsv`` and ``sessions_status.tsv``; the builders of their rows (numbers
formatted without trailing zeros, ``n/a`` for missing values, paths relative to the output
folder); the column descriptions of ``tissue_volumes.json`` and
``tissue_volumes_outliers.json``; and :func:`write_table`, which writes a pandas DataFrame as a
BIDS TSV atomically. Deciding what to write is left to :func:`~infant_tissue.group.run_group`.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..utils.atomic import write_atomic
from ..utils.tsv import cell
from ._common import (
    FRACTION_MEASURES,
    NA,
    PV_MEASURES,
    REMOVED_MEASURE,
    TISSUES,
    VOLUME_MEASURES,
    _float,
    _prefix,
    _rel,
)
from .read import SessionVolumes
from .stats import AGE_BIN_LABELS, UNKNOWN_AGE_BIN, age_bin, describe
from .status import SessionStatus

#: Age bin label of the whole cohort in the summary table.
ALL_AGES_BIN = "all"
#: Measures summarised in ``tissue_volumes_summary.tsv``.
SUMMARY_MEASURES: tuple[str, ...] = (
    ("age_months",) + VOLUME_MEASURES + PV_MEASURES + FRACTION_MEASURES + (REMOVED_MEASURE,)
)

#: Columns of ``group/tissue_volumes.tsv``.
VOLUMES_COLUMNS: tuple[str, ...] = (
    "subject",
    "session",
    "age_months",
    *VOLUME_MEASURES,
    *PV_MEASURES,
    *FRACTION_MEASURES,
    REMOVED_MEASURE,
    "age_source",
    "model_bundle",
    "inference_mode",
    "report",
)
#: Columns of ``group/tissue_volumes_summary.tsv``.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "age_bin",
    "measure",
    "n",
    "mean",
    "sd",
    "median",
    "q1",
    "q3",
    "iqr",
)
#: Columns of ``group/tissue_volumes_outliers.tsv``.
OUTLIER_COLUMNS: tuple[str, ...] = (
    "subject",
    "session",
    "age_months",
    "measure",
    "value",
    "method",
    "expected",
    "z",
    "centile",
    "outlier",
    "reason",
    "note",
    "cohort_n",
    "cohort_median",
    "cohort_mad",
    "robust_z",
    "report",
)
#: Columns of ``group/sessions_status.tsv``.
STATUS_COLUMNS: tuple[str, ...] = (
    "subject",
    "session",
    "status",
    "detail",
    "volumes_file",
    "crash_file",
    "report",
)


def _fmt(value: float | None, decimals: int) -> str:
    """A number with at most ``decimals`` decimals and no trailing zeros; ``n/a`` if missing."""
    if value is None or not math.isfinite(value):
        return NA
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _cell(value: Any) -> str:
    """A TSV cell (:func:`infant_tissue.utils.tsv.cell`); NaN, which pandas uses for missing
    values, is ``n/a`` too."""
    if isinstance(value, float) and math.isnan(value):
        return NA
    return cell(value)


def frame_of(rows: Sequence[Sequence[Any]] | Sequence[Mapping[str, Any]], columns: Sequence[str]):
    """A pandas DataFrame of ``rows`` (lists in column order, or dicts) with ``columns``."""
    import pandas as pd

    return pd.DataFrame(list(rows), columns=list(columns))


def write_table(frame: Any, path: str | os.PathLike[str]) -> Path:
    """Write a DataFrame as a BIDS TSV, atomically: tab-separated, ``n/a`` for missing values,
    no index, no quoting (:func:`_cell` folds tabs and newlines, so no cell needs quotes)."""
    cells = frame.astype(object).apply(lambda column: column.map(_cell))
    text = cells.to_csv(sep="\t", index=False, lineterminator="\n", quoting=csv.QUOTE_NONE)
    return write_atomic(text, path)


# --- tables --------------------------------------------------------------------------------------


def _volumes_rows(records: Sequence[SessionVolumes], root: Path) -> list[list[Any]]:
    rows = []
    for rec in records:
        m = rec.measures()
        report_path = root / f"{_prefix(rec.subject, rec.session)}.html"
        rows.append(
            [
                f"sub-{rec.subject}",
                f"ses-{rec.session}" if rec.session else None,
                _fmt(rec.age_months, 4),
                *(_fmt(m[k], 3) for k in VOLUME_MEASURES + PV_MEASURES),
                *(_fmt(m[k], 6) for k in FRACTION_MEASURES),
                _fmt(m[REMOVED_MEASURE], 3),
                rec.age_source,
                rec.model_bundle,
                rec.inference_mode,
                _rel(report_path, root) if report_path.is_file() else None,
            ]
        )
    return rows


def _summary_rows(records: Sequence[SessionVolumes]) -> list[list[Any]]:
    groups: list[tuple[str, list[SessionVolumes]]] = [(ALL_AGES_BIN, list(records))]
    for label in (*AGE_BIN_LABELS, UNKNOWN_AGE_BIN):
        members = [r for r in records if age_bin(r.age_months) == label]
        if members:
            groups.append((label, members))
    rows = []
    for label, members in groups:
        values = [r.measures() for r in members]
        for measure in SUMMARY_MEASURES:
            stats = describe([v[measure] for v in values])
            digits = 6 if measure.endswith("_fraction") else 4 if measure == "age_months" else 3
            rows.append(
                [
                    label,
                    measure,
                    stats["n"],
                    *(_fmt(_float(stats[k]), digits) for k in SUMMARY_COLUMNS[3:]),
                ]
            )
    return rows


def _outlier_table_rows(rows: Sequence[Mapping[str, Any]], root: Path) -> list[list[Any]]:
    out = []
    for row in rows:
        digits = 6 if row["measure"].endswith("_fraction") else 3
        report_path = root / f"{_prefix(row['subject'], row['session'])}.html"
        out.append(
            [
                f"sub-{row['subject']}",
                f"ses-{row['session']}" if row["session"] else None,
                _fmt(row["age_months"], 4),
                row["measure"],
                _fmt(row["value"], digits),
                row["method"],
                _fmt(row["expected"], digits),
                _fmt(row["z"], 3),
                _fmt(row["centile"], 3),
                "true" if row["outlier"] else "false",
                row["reason"] or None,
                row["note"] or None,
                row["cohort_n"],
                _fmt(row["cohort_median"], digits),
                _fmt(row["cohort_mad"], digits),
                _fmt(row["robust_z"], 3),
                _rel(report_path, root) if report_path.is_file() else None,
            ]
        )
    return out


def _status_rows(statuses: Sequence[SessionStatus]) -> list[list[Any]]:
    return [
        [
            f"sub-{s.subject}",
            f"ses-{s.session}" if s.session else None,
            s.status,
            s.detail or None,
            s.volumes_file,
            s.crash_file,
            s.report,
        ]
        for s in statuses
    ]


def _volumes_sidecar() -> dict[str, Any]:
    cols: dict[str, Any] = {
        "subject": {"Description": "BIDS participant label (sub-<label>)."},
        "session": {"Description": "BIDS session label (ses-<label>); n/a without sessions."},
        "age_months": {
            "Description": "Age at scan, from the session's volume table sidecar.",
            "Units": "months",
        },
        "age_source": {"Description": "Where the age came from (file and column, or option)."},
        "model_bundle": {"Description": "Model bundle that produced the segmentation."},
        "inference_mode": {"Description": "Inference mode of the segmentation engine."},
        "report": {"Description": "Path of the session's HTML report, relative to this dataset."},
    }
    for tissue in (*TISSUES, "brain"):
        what = "total brain (CSF + GM + WM)" if tissue == "brain" else tissue
        key = tissue.lower()
        cols[f"{key}_mm3"] = {
            "Description": f"{what} volume from the label map (voxel count x voxel volume).",
            "Units": "mm^3",
        }
        cols[f"{key}_pv_mm3"] = {
            "Description": f"{what} partial volume: sum of the tissue probabilities x voxel volume.",
            "Units": "mm^3",
        }
    for tissue in TISSUES:
        cols[f"{tissue.lower()}_fraction"] = {
            "Description": f"{tissue} label-map volume divided by brain_mm3.",
            "Units": "arbitrary",
        }
    cols[REMOVED_MEASURE] = {
        "Description": "Volume of the cerebellum + brain stem removed before segmentation (not "
        "part of brain_mm3); n/a when they were kept.",
        "Units": "mm^3",
    }
    return {c: cols[c] for c in VOLUMES_COLUMNS}


def _outliers_sidecar(age_model: Mapping[str, Any]) -> dict[str, Any]:
    """Column descriptions of ``tissue_volumes_outliers.tsv``, and the age model used."""
    cols: dict[str, Any] = {
        "subject": {"Description": "BIDS participant label (sub-<label>)."},
        "session": {"Description": "BIDS session label (ses-<label>); n/a without sessions."},
        "age_months": {"Description": "Age at scan.", "Units": "months"},
        "measure": {"Description": "Column of tissue_volumes.tsv scored."},
        "value": {"Description": "The session's value of the measure."},
        "method": {
            "Description": "How the value was scored.",
            "Levels": {
                "age-model": "residual from the robust fit of the measure against age",
                "cohort": "robust z against the whole cohort (too few sessions with an age, "
                "no age for this session, or no age model for this measure: see note)",
            },
        },
        "expected": {
            "Description": "Value expected at the session's age (age model), or the cohort "
            "median (cohort)."
        },
        "z": {
            "Description": "Residual / robust residual scale (age model), or 0.6745 x (value - "
            "median) / MAD (cohort). |z| > 3.5 is flagged."
        },
        "centile": {
            "Description": "Centile of the value given z, under a normal distribution.",
            "Units": "%",
        },
        "outlier": {"Description": "true when |z| > 3.5."},
        "reason": {"Description": "Why the value is flagged, or why it was not assessed."},
        "note": {"Description": "Why the cohort-wide robust z was used instead of the age model."},
        "cohort_n": {"Description": "Sessions with a value of the measure."},
        "cohort_median": {"Description": "Median of the measure over the cohort."},
        "cohort_mad": {"Description": "Median absolute deviation over the cohort (unscaled)."},
        "robust_z": {"Description": "Cohort-wide robust z, whatever the method (for comparison)."},
        "report": {"Description": "Path of the session's HTML report, relative to this dataset."},
    }
    return {**{c: cols[c] for c in OUTLIER_COLUMNS}, "AgeModel": dict(age_model)}
