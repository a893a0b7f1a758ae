"""Every session's QC verdict in one table: ``group/session_qc.tsv`` and its JSON sidecar.

The participant level writes one ``*_desc-tissue_qc.json`` per session (verdict ``pass`` /
``warn`` / ``fail``, the reasons, the metrics; :mod:`infant_tissue.qc.record`). Here they are
gathered, one row per session the group level knows of (:class:`~.status.SessionStatus`), so a
lab can sort hundreds of sessions by verdict or by any metric instead of opening each report.

A session without a QC record (runs made before the QC existed, failed or missing sessions) gets
``qc`` = ``n/a`` and the reason ``no QC record``; a record that cannot be read gets ``n/a`` and
a reason naming the file and the problem. Neither is fatal: the table is a summary, the
volumes and the outliers do not depend on it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import layout
from ..qc import VERDICTS, QCRecordError, read_session_qc
from ._common import NA, _rel
from .status import SessionStatus
from .tables import _fmt, frame_of

LOGGER = logging.getLogger(__name__)

#: Value of ``qc`` for a session without a usable QC record.
QC_NA = NA
#: Values of the ``qc`` column, best first.
QC_VALUES: tuple[str, ...] = (*VERDICTS, QC_NA)
#: Reason given for a session without a QC record.
NO_RECORD = "no QC record"
#: The metric with a column of its own right after the verdict (the issue's headline measure).
HEADLINE_METRIC = "disagreement_mean"
#: Columns before the metrics (``disagreement_mean`` is a metric kept in front).
QC_HEAD: tuple[str, ...] = ("participant_id", "session_id", "qc", HEADLINE_METRIC, "reasons")
#: Columns after the metrics.
QC_TAIL: tuple[str, ...] = ("status", "qc_file", "report")
#: Separator of the reasons in one cell.
REASONS_SEP = "; "


@dataclass(frozen=True)
class SessionQCRow:
    """One session's QC verdict, as the group level found it.

    Attributes
    ----------
    subject, session
        Labels without prefixes; ``session`` is None without sessions.
    qc
        One of :data:`QC_VALUES`.
    reasons
        The record's reasons, or why there is no verdict.
    metrics
        The record's metrics (None where it could not measure one); empty without a record.
    status
        The session's status in ``sessions_status.tsv`` (ok, failed, partial, missing).
    qc_file, report
        Paths relative to the output folder, or None.
    thresholds
        The record's documented thresholds, by metric (for the sidecar).
    """

    subject: str
    session: str | None
    qc: str
    reasons: tuple[str, ...]
    metrics: Mapping[str, float | None] = field(default_factory=dict)
    status: str = "ok"
    qc_file: str | None = None
    report: str | None = None
    thresholds: Mapping[str, Any] = field(default_factory=dict)

    @property
    def disagreement_mean(self) -> float | None:
        return self.metrics.get(HEADLINE_METRIC)


def read_qc_row(root: str | os.PathLike[str], status: SessionStatus) -> SessionQCRow:
    """The QC row of one session: its record read, or ``n/a`` with the reason."""
    root = Path(root)
    common = {"status": status.status, "report": status.report}
    path = layout.find_session_derivatives(root, status.subject, status.session).get("qc")
    if path is None:
        why = NO_RECORD if status.status == "ok" else f"{NO_RECORD} (session {status.status})"
        return SessionQCRow(status.subject, status.session, QC_NA, (why,), **common)
    rel = _rel(path, root)
    try:
        record = read_session_qc(path)
    except (QCRecordError, OSError, ValueError, TypeError) as exc:
        # the message names the file by its absolute path; the table's paths are relative
        why = str(exc).replace(str(path), rel or path.name)
        LOGGER.warning("%s: QC record not used: %s", status.label, why)
        return SessionQCRow(status.subject, status.session, QC_NA, (why,), qc_file=rel, **common)
    thresholds = record.thresholds if isinstance(record.thresholds, Mapping) else {}
    return SessionQCRow(
        status.subject,
        status.session,
        record.verdict,
        tuple(record.reasons),
        dict(record.metrics),
        qc_file=rel,
        thresholds=thresholds,
        **common,
    )


def collect_session_qc(
    root: str | os.PathLike[str], statuses: Sequence[SessionStatus]
) -> list[SessionQCRow]:
    """One :class:`SessionQCRow` per session, in the order of ``statuses``."""
    return [read_qc_row(root, s) for s in statuses]


def qc_counts(rows: Sequence[SessionQCRow]) -> dict[str, int]:
    """Sessions per value of ``qc`` (every value of :data:`QC_VALUES`, zeros included)."""
    return {v: sum(1 for r in rows if r.qc == v) for v in QC_VALUES}


def metric_columns(rows: Sequence[SessionQCRow]) -> list[str]:
    """The metrics of any record other than the headline one, in order of first appearance
    (records of one version list their metrics in one order, so the columns follow it)."""
    seen: dict[str, None] = {}
    for row in rows:
        for name in row.metrics:
            if name != HEADLINE_METRIC:
                seen.setdefault(name, None)
    return list(seen)


def session_qc_columns(rows: Sequence[SessionQCRow]) -> list[str]:
    """Columns of ``session_qc.tsv`` for these rows."""
    return [*QC_HEAD, *metric_columns(rows), *QC_TAIL]


def session_qc_frame(rows: Sequence[SessionQCRow]) -> Any:
    """``session_qc.tsv`` as a pandas DataFrame of formatted cells (``n/a`` when missing)."""
    metrics = metric_columns(rows)
    records = []
    for r in rows:
        records.append(
            {
                "participant_id": f"sub-{r.subject}",
                "session_id": f"ses-{r.session}" if r.session else None,
                "qc": r.qc,
                HEADLINE_METRIC: _fmt(r.disagreement_mean, 6),
                "reasons": REASONS_SEP.join(r.reasons) or None,
                **{m: _fmt(r.metrics.get(m), 6) for m in metrics},
                "status": r.status,
                "qc_file": r.qc_file,
                "report": r.report,
            }
        )
    return frame_of(records, session_qc_columns(rows))


def session_qc_sidecar(rows: Sequence[SessionQCRow]) -> dict[str, Any]:
    """Column descriptions of ``session_qc.tsv`` (BIDS tabular-file sidecar)."""
    cols: dict[str, Any] = {
        "participant_id": {"Description": "BIDS participant label (sub-<label>)."},
        "session_id": {"Description": "BIDS session label (ses-<label>); n/a without sessions."},
        "qc": {
            "Description": "Automatic QC verdict of the session's segmentation, from its "
            "*_desc-tissue_qc.json; n/a when the session has no readable QC record.",
            "Levels": {
                "pass": "every QC metric within its documented range",
                "warn": "a metric outside its warning range: look at the report",
                "fail": "a metric outside its failure range: do not use without checking",
                "n/a": "no QC record (older run, failed or missing session) or an unreadable one",
            },
        },
        HEADLINE_METRIC: {
            "Description": "Mean over the brain of the voxel-wise ensemble disagreement (the "
            "fraction of members whose label differs from the ensemble's); n/a when not "
            "measured (one-member bundle) or without a QC record.",
            "Units": "arbitrary",
        },
        "reasons": {
            "Description": "Why the verdict is not pass (one sentence per metric, joined with "
            f"'{REASONS_SEP}'), or why there is no verdict."
        },
        "status": {"Description": "The session's status in sessions_status.tsv."},
        "qc_file": {"Description": "Path of the session's QC record, relative to this dataset."},
        "report": {"Description": "Path of the session's HTML report, relative to this dataset."},
    }
    for name in metric_columns(rows):
        entry: dict[str, Any] = {"Description": f"QC metric {name} of the session's QC record."}
        limits = next((r.thresholds[name] for r in rows if name in r.thresholds), None)
        if limits:
            entry["Thresholds"] = limits
        cols[name] = entry
    limits = next(
        (r.thresholds[HEADLINE_METRIC] for r in rows if HEADLINE_METRIC in r.thresholds), None
    )
    if limits:
        cols[HEADLINE_METRIC]["Thresholds"] = limits
    return {c: cols[c] for c in session_qc_columns(rows)}
