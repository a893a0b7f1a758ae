"""BIDS inputs: which T1w/T2w pair each session uses (and its age, from :mod:`.age`).

Everything that reads a BIDS dataset's structure lives here, so the workflow only ever receives
explicit file paths and numbers. The unit of work is a *session* (a subject without sessions is
one unit with ``session=None``): longitudinal infant studies scan the same child at very
different ages, and each scan needs its own age, template cohort and result.

Nothing in this module raises for a problem that concerns only one session — a missing T2w, no
T1w at all, an unknown age. Those are recorded on :class:`SessionInputs` (``problems`` make the
session unusable, ``warnings`` do not) so one bad participant never stops the others. Errors
that make the whole request meaningless (an unknown participant label, an invalid filter file)
raise.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ExitCode, InfantTissueError
from ..layout import session_label, session_prefix
from .age import read_age_months
from .filters import (
    FILTER_SUFFIXES,
    IMAGE_EXTENSIONS,
    describe_filter,
    to_pybids_query,
    validate_bids_filters,
)
from .images import InputImageError, load_image
from .naming import natural_key, strip_prefix

LOGGER = logging.getLogger(__name__)


class BidsInputError(InfantTissueError, ValueError):
    """The request cannot be served from this BIDS dataset (base class of this module's errors)."""

    exit_code = ExitCode.USAGE


class ParticipantNotFoundError(BidsInputError):
    """Requested participant labels are not in the dataset.

    Attributes
    ----------
    missing
        The labels asked for and not found (without ``sub-``).
    available
        Every participant label the dataset has.
    """

    exit_code = ExitCode.NOINPUT

    def __init__(self, bids_dir: Path, missing: Sequence[str], available: Sequence[str]) -> None:
        self.missing = list(missing)
        self.available = list(available)
        shown = ", ".join(self.available[:20]) or "none"
        if len(self.available) > 20:
            shown += f", ... ({len(self.available)} in all)"
        if self.missing:
            what = "participant(s) " + ", ".join(f"sub-{m}" for m in self.missing)
            msg = f"{bids_dir}: {what} not found; available: {shown}"
        else:
            msg = f"{bids_dir}: no participants (sub-*/ folders with images) found"
        super().__init__(msg)


@dataclass
class SessionInputs:
    """Inputs of one unit of work: one subject's session (or the subject, without sessions).

    Attributes
    ----------
    subject, session
        Labels without ``sub-``/``ses-``; ``session`` is None for datasets without sessions.
    t1w, t2w
        The chosen images, or None when none was found (see ``problems``).
    t1w_candidates, t2w_candidates
        Every image that matched the query, in the order used to choose (first wins).
    age_months
        Age at scan in months, or None when unknown.
    age_source
        Where the age came from (file and column, ``--age-months``, or ``unknown``).
    warnings
        Things the user should know that do not stop processing (several candidates, age
        missing or outside the model's range, inconsistent metadata).
    problems
        Reasons this session cannot be processed (no T1w, no T2w, unreadable image...).
    """

    subject: str
    session: str | None
    t1w: Path | None = None
    t2w: Path | None = None
    t1w_candidates: list[Path] = field(default_factory=list)
    t2w_candidates: list[Path] = field(default_factory=list)
    age_months: float | None = None
    age_source: str = "unknown"
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the session can be processed (no problems recorded)."""
        return not self.problems

    @property
    def label(self) -> str:
        """``"sub-01 ses-V01"`` (or ``"sub-01"``) for messages."""
        return session_label(self.subject, self.session)

    @property
    def prefix(self) -> str:
        """``"sub-01_ses-V01"`` (or ``"sub-01"``): the start of this unit's BIDS file names."""
        return session_prefix(self.subject, self.session)

    @property
    def entities(self) -> dict[str, str]:
        """``{"subject": ..., "session": ...}`` (no session key without sessions)."""
        out = {"subject": self.subject}
        if self.session is not None:
            out["session"] = self.session
        return out


# --- layout ------------------------------------------------------------------------------------


def build_layout(bids_dir: str | os.PathLike[str]) -> Any:
    """Index a BIDS dataset with pybids, without validation or metadata (fast, tolerant).

    Validation is the job of the BIDS validator (``--skip-bids-validation`` turns it off);
    indexing sidecar metadata is not needed to choose images and is the slow part on large
    datasets. Build it once and pass it to :func:`collect_sessions`.

    Raises
    ------
    BidsInputError
        When ``bids_dir`` does not exist or is not a folder.
    """
    from bids.layout import BIDSLayout, BIDSLayoutIndexer

    root = Path(bids_dir)
    if not root.is_dir():
        raise BidsInputError(f"{root}: BIDS dataset folder not found")
    return BIDSLayout(
        str(root),
        validate=False,
        derivatives=False,
        indexer=BIDSLayoutIndexer(validate=False, index_metadata=False),
    )


# --- sessions ----------------------------------------------------------------------------------


def collect_sessions(
    bids_dir: str | os.PathLike[str],
    participant_labels: Iterable[str] | None = None,
    session_labels: Iterable[str] | None = None,
    bids_filters: Mapping[str, Any] | None = None,
    layout: Any | None = None,
    *,
    age_override: float | None = None,
) -> list[SessionInputs]:
    """Find the T1w/T2w pair and the age of every selected session.

    Parameters
    ----------
    bids_dir
        Root of the raw BIDS dataset.
    participant_labels
        Subjects to include, with or without ``sub-``; None means all.
    session_labels
        Sessions to include, with or without ``ses-``; None means all. A requested session a
        subject lacks is reported as a unit with a problem.
    bids_filters
        Per-suffix pybids filters (see :func:`load_bids_filters`); validated here too.
    layout
        A ``BIDSLayout`` of ``bids_dir`` built earlier (e.g. by :func:`build_layout`), to avoid
        indexing twice.
    age_override
        Age in months given on the command line (``--age-months``); it takes precedence over
        the dataset's metadata, and a disagreeing metadata value is reported as a warning.

    Returns
    -------
    list of SessionInputs
        One per (subject, session), sorted by subject then session. Each session's warnings are
        also logged here once, at WARNING level; problems are left for the caller to report.

    Raises
    ------
    ParticipantNotFoundError
        When a requested participant is not in the dataset (or the dataset has none).
    BidsFilterError
        When ``bids_filters`` is invalid.
    BidsInputError
        When ``bids_dir`` is not a folder.
    """
    from bids.layout import Query

    root = Path(bids_dir)
    filters = validate_bids_filters(bids_filters)
    if layout is None:
        layout = build_layout(root)
    available = sorted(layout.get_subjects())
    if participant_labels is None:
        subjects = available
    else:
        subjects = list(dict.fromkeys(strip_prefix(p, "sub-") for p in participant_labels))
        missing = [s for s in subjects if s not in available]
        if missing:
            raise ParticipantNotFoundError(root, missing, available)
    if not subjects:
        raise ParticipantNotFoundError(root, [], available)
    wanted_sessions = (
        None
        if session_labels is None
        else list(dict.fromkeys(strip_prefix(s, "ses-") for s in session_labels))
    )

    units: list[SessionInputs] = []
    for subject in subjects:
        sessions = sorted(layout.get_sessions(subject=subject), key=natural_key)
        loose = _in_anat(
            layout.get(subject=subject, session=Query.NONE, return_type="filename"), root
        )
        labels: list[str | None] = list(sessions)
        if not sessions or loose:
            labels.append(None)
        if wanted_sessions is not None:
            labels = [s for s in labels if s in wanted_sessions]
            for want in wanted_sessions:
                if want not in sessions:
                    have = ", ".join(sessions) or "none"
                    units.append(
                        SessionInputs(
                            subject=subject,
                            session=want,
                            problems=[
                                f"session ses-{want} not found for sub-{subject} "
                                f"(its sessions: {have})"
                            ],
                        )
                    )
        for session in labels:
            units.append(
                _collect_one(layout, root, subject, session, filters, age_override=age_override)
            )
    units.sort(key=lambda u: (u.subject, natural_key(Path(u.session or ""))))
    return units


def _in_anat(files: Iterable[str], root: Path) -> list[Path]:
    """The files whose datatype folder, read from their path *inside* the dataset, is ``anat``.

    pybids reads the datatype from the absolute path, so a dataset under ``/data/perf/study``
    or ``/projects/func/bids`` gets every file's datatype from that parent folder; querying with
    ``datatype="anat"`` would then find nothing.
    """
    root = root.resolve()
    found = []
    for name in files:
        path = Path(name)
        try:
            parts = path.resolve().relative_to(root).parts
        except ValueError:
            parts = path.parts
        if len(parts) >= 2 and parts[-2] == "anat":
            found.append(path)
    return found


def _collect_one(
    layout: Any,
    root: Path,
    subject: str,
    session: str | None,
    filters: Mapping[str, Mapping[str, Any]],
    *,
    age_override: float | None,
) -> SessionInputs:
    from bids.layout import Query

    unit = SessionInputs(subject=subject, session=session)
    where = unit.label
    chosen: dict[str, Path | None] = {}
    for key, suffix in FILTER_SUFFIXES.items():
        base = {
            "subject": subject,
            "session": session if session is not None else Query.NONE,
            "suffix": suffix,
            "extension": IMAGE_EXTENSIONS,
            "return_type": "filename",
        }
        user = filters.get(key, {})
        query = {**base, **to_pybids_query(user)}
        found = sorted(_in_anat(layout.get(**query), root), key=natural_key)
        setattr(unit, f"{key}_candidates", found)
        if not found:
            chosen[key] = None
            msg = f"no {suffix} image for {where}"
            if user:
                others = sorted(_in_anat(layout.get(**base), root), key=natural_key)
                if others:
                    names = ", ".join(p.name for p in others)
                    msg += f" matches the filter {describe_filter(user)} (unfiltered: {names})"
            unit.problems.append(msg)
            continue
        chosen[key] = found[0]
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            unit.warnings.append(
                f"{len(found)} {suffix} images for {where}: {names}; using {found[0].name} "
                f"(select another with --bids-filter-file, e.g. "
                f'{{"{key}": {{"run": 2}}}})'
            )
    unit.t1w, unit.t2w = chosen["t1w"], chosen["t2w"]

    age, source, age_warnings = read_age_months(
        root, subject, session, image=unit.t1w or unit.t2w, override=age_override
    )
    unit.age_months, unit.age_source = age, source
    unit.warnings.extend(age_warnings)
    for text in unit.warnings:
        LOGGER.warning("%s", text)
    return unit


def check_session_images(unit: SessionInputs) -> bool:
    """Read the chosen images with :func:`~infant_tissue.images.load_image`; record failures.

    Run before building a session's workflow so a truncated, 4-D, NaN-filled or otherwise
    unusable file fails at once with its name, not deep inside registration.

    Returns
    -------
    bool
        ``unit.ok`` afterwards; each failing image adds its one-line error to ``unit.problems``.
    """
    for kind, path in (("T1w", unit.t1w), ("T2w", unit.t2w)):
        if path is None:
            continue
        try:
            load_image(path, kind=kind)
        except InputImageError as exc:
            unit.problems.append(str(exc))
    return unit.ok
