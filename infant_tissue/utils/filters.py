"""``--bids-filter-file``: per-suffix pybids filters choosing among several T1w/T2w images."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ExitCode, InfantTissueError

#: Image file extensions the app reads.
IMAGE_EXTENSIONS = [".nii", ".nii.gz"]
#: Suffix keys of a filter file and the BIDS suffix each selects.
FILTER_SUFFIXES: dict[str, str] = {"t1w": "T1w", "t2w": "T2w"}
#: Short entity keys people copy from file names, mapped to pybids entity names.
_ENTITY_ALIASES = {
    "acq": "acquisition",
    "rec": "reconstruction",
    "ce": "ceagent",
    "dir": "direction",
}
#: Entities a filter may not set: the command line selects subjects and sessions.
_FORBIDDEN_FILTER_KEYS = {"subject", "session"}


class BidsFilterError(InfantTissueError, ValueError):
    """A BIDS filter file or dictionary is invalid; the message names the file and the key."""

    exit_code = ExitCode.USAGE


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
                if not exts or any(e not in IMAGE_EXTENSIONS for e in exts):
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


def to_pybids_query(filters: Mapping[str, Any]) -> dict[str, Any]:
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


def describe_filter(filters: Mapping[str, Any]) -> str:
    return json.dumps(dict(filters), sort_keys=True)
