"""Finding sessions and deciding each one's status.

Which sessions are expected (from the raw dataset or a given list) or present under the output
folder, which crash files belong to which session, and the status of each as
:class:`SessionStatus`: ``ok``, ``failed`` (with the first line of its crash file), ``partial``
(outputs present but unusable, with the reason) or ``missing``. :func:`collect_group` reads every
usable volume table on the way; a missing or broken session is recorded, never raised.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import layout
from ._common import _prefix, _rel, _strip, _unit_label
from .read import SessionVolumes, VolumeTableError, read_session_volumes

#: Name ending of the per-session volume table (and, with ``.json``, of its sidecar).
VOLUMES_SUFFIX = layout.derivative_ending("volumes").removesuffix(".tsv")
#: Values of the ``status`` column.
STATUSES: tuple[str, ...] = ("ok", "failed", "partial", "missing")

_LABEL_RE = re.compile(r"^[A-Za-z0-9]+$")
_CRASH_LINE_RE = re.compile(r"^sub-(?P<subject>[A-Za-z0-9]+)(?: ses-(?P<session>[A-Za-z0-9]+))?:")


@dataclass(frozen=True)
class SessionStatus:
    """What the group level found for one session.

    Attributes
    ----------
    subject, session
        Labels without prefixes; ``session`` is None without sessions.
    status
        One of :data:`STATUSES`.
    detail
        Why (the crash file's first line, the parsing error...), or ``""``.
    volumes_file, crash_file, report
        Paths relative to the output folder, or None.
    """

    subject: str
    session: str | None
    status: str
    detail: str = ""
    volumes_file: str | None = None
    crash_file: str | None = None
    report: str | None = None

    @property
    def label(self) -> str:
        """``"sub-01 ses-V01"`` (or ``"sub-01"``) for messages."""
        return _unit_label(self.subject, self.session)


def _natural_key(text: str) -> list[Any]:
    """Sort key where ``sub-2`` comes before ``sub-10``."""
    return [(0, int(t)) if t.isdigit() else (1, t) for t in re.split(r"(\d+)", text) if t]


def _unit_key(unit: tuple[str, str | None]) -> tuple[Any, ...]:
    subject, session = unit
    return (_natural_key(subject), session is not None, _natural_key(session or ""))


# --- finding sessions --------------------------------------------------------------------------


def _volumes_path(root: Path, subject: str, session: str | None) -> Path:
    anat = layout.anat_dir(root, subject, session)
    return anat / f"{_prefix(subject, session)}{layout.derivative_ending('volumes')}"


def _has_outputs(root: Path, subject: str, session: str | None) -> bool:
    anat = _volumes_path(root, subject, session).parent
    return anat.is_dir() and any(p.is_file() and not p.name.startswith(".") for p in anat.iterdir())


def _discover_outputs(root: Path) -> set[tuple[str, str | None]]:
    """Sessions with an ``anat`` folder holding any file under ``root``."""
    units: set[tuple[str, str | None]] = set()
    for sub_dir in root.glob("sub-*"):
        subject = sub_dir.name[4:]
        if not sub_dir.is_dir() or not _LABEL_RE.match(subject):
            continue
        if _has_outputs(root, subject, None):
            units.add((subject, None))
        for ses_dir in sub_dir.glob("ses-*"):
            session = ses_dir.name[4:]
            if (
                ses_dir.is_dir()
                and _LABEL_RE.match(session)
                and _has_outputs(root, subject, session)
            ):
                units.add((subject, session))
    return units


def _join(text: str, notes: Sequence[str]) -> str:
    return "; ".join(t for t in (text, *notes) if t)


def _crash_first_line(path: Path) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fobj:
            line = fobj.readline().strip()
    except OSError as exc:
        return f"crash file cannot be read ({exc.strerror or exc})"
    return line or "(empty crash file)"


def _discover_crashes(root: Path) -> dict[tuple[str, str | None], list[Path]]:
    """Crash files per session; a session of ``"*"`` means the file does not say which."""
    found: dict[tuple[str, str | None], list[Path]] = {}
    for path in root.glob("sub-*/log/*.txt"):
        subject = path.parent.parent.name[4:]
        if not path.is_file() or path.name.startswith(".") or not _LABEL_RE.match(subject):
            continue
        is_crash, session = layout.crash_session(path)
        if not is_crash:
            line = _CRASH_LINE_RE.match(_crash_first_line(path))
            session = line["session"] if line and line["subject"] == subject else "*"
        found.setdefault((subject, session), []).append(path)
    return found


def _latest(paths: Iterable[Path]) -> Path | None:
    def key(p: Path) -> tuple[float, str]:
        try:
            return (p.stat().st_mtime, p.name)
        except OSError:
            return (0.0, p.name)

    ordered = sorted(paths, key=key)
    return ordered[-1] if ordered else None


def _expected_units(
    expected_sessions: Iterable[Any] | None, bids_dir: str | os.PathLike[str] | None
) -> tuple[list[tuple[str, str | None]] | None, dict[tuple[str, str | None], list[str]]]:
    """The expected ``(subject, session)`` units and any input problems known for them."""
    if expected_sessions is None and bids_dir is None:
        return None, {}
    if expected_sessions is None:
        from ..utils.bids import collect_sessions

        expected_sessions = collect_sessions(bids_dir)  # type: ignore[arg-type]
    units: list[tuple[str, str | None]] = []
    problems: dict[tuple[str, str | None], list[str]] = {}
    for item in expected_sessions:
        if hasattr(item, "subject"):
            subject, session = item.subject, item.session
            problems_of = list(getattr(item, "problems", []) or [])
        else:
            subject, session = item
            problems_of = []
        unit = (_strip(subject, "sub-"), None if session is None else _strip(session, "ses-"))
        if unit[1] == "":
            unit = (unit[0], None)
        if not _LABEL_RE.match(unit[0]) or (unit[1] is not None and not _LABEL_RE.match(unit[1])):
            raise ValueError(f"invalid expected session {item!r}: labels must be alphanumeric")
        if unit not in problems:
            units.append(unit)
        problems.setdefault(unit, []).extend(problems_of)
    return units, problems


def collect_group(
    output_dir: str | os.PathLike[str],
    bids_dir: str | os.PathLike[str] | None = None,
    *,
    expected_sessions: Iterable[Any] | None = None,
) -> tuple[list[SessionVolumes], list[SessionStatus]]:
    """Read every session's outputs under ``output_dir`` and decide each session's status.

    Parameters
    ----------
    output_dir
        The participant level's output folder.
    bids_dir
        Raw dataset; when given (and ``expected_sessions`` is not), every session it holds is
        expected (:func:`infant_tissue.utils.bids.collect_sessions`).
    expected_sessions
        ``(subject, session)`` pairs (labels with or without prefixes; session None without
        sessions), or objects with ``subject``/``session`` attributes such as
        :class:`~infant_tissue.utils.bids.SessionInputs`. Takes precedence over ``bids_dir``.

    Returns
    -------
    records : list of SessionVolumes
        The usable sessions, sorted naturally by subject then session.
    statuses : list of SessionStatus
        Every session expected or found, in the same order. Sessions found in the output
        folder but not expected are included, with a note.
    """
    root = Path(output_dir)
    expected, problems = _expected_units(expected_sessions, bids_dir)
    outputs = _discover_outputs(root) if root.is_dir() else set()
    crashes = _discover_crashes(root) if root.is_dir() else {}
    units = set(outputs) | {u for u in crashes if u[1] != "*"}
    units |= set(expected or [])
    for (subject, session), _paths in crashes.items():
        if session == "*" and not any(u[0] == subject for u in units):
            units.add((subject, None))

    records: list[SessionVolumes] = []
    statuses: list[SessionStatus] = []
    for subject, session in sorted(units, key=_unit_key):
        unit = (subject, session)
        vol_path = _volumes_path(root, subject, session)
        crash = _latest(crashes.get(unit, []))
        if crash is None and not vol_path.is_file():
            crash = _latest(crashes.get((subject, "*"), []))
        report_path = root / f"{_prefix(subject, session)}.html"
        report = _rel(report_path, root) if report_path.is_file() else None
        notes = (
            ["not among the expected sessions"]
            if expected is not None and unit not in problems
            else []
        )
        common = {"crash_file": _rel(crash, root), "report": report}

        if vol_path.is_file():
            try:
                record = read_session_volumes(vol_path, subject, session)
            except VolumeTableError as exc:
                detail = str(exc)
                if crash is not None:
                    detail += f"; crash file: {_crash_first_line(crash)}"
                statuses.append(
                    SessionStatus(
                        subject,
                        session,
                        "partial",
                        _join(detail, notes),
                        volumes_file=_rel(vol_path, root),
                        **common,
                    )
                )
                continue
            records.append(record)
            detail = ""
            if crash is not None:
                newer = crash.stat().st_mtime > vol_path.stat().st_mtime
                when = "a later run failed" if newer else "an earlier run failed"
                detail = f"{when} ({_crash_first_line(crash)}); using the volume table present"
            statuses.append(
                SessionStatus(
                    subject,
                    session,
                    "ok",
                    _join(detail, notes),
                    volumes_file=_rel(vol_path, root),
                    **common,
                )
            )
        elif crash is not None:
            statuses.append(
                SessionStatus(
                    subject, session, "failed", _join(_crash_first_line(crash), notes), **common
                )
            )
        elif _has_outputs(root, subject, session):
            text = f"derivatives present but no {vol_path.name} (interrupted run?)"
            statuses.append(
                SessionStatus(subject, session, "partial", _join(text, notes), **common)
            )
        else:
            known = problems.get(unit, [])
            text = "no outputs" + (f"; input problem: {'; '.join(known)}" if known else "")
            statuses.append(
                SessionStatus(subject, session, "missing", _join(text, notes), **common)
            )
    return records, statuses
