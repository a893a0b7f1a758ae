"""Group level: gather every session's tissue volumes into cohort tables, outliers and figures.

The participant level leaves one long-format table per session,
``sub-X[/ses-Y]/anat/sub-X[_ses-Y]_desc-tissue_volumes.tsv`` (rows ``GM``, ``WM``, ``CSF`` and
``brain``) with a JSON sidecar that carries the age. This package reads them all and writes, in
``output_dir/group/``:

* ``tissue_volumes.tsv`` (+ ``.json`` column descriptions): one row per session, wide format,
  ready for a statistics package;
* ``tissue_volumes_summary.tsv``: n, mean, SD, median and quartiles per measure, for the whole
  cohort and per age bin (infant brains grow fast, so a pooled mean alone misleads);
* ``tissue_volumes_outliers.tsv``: a robust z-score per session and measure, flagged above 3.5
  with a sentence saying why, and the path of the session's report for a visual check;
* ``sessions_status.tsv``: every expected session as ``ok``, ``failed`` (with the first line of
  its crash file), ``partial`` (outputs present but unusable, with the reason) or ``missing``;
* figures, PNG and SVG: volume against age per tissue (when any age is known) and distributions.

Why so defensive: the group level is run after a batch job in which some participants crashed,
some were killed half-way and some were never started. A missing or broken session is listed
in ``sessions_status.tsv`` and logged, never fatal; only a folder with no usable session at all
is an error. Every table is checked strictly (header, tissue rows, labels, numbers, the brain row
being the sum of the tissues) so a hand-edited or truncated file is reported, not averaged in.

All paths written into the tables are relative to ``output_dir`` (the derivatives root), as
BIDS does for paths inside a dataset. Everything here is plain Python, numpy and matplotlib
(Agg, no display); nipype and pybids are not needed unless ``bids_dir`` is given.

The package holds the entry point :func:`run_group` and its :class:`GroupResult`; the work is
split over ``read`` (one session's table and sidecar), ``status`` (finding sessions and their
status), ``stats`` (pure statistics and outliers), ``tables`` (columns, rows, sidecar) and
``figures`` (matplotlib).
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
from .figures import make_figures
from .read import (
    SessionVolumes,
    VolumeTableError,
    read_session_sidecar,
    read_session_table,
    read_session_volumes,
)
from .stats import Outlier, age_bin, describe, find_outliers, lowess, robust_z
from .status import STATUSES, VOLUMES_SUFFIX, SessionStatus, collect_group
from .tables import (
    OUTLIER_COLUMNS,
    STATUS_COLUMNS,
    SUMMARY_COLUMNS,
    VOLUMES_COLUMNS,
    _outlier_table_rows,
    _status_rows,
    _summary_rows,
    _tsv,
    _volumes_rows,
    _volumes_sidecar,
)

__all__ = [
    "OUTLIER_COLUMNS",
    "STATUSES",
    "STATUS_COLUMNS",
    "SUMMARY_COLUMNS",
    "VOLUMES_COLUMNS",
    "GroupResult",
    "Outlier",
    "SessionStatus",
    "SessionVolumes",
    "VolumeTableError",
    "age_bin",
    "collect_group",
    "describe",
    "find_outliers",
    "lowess",
    "make_figures",
    "read_session_sidecar",
    "read_session_table",
    "read_session_volumes",
    "robust_z",
    "run_group",
]

LOGGER = logging.getLogger(__name__)


@dataclass
class GroupResult:
    """What :func:`run_group` wrote and found.

    Attributes
    ----------
    group_dir
        ``output_dir/group``.
    volumes_tsv, volumes_json, summary_tsv, outliers_tsv, status_tsv
        The tables written.
    figures
        The figure files written (PNG and SVG).
    sessions
        The status of every session, in table order.
    outliers
        The flagged values.
    """

    group_dir: Path
    volumes_tsv: Path
    volumes_json: Path
    summary_tsv: Path
    outliers_tsv: Path
    status_tsv: Path
    figures: list[Path] = field(default_factory=list)
    sessions: list[SessionStatus] = field(default_factory=list)
    outliers: list[Outlier] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        """Every file written."""
        tables = [
            self.volumes_tsv,
            self.volumes_json,
            self.summary_tsv,
            self.outliers_tsv,
            self.status_tsv,
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
    """Run the group level: cohort tables, outliers, session status and figures in ``group/``.

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
            write_atomic(_tsv(STATUS_COLUMNS, _status_rows(statuses)), status_tsv)
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
    outlier_rows, flagged = find_outliers(records)
    for o in flagged:
        LOGGER.warning("%s: possible outlier: %s", _unit_label(o.subject, o.session), o.reason)

    result = GroupResult(
        group_dir=group,
        volumes_tsv=write_atomic(
            _tsv(VOLUMES_COLUMNS, _volumes_rows(records, root)), group / "tissue_volumes.tsv"
        ),
        volumes_json=write_atomic(_volumes_sidecar(), group / "tissue_volumes.json"),
        summary_tsv=write_atomic(
            _tsv(SUMMARY_COLUMNS, _summary_rows(records)), group / "tissue_volumes_summary.tsv"
        ),
        outliers_tsv=write_atomic(
            _tsv(OUTLIER_COLUMNS, _outlier_table_rows(outlier_rows, root)),
            group / "tissue_volumes_outliers.tsv",
        ),
        status_tsv=write_atomic(_tsv(STATUS_COLUMNS, _status_rows(statuses)), status_tsv),
        sessions=list(statuses),
        outliers=flagged,
    )
    result.figures = make_figures(records, flagged, group)
    LOGGER.info("group level: wrote %d file(s) to %s", len(result.paths), group)
    return result
