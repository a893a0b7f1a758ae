"""Reading one session's outputs: the per-session volume table and its JSON sidecar.

:class:`SessionVolumes` holds what one session's ``*_desc-tissue_volumes.tsv`` and sidecar say;
:func:`read_session_table`, :func:`read_session_sidecar` and :func:`read_session_volumes` read
them strictly (header, tissue rows, labels, numbers, totals, sidecar keys and labels) and raise
one :class:`VolumeTableError` line naming the file, so a hand-edited or truncated table is
reported, not averaged in.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..anat.volumes import REMOVED_REGION
from ._common import NA, REMOVED_MEASURE, TISSUES, _strip

#: NiPreps ``dseg`` index of each tissue, as written in the ``label`` column.
DSEG_LABELS: dict[str, str] = {"GM": "1", "WM": "2", "CSF": "3"}
#: Columns every per-session volume table must have (extra columns are ignored).
SESSION_TABLE_COLUMNS: tuple[str, ...] = (
    "tissue",
    "label",
    "voxels",
    "volume_mm3",
    "volume_pv_mm3",
)
#: Keys the per-session JSON sidecar must have.
SIDECAR_KEYS: tuple[str, ...] = ("Subject", "Session", "AgeMonths")


class VolumeTableError(ValueError):
    """A per-session volume table or its sidecar cannot be used; one line naming the file."""


# --- data --------------------------------------------------------------------------------------


@dataclass
class SessionVolumes:
    """The parsed volume table and sidecar of one session.

    Attributes
    ----------
    subject, session
        Labels without ``sub-``/``ses-``; ``session`` is None for datasets without sessions.
    voxels, volume_mm3
        Label-map voxel counts and volumes per tissue and ``brain``.
    volume_pv_mm3
        Partial-volume volumes per tissue and ``brain``; None when the table has ``n/a``.
    age_months, age_source, model_bundle, inference_mode
        From the sidecar (None when absent or null).
    volumes_file
        The table that was read.
    """

    subject: str
    session: str | None
    voxels: dict[str, int]
    volume_mm3: dict[str, float]
    volume_pv_mm3: dict[str, float | None]
    age_months: float | None = None
    age_source: str | None = None
    model_bundle: str | None = None
    inference_mode: str | None = None
    volumes_file: Path | None = None

    def measures(self) -> dict[str, float | None]:
        """Every numeric measure of :data:`SUMMARY_MEASURES` for this session."""
        brain = self.volume_mm3["brain"]
        out: dict[str, float | None] = {"age_months": self.age_months}
        for tissue in (*TISSUES, "brain"):
            key = tissue.lower()
            out[f"{key}_mm3"] = self.volume_mm3[tissue]
            out[f"{key}_pv_mm3"] = self.volume_pv_mm3[tissue]
        for tissue in TISSUES:
            out[f"{tissue.lower()}_fraction"] = self.volume_mm3[tissue] / brain if brain else None
        out[REMOVED_MEASURE] = self.volume_mm3.get(REMOVED_REGION)
        return out


# --- reading one session -----------------------------------------------------------------------


def _number(text: str, where: str, *, integer: bool = False, allow_na: bool = False) -> Any:
    if allow_na and text == NA:
        return None
    try:
        value: float = int(text) if integer else float(text)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise VolumeTableError(f"{where}: {text!r} is not {kind}") from None
    if not math.isfinite(value):
        raise VolumeTableError(f"{where}: {text!r} is not finite")
    if value < 0:
        raise VolumeTableError(f"{where}: {text!r} is negative")
    return value


def read_session_table(
    path: str | os.PathLike[str],
) -> tuple[dict[str, int], dict[str, float], dict[str, float | None]]:
    """Read and check one ``*_desc-tissue_volumes.tsv``.

    Checks: UTF-8 text; a header with every column of :data:`SESSION_TABLE_COLUMNS` once
    (extra columns ignored); every row as many fields as the header; exactly one row each for
    ``GM``, ``WM``, ``CSF`` (with labels 1, 2, 3) and ``brain`` (label ``n/a``); voxel counts
    whole and non-negative; volumes finite and non-negative (partial volumes may all be
    ``n/a``); no voxels exactly when no volume; ``brain`` the sum of the tissues.

    Parameters
    ----------
    path
        The table.

    Returns
    -------
    voxels, volume_mm3, volume_pv_mm3 : dict
        Keyed by ``CSF``, ``GM``, ``WM`` and ``brain``.

    Raises
    ------
    VolumeTableError
        One line naming the file, the row and the problem.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise VolumeTableError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise VolumeTableError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    lines = [line.rstrip("\r") for line in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise VolumeTableError(f"{path}: empty file")
    header = lines[0].split("\t")
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise VolumeTableError(f"{path}: duplicate column(s) {', '.join(dupes)}")
    absent = [c for c in SESSION_TABLE_COLUMNS if c not in header]
    if absent:
        raise VolumeTableError(
            f"{path}: header lacks column(s) {', '.join(absent)} "
            f"(expected {' '.join(SESSION_TABLE_COLUMNS)}, got {' '.join(header)})"
        )
    col = {c: header.index(c) for c in SESSION_TABLE_COLUMNS}
    wanted = (*TISSUES, "brain")
    voxels: dict[str, int] = {}
    volume: dict[str, float] = {}
    pv: dict[str, float | None] = {}
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        where = f"{path} line {number}"
        if len(fields) != len(header):
            raise VolumeTableError(f"{where}: {len(fields)} fields, the header has {len(header)}")
        tissue = fields[col["tissue"]]
        if tissue == REMOVED_REGION and tissue not in volume:
            # the region removed before segmentation: a volume of its own, outside the totals
            voxels[tissue] = _number(fields[col["voxels"]], f"{where} voxels", integer=True)
            volume[tissue] = _number(fields[col["volume_mm3"]], f"{where} volume_mm3")
            continue
        if tissue not in wanted:
            raise VolumeTableError(
                f"{where}: unknown tissue {tissue!r} (expected {', '.join(wanted)})"
            )
        if tissue in volume:
            raise VolumeTableError(f"{where}: second row for {tissue}")
        label = fields[col["label"]]
        expected_label = DSEG_LABELS.get(tissue, NA)
        if label != expected_label:
            raise VolumeTableError(
                f"{where}: {tissue} has label {label!r}, expected {expected_label!r} "
                "(NiPreps order 1 GM, 2 WM, 3 CSF)"
            )
        voxels[tissue] = _number(fields[col["voxels"]], f"{where} voxels", integer=True)
        volume[tissue] = _number(fields[col["volume_mm3"]], f"{where} volume_mm3")
        pv[tissue] = _number(fields[col["volume_pv_mm3"]], f"{where} volume_pv_mm3", allow_na=True)
        if (voxels[tissue] == 0) != (volume[tissue] == 0):
            raise VolumeTableError(
                f"{where}: {tissue} has {voxels[tissue]} voxels but volume {volume[tissue]} mm³"
            )
    absent = [t for t in wanted if t not in volume]
    if absent:
        raise VolumeTableError(f"{path}: no row for {', '.join(absent)} (truncated file?)")
    if sum(voxels[t] for t in TISSUES) != voxels["brain"]:
        raise VolumeTableError(
            f"{path}: brain voxels {voxels['brain']} is not the sum of the tissues "
            f"({sum(voxels[t] for t in TISSUES)})"
        )
    _check_total(path, "volume_mm3", volume)
    if any(pv[t] is None for t in wanted):
        if not all(pv[t] is None for t in wanted):
            raise VolumeTableError(f"{path}: volume_pv_mm3 is n/a for some rows only")
    else:
        _check_total(path, "volume_pv_mm3", pv)
    return voxels, volume, pv


def _check_total(path: Path, column: str, values: Mapping[str, Any]) -> None:
    total = sum(values[t] for t in TISSUES)
    # Each value was rounded when written; allow a voxel's worth of rounding in the sum.
    if not math.isclose(total, values["brain"], rel_tol=1e-4, abs_tol=1.0):
        raise VolumeTableError(
            f"{path}: brain {column} {values['brain']} is not the sum of the tissues ({total:g})"
        )


def read_session_sidecar(
    path: str | os.PathLike[str], subject: str, session: str | None
) -> dict[str, Any]:
    """Read and check a volume table's JSON sidecar; return its age and provenance.

    Parameters
    ----------
    path
        The ``*_desc-tissue_volumes.json`` file.
    subject, session
        The labels the file's location implies; ``Subject`` and ``Session`` must agree (with or
        without their ``sub-``/``ses-`` prefixes).

    Returns
    -------
    dict
        ``age_months`` (float or None), ``age_source``, ``model_bundle``, ``inference_mode``
        (str or None).

    Raises
    ------
    VolumeTableError
        When the file is missing, not a JSON object, lacks :data:`SIDECAR_KEYS`, names another
        subject or session, or has an age that is not a non-negative number or null.
    """
    path = Path(path)
    if not path.is_file():
        raise VolumeTableError(f"{path}: JSON sidecar of the volume table not found")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VolumeTableError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise VolumeTableError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    absent = [k for k in SIDECAR_KEYS if k not in meta]
    if absent:
        raise VolumeTableError(f"{path}: missing key(s) {', '.join(absent)}")
    if meta["Subject"] is None or _strip(meta["Subject"], "sub-") != subject:
        raise VolumeTableError(f"{path}: Subject is {meta['Subject']!r}, expected {subject!r}")
    got_session = None if meta["Session"] in (None, "", NA) else _strip(meta["Session"], "ses-")
    if got_session != session:
        raise VolumeTableError(f"{path}: Session is {meta['Session']!r}, expected {session!r}")
    age = meta["AgeMonths"]
    if age is not None:
        if isinstance(age, bool) or not isinstance(age, int | float):
            raise VolumeTableError(f"{path}: AgeMonths {age!r} is not a number or null")
        if not math.isfinite(age) or age < 0:
            raise VolumeTableError(f"{path}: AgeMonths {age!r} is not a non-negative number")
        age = float(age)

    def text(key: str) -> str | None:
        value = meta.get(key)
        return None if value is None else str(value)

    return {
        "age_months": age,
        "age_source": text("AgeSource"),
        "model_bundle": text("ModelBundle"),
        "inference_mode": text("InferenceMode"),
    }


def read_session_volumes(
    path: str | os.PathLike[str], subject: str, session: str | None
) -> SessionVolumes:
    """Read one session's volume table and its sidecar (see the two readers above)."""
    path = Path(path)
    voxels, volume, pv = read_session_table(path)
    meta = read_session_sidecar(path.with_suffix(".json"), subject, session)
    return SessionVolumes(subject, session, voxels, volume, pv, volumes_file=path, **meta)
