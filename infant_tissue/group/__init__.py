"""Group level: gather every session's tissue volumes into cohort tables, outliers and figures.

The participant level leaves one long-format table per session,
``sub-X[/ses-Y]/anat/sub-X[_ses-Y]_desc-tissue_volumes.tsv`` (rows ``GM``, ``WM``, ``CSF`` and
``brain``) with a JSON sidecar that carries the age. This package reads them all and writes, in
``output_dir/group/``:

* ``tissue_volumes.tsv`` (+ ``.json`` column descriptions): one row per session, wide format,
  ready for a statistics package;
* ``tissue_volumes_summary.tsv``: n, mean, SD, median and quartiles per measure, for the whole
  cohort and per age bin (infant brains grow fast, so a pooled mean alone misleads);
* ``tissue_volumes_outliers.tsv`` (+ ``.json``: columns and the age model): per session and
  measure, the residual z-score and centile against the value expected at the session's age
  (a robust fit of the measure against age, once at least 8 sessions have an age) or, failing
  that, the cohort-wide robust z; flagged above 3.5 with a sentence saying why, and the path of
  the session's report for a visual check;
* ``session_qc.tsv`` (+ ``.json``): every session's QC verdict (pass/warn/fail, or n/a without
  a QC record), its reasons and metrics;
* ``sessions_status.tsv``: every expected session as ``ok``, ``failed`` (with the first line of
  its crash file), ``partial`` (outputs present but unusable, with the reason) or ``missing``;
* figures, PNG and SVG: growth curves (each volume and fraction against age with the age
  model's median and centile bands; a scatter and trend without it) and distributions.

Why so defensive: the group level is run after a batch job in which some participants crashed,
some were killed half-way and some were never started. A missing or broken session is listed
in ``sessions_status.tsv`` and logged, never fatal; only a folder with no usable session at all
is an error. Every table is checked strictly (header, tissue rows, labels, numbers, the brain row
being the sum of the tissues) so a hand-edited or truncated file is reported, not averaged in.

All paths written into the tables are relative to ``output_dir`` (the derivatives root), as
BIDS does for paths inside a dataset. Everything here is Python, numpy, pandas (tables),
statsmodels (age model, LOWESS) and matplotlib (Agg, no display); nipype and pybids are not
needed unless ``bids_dir`` is given.

The package holds the entry point :func:`run_group` and its :class:`GroupResult`; the work is
split over ``read`` (one session's table and sidecar), ``status`` (finding sessions and their
status), ``stats`` (pure statistics, cohort-wide outliers), ``agemodel`` (the robust fit
against age), ``outliers`` (which of the two scores each session), ``session_qc`` (the QC
verdicts), ``tables`` (columns, rows, sidecars, the TSV writer) and ``figures`` (matplotlib).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..utils.atomic import write_atomic
from ._common import _unit_label
from .agemodel import AgeModel, AgeModelError, fit_age_model
from .figures import make_figures
from .outliers import OutlierScores, score_outliers
from .read import (
    SessionVolumes,
    VolumeTableError,
    read_session_sidecar,
    read_session_table,
    read_session_volumes,
)
from .session_qc import SessionQCRow, collect_session_qc, session_qc_frame, session_qc_sidecar
from .stats import Outlier, age_bin, describe, find_outliers, robust_z
from .status import STATUSES, VOLUMES_SUFFIX, SessionStatus, collect_group
from .tables import (
    OUTLIER_COLUMNS,
    STATUS_COLUMNS,
    SUMMARY_COLUMNS,
    VOLUMES_COLUMNS,
    _outlier_table_rows,
    _outliers_sidecar,
    _status_rows,
    _summary_rows,
    _volumes_rows,
    _volumes_sidecar,
    frame_of,
    write_table,
)

__all__ = [
    "OUTLIER_COLUMNS",
    "STATUSES",
    "STATUS_COLUMNS",
    "SUMMARY_COLUMNS",
    "VOLUMES_COLUMNS",
    "AgeModel",
    "AgeModelError",
    "GroupResult",
    "Outlier",
    "OutlierScores",
    "SessionQCRow",
    "SessionStatus",
    "SessionVolumes",
    "VolumeTableError",
    "age_bin",
    "collect_group",
    "collect_session_qc",
    "describe",
    "find_outliers",
    "fit_age_model",
    "make_figures",
    "read_session_sidecar",
    "read_session_table",
    "read_session_volumes",
    "robust_z",
    "run_group",
    "score_outliers",
]

LOGGER = logging.getLogger(__name__)


@dataclass
class GroupResult:
    """What :func:`run_group` wrote and found.

    Attributes
    ----------
    group_dir
        ``output_dir/group``.
    volumes_tsv, volumes_json, summary_tsv, outliers_tsv, outliers_json, status_tsv
        The tables written (and sidecars).
    session_qc_tsv, session_qc_json
        Every session's QC verdict, and the column descriptions.
    figures
        The figure files written (PNG and SVG).
    sessions
        The status of every session, in table order.
    outliers
        The flagged values.
    qc
        The QC row of every session, in the order of ``sessions``.
    outlier_method, outlier_note
        ``"age-model"`` or ``"cohort"``, and the sentence saying which model or why not.
    age_models
        The age model of each measure that has one.
    """

    group_dir: Path
    volumes_tsv: Path
    volumes_json: Path
    summary_tsv: Path
    outliers_tsv: Path
    outliers_json: Path
    status_tsv: Path
    session_qc_tsv: Path
    session_qc_json: Path
    figures: list[Path] = field(default_factory=list)
    sessions: list[SessionStatus] = field(default_factory=list)
    outliers: list[Outlier] = field(default_factory=list)
    qc: list[SessionQCRow] = field(default_factory=list)
    outlier_method: str = "cohort"
    outlier_note: str = ""
    age_models: dict[str, AgeModel] = field(default_factory=dict)

    @property
    def paths(self) -> list[Path]:
        """Every file written."""
        tables = [
            self.volumes_tsv,
            self.volumes_json,
            self.summary_tsv,
            self.outliers_tsv,
            self.outliers_json,
            self.status_tsv,
            self.session_qc_tsv,
            self.session_qc_json,
        ]
        return tables + list(self.figures)

    def _with(self, status: str) -> list[tuple[str, str | None]]:
        return [(s.subject, s.session) for s in self.sessions if s.status == status]

    @property
    def ok(self) -> list[tuple[str, str | None]]:
        """``(subject, session)`` of the sessions in the tables."""
        return self._with("ok")

    @property
    def failed(self) -> list[tuple[str, str | None]]:
        """``(subject, session)`` of the sessions with a crash file and no volume table."""
        return self._with("failed")

    @property
    def partial(self) -> list[tuple[str, str | None]]:
        """``(subject, session)`` of the sessions whose outputs are present but unusable."""
        return self._with("partial")

    @property
    def missing(self) -> list[tuple[str, str | None]]:
        """``(subject, session)`` of the expected sessions without any output."""
        return self._with("missing")

    @property
    def n_ok(self) -> int:
        """Number of sessions in the tables."""
        return len(self.ok)

    @property
    def n_failed(self) -> int:
        """Number of failed sessions."""
        return len(self.failed)

    @property
    def n_partial(self) -> int:
        """Number of sessions with unusable outputs."""
        return len(self.partial)

    @property
    def n_missing(self) -> int:
        """Number of expected sessions without outputs."""
        return len(self.missing)


# --- entry point -----------------------------------------------------------------------------------


def run_group(
    output_dir: str | os.PathLike[str],
    bids_dir: str | os.PathLike[str] | None = None,
    *,
    expected_sessions: Iterable[Any] | None = None,
) -> GroupResult:
    """Run the group level: cohort tables, outliers, QC verdicts, status and figures in group/.

    Parameters
    ----------
    output_dir
        The participant level's output folder; results go to ``output_dir/group/``.
    bids_dir
        Raw dataset; when given (and ``expected_sessions`` is not) its sessions are expected,
        so one that never produced anything is listed as ``missing``.
    expected_sessions
        ``(subject, session)`` pairs (or :class:`~infant_tissue.utils.bids.SessionInputs`)
        expected to have outputs; takes precedence over ``bids_dir``. Without either, only what
        is in ``output_dir`` is considered.

    Returns
    -------
    GroupResult
        Paths written, the status of every session and the flagged outliers.

    Raises
    ------
    ValueError
        When no session has a usable volume table. ``sessions_status.tsv`` is still written
        when any session was expected or found, so the reasons are on disk.
    """
    root = Path(output_dir)
    group = root / "group"
    records, statuses = collect_group(root, bids_dir, expected_sessions=expected_sessions)
    status_tsv = group / "sessions_status.tsv"
    counts = {s: sum(1 for st in statuses if st.status == s) for s in STATUSES}
    for st in statuses:
        if st.status != "ok":
            LOGGER.warning("%s: %s (%s)", st.label, st.status, st.detail)
        elif st.detail:
            LOGGER.info("%s: %s", st.label, st.detail)

    if not records:
        where = root if root.is_dir() else f"{root} (folder does not exist)"
        found = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no sessions at all"
        if statuses:
            write_table(frame_of(_status_rows(statuses), STATUS_COLUMNS), status_tsv)
        raise ValueError(
            f"no session volume tables found under {where} "
            f"(expected sub-<label>[/ses-<label>]/anat/*{VOLUMES_SUFFIX}.tsv; found: {found})"
        )

    LOGGER.info(
        "group level: %d session(s) usable, %d failed, %d partial, %d missing",
        counts["ok"],
        counts["failed"],
        counts["partial"],
        counts["missing"],
    )
    scores = score_outliers(records)
    LOGGER.info("outliers: %s", scores.note)
    for o in scores.flagged:
        LOGGER.warning("%s: possible outlier: %s", _unit_label(o.subject, o.session), o.reason)
    qc = collect_session_qc(root, statuses)

    result = GroupResult(
        group_dir=group,
        volumes_tsv=write_table(
            frame_of(_volumes_rows(records, root), VOLUMES_COLUMNS), group / "tissue_volumes.tsv"
        ),
        volumes_json=write_atomic(_volumes_sidecar(), group / "tissue_volumes.json"),
        summary_tsv=write_table(
            frame_of(_summary_rows(records), SUMMARY_COLUMNS),
            group / "tissue_volumes_summary.tsv",
        ),
        outliers_tsv=write_table(
            frame_of(_outlier_table_rows(scores.rows, root), OUTLIER_COLUMNS),
            group / "tissue_volumes_outliers.tsv",
        ),
        outliers_json=write_atomic(
            _outliers_sidecar(scores.sidecar()), group / "tissue_volumes_outliers.json"
        ),
        status_tsv=write_table(frame_of(_status_rows(statuses), STATUS_COLUMNS), status_tsv),
        session_qc_tsv=write_table(session_qc_frame(qc), group / "session_qc.tsv"),
        session_qc_json=write_atomic(session_qc_sidecar(qc), group / "session_qc.json"),
        sessions=list(statuses),
        outliers=scores.flagged,
        qc=qc,
        outlier_method=scores.method,
        outlier_note=scores.note,
        age_models=scores.models,
    )
    result.figures = make_figures(
        records, scores.flagged, group, models=scores.models, note=scores.note
    )
    LOGGER.info("group level: wrote %d file(s) to %s", len(result.paths), group)
    return result
