"""BIDS inputs: which T1w/T2w pair each session uses, the session's age, and precomputed masks.

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

import csv
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .images import InputImageError, load_image

LOGGER = logging.getLogger(__name__)

#: Ages (months) inside which the model is expected to work; it was trained on 6-month-olds.
AGE_RANGE_MONTHS: tuple[float, float] = (3.0, 12.0)
#: The age the model was trained for; used for template choice when a session's age is unknown.
MODEL_AGE_MONTHS = 6.0

#: TemplateFlow ``tpl-MNIInfant`` cohorts: (cohort, lower, upper) age in months.
MNIINFANT_COHORTS: tuple[tuple[int, float, float], ...] = (
    (1, 0.0, 2.0),
    (2, 2.0, 5.0),
    (3, 5.0, 8.0),
    (4, 8.0, 11.0),
    (5, 11.0, 14.0),
    (6, 14.0, 17.0),
    (7, 17.0, 21.0),
    (8, 21.0, 27.0),
    (9, 27.0, 33.0),
    (10, 33.0, 44.0),
    (11, 44.0, 60.0),
)

#: Suffix keys of a filter file and the BIDS suffix each selects.
FILTER_SUFFIXES: dict[str, str] = {"t1w": "T1w", "t2w": "T2w"}
_IMAGE_EXTENSIONS = [".nii", ".nii.gz"]
#: Short entity keys people copy from file names, mapped to pybids entity names.
_ENTITY_ALIASES = {
    "acq": "acquisition",
    "rec": "reconstruction",
    "ce": "ceagent",
    "dir": "direction",
}
#: Entities a filter may not set: the command line selects subjects and sessions.
_FORBIDDEN_FILTER_KEYS = {"subject", "session"}

_DAYS_PER_MONTH = 365.25 / 12.0
_UNIT_TO_MONTHS: dict[str, float] = {
    **dict.fromkeys(("month", "months", "mo", "mos", "mon", "mth", "mths"), 1.0),
    **dict.fromkeys(("week", "weeks", "wk", "wks", "w"), 7.0 / _DAYS_PER_MONTH),
    **dict.fromkeys(("day", "days", "d"), 1.0 / _DAYS_PER_MONTH),
    **dict.fromkeys(("year", "years", "yr", "yrs", "y"), 12.0),
}
#: Age columns tried in this order; the unit comes from the name or else the JSON sidecar.
_AGE_COLUMNS = ("age_months", "age_weeks", "age_days", "age_years", "age")
_MISSING = {"", "n/a", "na", "nan", "none", "null"}
_AGE_CELL = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z_ ]*?)\s*$")


class BidsInputError(ValueError):
    """The request cannot be served from this BIDS dataset (base class of this module's errors)."""


class ParticipantNotFoundError(BidsInputError):
    """Requested participant labels are not in the dataset.

    Attributes
    ----------
    missing
        The labels asked for and not found (without ``sub-``).
    available
        Every participant label the dataset has.
    """

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


class BidsFilterError(BidsInputError):
    """A BIDS filter file or dictionary is invalid; the message names the file and the key."""


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
        return _unit_label(self.subject, self.session)

    @property
    def prefix(self) -> str:
        """``"sub-01_ses-V01"`` (or ``"sub-01"``): the start of this unit's BIDS file names."""
        return f"sub-{self.subject}" + (f"_ses-{self.session}" if self.session else "")

    @property
    def entities(self) -> dict[str, str]:
        """``{"subject": ..., "session": ...}`` (no session key without sessions)."""
        out = {"subject": self.subject}
        if self.session is not None:
            out["session"] = self.session
        return out


def _unit_label(subject: str, session: str | None) -> str:
    return f"sub-{subject}" + (f" ses-{session}" if session else "")


def _strip_prefix(label: str, prefix: str) -> str:
    label = str(label).strip()
    return label[len(prefix) :] if label.startswith(prefix) else label


def _natural_key(path: Path) -> list[Any]:
    """Sort key where ``run-2`` comes before ``run-10`` (plain string order would not)."""
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", str(path))]


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


# --- filters -----------------------------------------------------------------------------------


def load_bids_filters(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Read a ``--bids-filter-file`` (JSON, fMRIPrep style) and validate it.

    The file maps a suffix key (``t1w``, ``t2w``) to pybids entity filters, e.g.
    ``{"t1w": {"acquisition": "mprage", "run": 1}, "t2w": {"acquisition": "spc"}}``.
    ``null`` means "entity absent" and ``"*"`` "entity present with any value", as in
    fMRIPrep. Short keys ``acq``, ``rec``, ``ce`` and ``dir`` are accepted for the pybids names.

    Returns
    -------
    dict
        Validated filters with lower-case suffix keys and pybids entity names.

    Raises
    ------
    BidsFilterError
        Missing file, invalid JSON, or a key/value that is not a valid filter; the message
        names the file and what is wrong.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BidsFilterError(f"{path}: BIDS filter file not found") from None
    except OSError as exc:
        raise BidsFilterError(f"{path}: cannot read the BIDS filter file ({exc})") from exc
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BidsFilterError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from exc
    return validate_bids_filters(raw, source=str(path))


def validate_bids_filters(
    filters: Mapping[str, Any] | None, *, source: str = "BIDS filters"
) -> dict[str, dict[str, Any]]:
    """Check and normalise a filter dictionary (see :func:`load_bids_filters`).

    Raises
    ------
    BidsFilterError
        Unknown suffix key, unknown or forbidden entity, or a value that is not a string,
        integer, null, ``"*"`` or a list of strings/integers.
    """
    from bids.layout import Config

    if filters is None:
        return {}
    if not isinstance(filters, Mapping):
        raise BidsFilterError(
            f'{source}: must be a JSON object like {{"t1w": {{"acquisition": "mprage"}}}}'
        )
    known = set(Config.load("bids").entities)
    out: dict[str, dict[str, Any]] = {}
    for key, query in filters.items():
        norm = str(key).lower()
        if norm not in FILTER_SUFFIXES:
            raise BidsFilterError(
                f"{source}: unknown key {key!r}; only {', '.join(FILTER_SUFFIXES)} are used"
            )
        if norm in out:
            raise BidsFilterError(f"{source}: key {key!r} given twice (keys ignore case)")
        if not isinstance(query, Mapping):
            raise BidsFilterError(f"{source}: {key!r} must map to an object of entity filters")
        clean: dict[str, Any] = {}
        for ent, value in query.items():
            name = _ENTITY_ALIASES.get(ent, ent)
            where = f"{source}: {key!r} filter {ent!r}"
            if name in _FORBIDDEN_FILTER_KEYS:
                raise BidsFilterError(
                    f"{where}: choose subjects and sessions with --participant-label and "
                    "--session-label, not in the filter file"
                )
            if name not in known:
                raise BidsFilterError(
                    f"{where}: unknown BIDS entity; use pybids names such as acquisition, run, "
                    "reconstruction, ceagent"
                )
            if name == "suffix" and str(value).lower() != norm:
                raise BidsFilterError(f"{where}: must be {FILTER_SUFFIXES[norm]!r} or left out")
            if name == "datatype" and value != "anat":
                raise BidsFilterError(f"{where}: only 'anat' images are used")
            if name == "extension":
                exts = value if isinstance(value, list) else [value]
                if not exts or any(e not in _IMAGE_EXTENSIONS for e in exts):
                    raise BidsFilterError(f"{where}: only .nii and .nii.gz images are read")
            _check_filter_value(value, where)
            if name in clean:
                raise BidsFilterError(f"{where}: given twice")
            clean[name] = value
        out[norm] = clean
    return out


def _check_filter_value(value: Any, where: str) -> None:
    scalar = (str, int)
    if value is None or (isinstance(value, scalar) and not isinstance(value, bool)):
        return
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, scalar) and not isinstance(v, bool) and v != "*" for v in value)
    ):
        return
    raise BidsFilterError(
        f'{where}: value {value!r} must be a string, an integer, null, "*" or a non-empty list '
        "of strings/integers"
    )


def _to_pybids_query(filters: Mapping[str, Any]) -> dict[str, Any]:
    """fMRIPrep conventions: ``None`` → entity absent, ``"*"`` → entity present (any value)."""
    from bids.layout import Query

    out: dict[str, Any] = {}
    for name, value in filters.items():
        if value is None:
            out[name] = Query.NONE
        elif value == "*":
            out[name] = Query.ANY
        else:
            out[name] = value
    return out


def _describe_filter(filters: Mapping[str, Any]) -> str:
    return json.dumps(dict(filters), sort_keys=True)


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
        subjects = list(dict.fromkeys(_strip_prefix(p, "sub-") for p in participant_labels))
        missing = [s for s in subjects if s not in available]
        if missing:
            raise ParticipantNotFoundError(root, missing, available)
    if not subjects:
        raise ParticipantNotFoundError(root, [], available)
    wanted_sessions = (
        None
        if session_labels is None
        else list(dict.fromkeys(_strip_prefix(s, "ses-") for s in session_labels))
    )

    units: list[SessionInputs] = []
    for subject in subjects:
        sessions = sorted(layout.get_sessions(subject=subject), key=_natural_key)
        loose = layout.get(
            subject=subject, session=Query.NONE, datatype="anat", return_type="filename"
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
    units.sort(key=lambda u: (u.subject, _natural_key(Path(u.session or ""))))
    return units


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
            "datatype": "anat",
            "suffix": suffix,
            "extension": _IMAGE_EXTENSIONS,
            "return_type": "filename",
        }
        user = filters.get(key, {})
        query = {**base, **_to_pybids_query(user)}
        found = sorted((Path(f) for f in layout.get(**query)), key=_natural_key)
        setattr(unit, f"{key}_candidates", found)
        if not found:
            chosen[key] = None
            msg = f"no {suffix} image for {where}"
            if user:
                others = sorted((Path(f) for f in layout.get(**base)), key=_natural_key)
                if others:
                    names = ", ".join(p.name for p in others)
                    msg += f" matches the filter {_describe_filter(user)} (unfiltered: {names})"
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


# --- age ---------------------------------------------------------------------------------------


def read_age_months(
    bids_dir: str | os.PathLike[str],
    subject: str,
    session: str | None = None,
    *,
    image: str | os.PathLike[str] | None = None,
    override: float | None = None,
) -> tuple[float | None, str, list[str]]:
    """Age at scan, in months, from the dataset's tables, and what the user should know about it.

    Sources, most specific first (NiBabies reads the same files):

    1. ``sub-X[/ses-Y]/sub-X[_ses-Y]_scans.tsv``, the row whose ``filename`` is ``image``;
    2. ``sub-X/sub-X_sessions.tsv``, the row whose ``session_id`` is ``ses-Y``;
    3. ``participants.tsv``, the row whose ``participant_id`` is ``sub-X``.

    The age column is the first of ``age_months``, ``age_weeks``, ``age_days``, ``age_years``
    (unit from the name) or ``age``, whose unit is the ``Units`` of its entry in the table's JSON
    sidecar (``months``, ``weeks``, ``days`` or ``years``; a value like ``"6 months"`` also
    works). An ``age`` without a unit is not guessed (``6`` could be months or years). When
    sources disagree by more than a month, the first is used and a warning names both.

    Parameters
    ----------
    bids_dir, subject, session
        Dataset root and labels (with or without prefixes).
    image
        The image whose ``scans.tsv`` row to read (its path inside the dataset).
    override
        ``--age-months``: used instead of the tables (a disagreeing table value is warned about).

    Returns
    -------
    age_months, source, warnings
        Age (None when unknown), where it came from, and warning texts (missing age, age
        outside the 3–12 month range the model is meant for, unreadable or inconsistent
        metadata).
    """
    root = Path(bids_dir)
    subject = _strip_prefix(subject, "sub-")
    session = _strip_prefix(session, "ses-") if session else None
    where = _unit_label(subject, session)
    warnings: list[str] = []
    found: list[tuple[float, str]] = []

    sub_dir = root / f"sub-{subject}"
    ses_dir = sub_dir / f"ses-{session}" if session else sub_dir
    prefix = f"sub-{subject}" + (f"_ses-{session}" if session else "")
    scans = ses_dir / f"{prefix}_scans.tsv"
    if image is not None and scans.is_file():
        image = Path(image)
        try:
            rel = image.resolve().relative_to(ses_dir.resolve()).as_posix()
        except ValueError:
            rel = f"{image.parent.name}/{image.name}"
        got = _age_from_table(scans, "filename", (rel, image.name), warnings, where)
        if got is not None:
            found.append(got)
    if session:
        sessions_tsv = sub_dir / f"sub-{subject}_sessions.tsv"
        if sessions_tsv.is_file():
            got = _age_from_table(
                sessions_tsv, "session_id", (f"ses-{session}", session), warnings, where
            )
            if got is not None:
                found.append(got)
    participants = root / "participants.tsv"
    if participants.is_file():
        got = _age_from_table(
            participants, "participant_id", (f"sub-{subject}", subject), warnings, where
        )
        if got is not None:
            found.append(got)

    if override is not None:
        override = float(override)
        if not math.isfinite(override):
            raise ValueError(f"--age-months must be a finite number of months, not {override}")
        for value, src in found:
            if abs(value - override) > 1.0:
                warnings.append(
                    f"--age-months {override:g} for {where} overrides {value:.3g} months from {src}"
                )
        age: float | None = override
        source = "--age-months"
    elif found:
        age, source = found[0]
        for value, src in found[1:]:
            if abs(value - age) > 1.0:
                warnings.append(
                    f"ages for {where} disagree: {age:.3g} months from {source} but "
                    f"{value:.3g} months from {src}; using {age:.3g}"
                )
    else:
        age, source = None, "unknown"
        warnings.append(
            f"no age found for {where} (none usable in scans.tsv, sessions.tsv or participants.tsv); "
            f"the template cohort assumes {MODEL_AGE_MONTHS:g} months — set it with --age-months"
        )

    if age is not None:
        lo, hi = AGE_RANGE_MONTHS
        if not lo <= age <= hi:
            warnings.append(
                f"age {age:.3g} months for {where} ({source}) is outside {lo:g}–{hi:g} months; "
                f"the model was trained on {MODEL_AGE_MONTHS:g}-month-olds, so expect less "
                "accurate tissue maps"
            )
    return age, source, warnings


def _read_tsv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, encoding="utf-8-sig", newline="") as fobj:
        reader = csv.reader(fobj, delimiter="\t")
        rows = [r for r in reader if any(c.strip() for c in r)]
    if not rows:
        return [], []
    header = [h.strip() for h in rows[0]]
    return header, [
        {h: (r[i].strip() if i < len(r) else "") for i, h in enumerate(header)} for r in rows[1:]
    ]


def _sidecar_units(tsv: Path, column: str) -> str | None:
    sidecar = tsv.with_suffix(".json")
    if not sidecar.is_file():
        return None
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    entry = meta.get(column) if isinstance(meta, Mapping) else None
    units = entry.get("Units") if isinstance(entry, Mapping) else None
    return units if isinstance(units, str) and units.strip() else None


def _age_from_table(
    tsv: Path,
    index_column: str,
    keys: tuple[str, ...],
    warnings: list[str],
    where: str,
) -> tuple[float, str] | None:
    """Age in months from the row of ``tsv`` whose ``index_column`` is one of ``keys``."""
    try:
        header, rows = _read_tsv(tsv)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        warnings.append(f"{tsv}: cannot read the table ({exc}); its age is not used")
        return None
    column = next((c for c in _AGE_COLUMNS if c in header), None)
    if column is None:
        return None
    if index_column not in header:
        warnings.append(f"{tsv}: no {index_column!r} column; its age is not used for {where}")
        return None
    matches = [r for r in rows if r[index_column] in keys]
    if not matches:
        if index_column == "filename" and rows:
            listed = ", ".join(r[index_column] for r in rows[:5])
            warnings.append(
                f"{tsv} has no row for {keys[0]} (it lists: {listed}); its age is not used"
            )
        return None
    if len(matches) > 1:
        warnings.append(f"{tsv}: {len(matches)} rows for {keys[0]}; using the first")
    cell = matches[0][column]
    if cell.lower() in _MISSING:
        return None
    parsed = _AGE_CELL.match(cell)
    if parsed is None:
        warnings.append(f"{tsv}: {column} {cell!r} for {keys[0]} is not a number; not used")
        return None
    value = float(parsed.group(1))
    if not math.isfinite(value):
        return None
    units = parsed.group(2).strip() or None
    if units is None and column != "age":
        units = column.split("_", 1)[1]
    if units is None:
        units = _sidecar_units(tsv, column)
    if units is None:
        warnings.append(
            f'{tsv}: column {column!r} has no unit (add "Units" to {tsv.with_suffix(".json").name}'
            f" or name the column age_months); its age {value:g} for {where} is not used"
        )
        return None
    factor = _UNIT_TO_MONTHS.get(units.strip().lower())
    if factor is None:
        warnings.append(
            f"{tsv}: age unit {units!r} is not a postnatal age in months, weeks, days or years; "
            f"its age {value:g} for {where} is not used"
        )
        return None
    return value * factor, f"{tsv.name} column {column} ({units})"


# --- templates and derivatives -----------------------------------------------------------------


def mniinfant_cohort(age_months: float | None) -> int:
    """TemplateFlow ``MNIInfant`` cohort for an age, for template-based brain extraction.

    The cohorts, from ``tpl-MNIInfant/template_description.json`` (TemplateFlow; the copy in
    the ``templateflow`` package's ``conf/templateflow-skel.zip`` was read), in months:

    ======  =======  ======  =======  ======  =======
    cohort  ages     cohort  ages     cohort  ages
    ======  =======  ======  =======  ======  =======
    1       0–2      5       11–14    9       27–33
    2       2–5      6       14–17    10      33–44
    3       5–8      7       17–21    11      44–60
    4       8–11     8       21–27
    ======  =======  ======  =======  ======  =======

    The ranges share their end points; as in NiBabies (``cohort_by_months``) an age on a
    boundary goes to the younger cohort (2 months → 1, 5 → 2, 8 → 3), so 6 months is cohort 3.
    Ages below 0 (preterm/fetal) use cohort 1 and ages above 60 months cohort 11, the closest
    templates available; an unknown age (None) uses the model's 6 months.

    Raises
    ------
    ValueError
        For a non-finite age.
    """
    if age_months is None:
        age_months = MODEL_AGE_MONTHS
    age = float(age_months)
    if not math.isfinite(age):
        raise ValueError(f"age must be a finite number of months, not {age_months!r}")
    for cohort, _lo, hi in MNIINFANT_COHORTS:
        if age <= hi:
            return cohort
    return MNIINFANT_COHORTS[-1][0]


_SPACE_PREFERENCE = {"T1w": 0, None: 1, "orig": 2}
_MATCH_ENTITIES = ("acq", "ce", "rec", "run")


def _parse_entities(name: str) -> tuple[dict[str, str], str]:
    stem = name.split(".", 1)[0]
    parts = stem.split("_")
    ents = dict(p.split("-", 1) for p in parts[:-1] if "-" in p)
    return ents, parts[-1]


def find_precomputed_mask(
    derivatives_dir: str | os.PathLike[str],
    subject: str,
    session: str | None = None,
    *,
    t1w: str | os.PathLike[str] | None = None,
) -> Path | None:
    """A NiBabies-style precomputed brain mask for one session, or None.

    Looks in ``derivatives_dir/sub-X[/ses-Y]/anat/`` for
    ``sub-X[_ses-Y][_acq-..][_run-..][_space-T1w]_desc-brain_mask.nii[.gz]`` — the names NiBabies
    writes and reads with ``--derivatives``. The mask must be in the T1w's space: ``space-T1w``
    is preferred, then no ``space`` entity, then ``space-orig`` (older NiBabies); other spaces
    are ignored. When ``t1w`` is given, masks whose ``acq``/``ce``/``rec``/``run`` differ from
    the T1w's are ignored. Whether the mask's grid really matches the T1w is for the caller to
    check (:func:`infant_tissue.images.same_grid`).

    Returns
    -------
    pathlib.Path or None
        The first candidate in order of preference then name; several equally good candidates
        are logged as a warning.
    """
    subject = _strip_prefix(subject, "sub-")
    session = _strip_prefix(session, "ses-") if session else None
    folder = Path(derivatives_dir) / f"sub-{subject}"
    if session:
        folder = folder / f"ses-{session}"
    folder = folder / "anat"
    if not folder.is_dir():
        return None
    ref = _parse_entities(Path(t1w).name)[0] if t1w is not None else {}
    ranked: list[tuple[int, list[Any], Path]] = []
    for path in folder.iterdir():
        if not (path.name.endswith(".nii.gz") or path.name.endswith(".nii")):
            continue
        ents, suffix = _parse_entities(path.name)
        if suffix != "mask" or ents.get("desc") != "brain" or ents.get("sub") != subject:
            continue
        if ents.get("ses") != session:
            continue
        space = ents.get("space")
        if space not in _SPACE_PREFERENCE:
            continue
        if any(k in ref and k in ents and ref[k] != ents[k] for k in _MATCH_ENTITIES):
            continue
        ranked.append((_SPACE_PREFERENCE[space], _natural_key(path), path))
    if not ranked:
        return None
    ranked.sort(key=lambda item: (item[0], item[1]))
    best = [p for rank, _, p in ranked if rank == ranked[0][0]]
    if len(best) > 1:
        LOGGER.warning(
            "%d brain masks for %s in %s: %s; using %s",
            len(best),
            _unit_label(subject, session),
            folder,
            ", ".join(p.name for p in best),
            best[0].name,
        )
    return best[0]
