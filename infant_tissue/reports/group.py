"""The cohort report ``output_dir/group/report.html``, made from what :func:`run_group` wrote."""

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

#: group figure stem -> (title, caption)
GROUP_FIGURES = {
    "tissue_volumes_vs_age": (
        "Volumes against age",
        "Each tissue's volume against age at scan, with a LOWESS trend; flagged outliers marked.",
    ),
    "tissue_volumes_distributions": (
        "Distributions",
        "Distribution of each tissue's volume and fraction of the brain across the cohort.",
    ),
}


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _session_label(subject: str, session: str | None) -> tuple[str, str | None]:
    return subject.removeprefix("sub-"), (
        session.removeprefix("ses-") if session and session != "n/a" else None
    )


def generate_group_report(output_dir: str | Path, result: Any) -> Path:
    """Write ``group/report.html``: volumes vs age, distributions, the outliers (linked to each
    session's report), the summary table, and every failed, partial or missing session."""
    output_dir = Path(output_dir)
    group = output_dir / "group"
    report = group / "report.html"

    def session_link(subject: str, session: str | None) -> str:
        path = session_report_path(output_dir, *_session_label(subject, session))
        return relative_link(path, report) if path.is_file() else ""

    figs = []
    for stem, (title, caption) in GROUP_FIGURES.items():
        png = group / f"{stem}.png"
        if png.is_file():
            figs.append({"key": stem, "title": title, "caption": caption, "link": png.name})
    outliers = [
        {
            "label": session_prefix(*_session_label(o.subject, o.session)),
            "measure": o.measure,
            "value": o.value,
            "robust_z": o.robust_z,
            "reason": o.reason,
            "link": session_link(o.subject, o.session),
        }
        for o in result.outliers
    ]
    sessions = [
        {
            "label": session_prefix(*_session_label(s.subject, s.session)),
            "status": s.status,
            "detail": s.detail,
            "link": session_link(s.subject, s.session),
            "crash": relative_link(output_dir / s.crash_file, report) if s.crash_file else "",
        }
        for s in result.sessions
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
