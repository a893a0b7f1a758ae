"""Age at scan of a session, in months, from the dataset's tables (or ``--age-months``).

Infant studies store ages in ``participants.tsv``, ``sub-X_sessions.tsv`` or scan tables, in
months, weeks, days or years, with the unit in the column name or the JSON sidecar; each way is
read here, and every doubt (no age, an age outside the model's range, two tables that disagree)
becomes a warning on the session rather than an error.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

from ..layout import session_label
from .naming import strip_prefix
from .tsv import read_tsv

#: Ages (months) inside which the model is expected to work; it was trained on 6-month-olds.
AGE_RANGE_MONTHS: tuple[float, float] = (3.0, 12.0)
#: The age the model was trained for; used for template choice when a session's age is unknown.
MODEL_AGE_MONTHS = 6.0

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
    subject = strip_prefix(subject, "sub-")
    session = strip_prefix(session, "ses-") if session else None
    where = session_label(subject, session)
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
        header, rows = read_tsv(tsv)
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
