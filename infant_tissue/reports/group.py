"""The cohort report ``output_dir/group/report.html``, made from what :func:`run_group` wrote.

Sections: an overview; the QC verdicts (counts of pass / warn / fail / n/a, and every session
that did not pass with its reasons); the growth curves and distributions; the outliers with
their z-score, centile and expected value, and which model scored them (the age model, or the
cohort-wide robust z with the note saying why); the summary; failed and missing sessions; and
every session with its status and QC verdict. Each session links to its own report.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
from pathlib import Path
from typing import Any

from .. import __version__
from ..layout import report_path as session_report_path
from ..layout import session_prefix
from .html import relative_link, render_report

LOGGER = logging.getLogger("infant_tissue.reports")

#: group figure stem -> (title, caption with the age model, caption without)
GROUP_FIGURES = {
    "tissue_volumes_vs_age": (
        "Growth curves",
        "Each tissue's volume and fraction of the brain against age at scan, with the age "
        "model's fitted median (line) and its 25-75 % and 5-95 % centile bands; flagged "
        "sessions marked X and labelled.",
        "Each tissue's volume and fraction of the brain against age at scan, with a LOWESS (or "
        "straight) trend: too few sessions have an age for the age model. Flagged sessions "
        "marked X and labelled.",
    ),
    "tissue_volumes_distributions": (
        "Distributions",
        "Distribution of each tissue's volume and fraction of the brain across the cohort.",
        "Distribution of each tissue's volume and fraction of the brain across the cohort.",
    ),
}
#: QC verdicts in the order the report counts them.
QC_ORDER = ("pass", "warn", "fail", "n/a")
#: Order of the sessions that did not pass: the worst first.
QC_SEVERITY = {"fail": 0, "warn": 1, "n/a": 2}


def _rows(path: Path) -> list[dict[str, str]]:
    """The rows of a group TSV as text (``n/a`` kept as written), or [] when absent."""
    if not path.is_file():
        return []
    import pandas as pd

    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
    return frame.to_dict(orient="records")


def _session_label(subject: str, session: str | None) -> tuple[str, str | None]:
    return subject.removeprefix("sub-"), (
        session.removeprefix("ses-") if session and session != "n/a" else None
    )


def _number(value: float | None, measure: str) -> str:
    """A volume in mm³ without decimals, a fraction with three."""
    if value is None:
        return "n/a"
    return f"{value:.3f}" if measure.endswith("_fraction") else f"{value:.0f}"


def _centile(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "<0.1" if value < 0.1 else ">99.9" if value > 99.9 else f"{value:.1f}"


def generate_group_report(output_dir: str | Path, result: Any) -> Path:
    """Write ``group/report.html`` (sections in the module docstring) from ``result``, the
    :class:`~infant_tissue.group.GroupResult` of the run, and the tables it wrote."""
    output_dir = Path(output_dir)
    group = output_dir / "group"
    report = group / "report.html"

    def session_link(subject: str, session: str | None) -> str:
        path = session_report_path(output_dir, *_session_label(subject, session))
        return relative_link(path, report) if path.is_file() else ""

    def label(subject: str, session: str | None) -> str:
        return session_prefix(*_session_label(subject, session))

    method = getattr(result, "outlier_method", "cohort")
    figs = []
    for stem, (title, with_model, without) in GROUP_FIGURES.items():
        png = group / f"{stem}.png"
        if png.is_file():
            caption = with_model if method == "age-model" else without
            figs.append({"key": stem, "title": title, "caption": caption, "link": png.name})
    outliers = [
        {
            "label": label(o.subject, o.session),
            "age": "n/a" if o.age_months is None else f"{o.age_months:g}",
            "measure": o.measure,
            "value": _number(o.value, o.measure),
            "expected": _number(o.expected, o.measure),
            "z": f"{o.z:.2f}",
            "centile": _centile(o.centile),
            "method": o.method,
            "reason": o.reason,
            "link": session_link(o.subject, o.session),
        }
        for o in result.outliers
    ]
    qc_rows = list(getattr(result, "qc", []))
    verdict = {(q.subject, q.session): q.qc for q in qc_rows}
    sessions = [
        {
            "label": label(s.subject, s.session),
            "status": s.status,
            "detail": s.detail,
            "qc": verdict.get((s.subject, s.session), "n/a"),
            "link": session_link(s.subject, s.session),
            "crash": relative_link(output_dir / s.crash_file, report) if s.crash_file else "",
        }
        for s in result.sessions
    ]
    qc_problems = [
        {
            "label": label(q.subject, q.session),
            "qc": q.qc,
            "status": q.status,
            "disagreement": "n/a" if q.disagreement_mean is None else f"{q.disagreement_mean:.3f}",
            "reasons": list(q.reasons),
            "link": session_link(q.subject, q.session),
        }
        # worst first: fail, warn, then the sessions without a verdict
        for q in sorted(qc_rows, key=lambda q: QC_SEVERITY.get(q.qc, 3))
        if q.qc != "pass"
    ]
    counts = {st: sum(1 for s in sessions if s["status"] == st) for st in ("ok", "failed")}
    counts["other"] = len(sessions) - counts["ok"] - counts["failed"]
    path = render_report(
        "group.html",
        report,
        title="infant-tissue group report",
        version=__version__,
        figures=figs,
        outliers=outliers,
        outlier_method=method,
        outlier_note=getattr(result, "outlier_note", ""),
        qc_counts={v: sum(1 for q in qc_rows if q.qc == v) for v in QC_ORDER},
        qc_problems=qc_problems,
        qc_any_record=any(q.qc != "n/a" for q in qc_rows),
        summary=[
            r for r in _rows(group / "tissue_volumes_summary.tsv") if r.get("age_bin") == "all"
        ],
        sessions=sessions,
        problems=[s for s in sessions if s["status"] != "ok"],
        counts=counts,
        generated=dt.datetime.now().isoformat(timespec="seconds"),
    )
    LOGGER.info("group report written to %s", path)
    return path
