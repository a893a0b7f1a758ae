"""Group level: gather every session's tissue volumes into cohort tables, outliers and figures.

The participant level leaves one long-format table per session,
``sub-X[/ses-Y]/anat/sub-X[_ses-Y]_desc-tissue_volumes.tsv`` (rows ``GM``, ``WM``, ``CSF`` and
``brain``) with a JSON sidecar that carries the age. This module reads them all and writes, in
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
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import os
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .derivatives import REMOVED_REGION
from .images import write_atomic

LOGGER = logging.getLogger(__name__)

#: Tissues in the order used for every table and figure.
TISSUES: tuple[str, ...] = ("CSF", "GM", "WM")
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
#: Name ending of the per-session volume table (and, with ``.json``, of its sidecar).
VOLUMES_SUFFIX = "_desc-tissue_volumes"
#: Keys the per-session JSON sidecar must have.
SIDECAR_KEYS: tuple[str, ...] = ("Subject", "Session", "AgeMonths")
#: BIDS spelling of a missing value.
NA = "n/a"

#: |robust z| above which a value is flagged (Iglewicz & Hoaglin's recommendation).
ROBUST_Z_THRESHOLD = 3.5
#: Fewest sessions with a value for outliers to be assessed; a median of fewer means little.
MIN_SESSIONS_FOR_OUTLIERS = 5
#: 0.6745 = the 75th percentile of the standard normal: makes MAD comparable to an SD.
MAD_TO_SD = 0.6745

#: Lower edges (months) of the age bins after the first; bins are half-open ``[lo, hi)``.
AGE_BIN_EDGES: tuple[float, ...] = (3.0, 5.0, 7.0, 9.0, 12.0)
#: Labels of the age bins, one more than the edges.
AGE_BIN_LABELS: tuple[str, ...] = ("<3", "3-5", "5-7", "7-9", "9-12", ">=12")
#: Age bin of sessions without a known age.
UNKNOWN_AGE_BIN = "unknown"
#: Age bin label of the whole cohort in the summary table.
ALL_AGES_BIN = "all"

#: Label-map volumes (mm³), one per tissue and the whole brain.
VOLUME_MEASURES: tuple[str, ...] = ("csf_mm3", "gm_mm3", "wm_mm3", "brain_mm3")
#: Partial-volume (probability-weighted) volumes (mm³).
PV_MEASURES: tuple[str, ...] = ("csf_pv_mm3", "gm_pv_mm3", "wm_pv_mm3", "brain_pv_mm3")
#: Tissue fractions of the label-map brain volume.
FRACTION_MEASURES: tuple[str, ...] = ("csf_fraction", "gm_fraction", "wm_fraction")
#: Measures assessed for outliers.
OUTLIER_MEASURES: tuple[str, ...] = VOLUME_MEASURES + FRACTION_MEASURES
#: Volume (mm³) of the cerebellum + brain stem removed before segmentation (None when kept).
REMOVED_MEASURE = f"{REMOVED_REGION}_mm3"
#: Measures summarised in ``tissue_volumes_summary.tsv``.
SUMMARY_MEASURES: tuple[str, ...] = (
    ("age_months",) + VOLUME_MEASURES + PV_MEASURES + FRACTION_MEASURES + (REMOVED_MEASURE,)
)

#: Columns of ``group/tissue_volumes.tsv``.
VOLUMES_COLUMNS: tuple[str, ...] = (
    "subject",
    "session",
    "age_months",
    *VOLUME_MEASURES,
    *PV_MEASURES,
    *FRACTION_MEASURES,
    REMOVED_MEASURE,
    "age_source",
    "model_bundle",
    "inference_mode",
    "report",
)
#: Columns of ``group/tissue_volumes_summary.tsv``.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "age_bin",
    "measure",
    "n",
    "mean",
    "sd",
    "median",
    "q1",
    "q3",
    "iqr",
)
#: Columns of ``group/tissue_volumes_outliers.tsv``.
OUTLIER_COLUMNS: tuple[str, ...] = (
    "subject",
    "session",
    "age_months",
    "measure",
    "value",
    "cohort_n",
    "cohort_median",
    "cohort_mad",
    "robust_z",
    "outlier",
    "reason",
    "report",
)
#: Columns of ``group/sessions_status.tsv``.
STATUS_COLUMNS: tuple[str, ...] = (
    "subject",
    "session",
    "status",
    "detail",
    "volumes_file",
    "crash_file",
    "report",
)
#: Values of the ``status`` column.
STATUSES: tuple[str, ...] = ("ok", "failed", "partial", "missing")

#: Figure file stems written to ``group/`` (each as ``.png`` and ``.svg``).
FIGURE_VS_AGE = "tissue_volumes_vs_age"
FIGURE_DISTRIBUTIONS = "tissue_volumes_distributions"
FIGURE_FORMATS: tuple[str, ...] = ("png", "svg")

#: Fewest aged sessions (and distinct ages) for a linear fit; for a LOWESS curve.
MIN_POINTS_LINEAR, MIN_POINTS_LOWESS = 3, 10

_LABEL_RE = re.compile(r"^[A-Za-z0-9]+$")
_CRASH_NAME_RE = re.compile(r"^crash-(?:ses-)?(?P<session>[A-Za-z0-9]+)-")
_CRASH_LINE_RE = re.compile(r"^sub-(?P<subject>[A-Za-z0-9]+)(?: ses-(?P<session>[A-Za-z0-9]+))?:")
_NO_SESSION = "nosession"


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


@dataclass(frozen=True)
class Outlier:
    """One flagged value: which session, which measure, its robust z and the reason."""

    subject: str
    session: str | None
    measure: str
    value: float
    robust_z: float
    reason: str


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


# --- small helpers -----------------------------------------------------------------------------


def _unit_label(subject: str, session: str | None) -> str:
    return f"sub-{subject}" + (f" ses-{session}" if session else "")


def _prefix(subject: str, session: str | None) -> str:
    return f"sub-{subject}" + (f"_ses-{session}" if session else "")


def _natural_key(text: str) -> list[Any]:
    """Sort key where ``sub-2`` comes before ``sub-10``."""
    return [(0, int(t)) if t.isdigit() else (1, t) for t in re.split(r"(\d+)", text) if t]


def _unit_key(unit: tuple[str, str | None]) -> tuple[Any, ...]:
    subject, session = unit
    return (_natural_key(subject), session is not None, _natural_key(session or ""))


def _strip(label: Any, prefix: str) -> str:
    text = str(label).strip()
    return text[len(prefix) :] if text.startswith(prefix) else text


def _fmt(value: float | None, decimals: int) -> str:
    """A number with at most ``decimals`` decimals and no trailing zeros; ``n/a`` if missing."""
    if value is None or not math.isfinite(value):
        return NA
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _cell(value: Any) -> str:
    """A table cell: ``n/a`` for None/empty, tabs and newlines replaced (they would split rows)."""
    if value is None:
        return NA
    text = " ".join(str(value).split()) if isinstance(value, str) else str(value)
    return text or NA


def _tsv(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["\t".join(columns)]
    for row in rows:
        if len(row) != len(columns):  # pragma: no cover - programming error
            raise ValueError(f"row has {len(row)} fields, expected {len(columns)}")
        lines.append("\t".join(_cell(v) for v in row))
    return "\n".join(lines) + "\n"


def _rel(path: Path | None, root: Path) -> str | None:
    if path is None:
        return None
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _measure_phrase(measure: str) -> tuple[str, str]:
    """``('GM volume', 'mm³')`` for ``gm_mm3``; ``('GM fraction', '')`` for ``gm_fraction``."""
    name, _, kind = measure.partition("_")
    tissue = "brain" if name == "brain" else name.upper()
    if kind == "fraction":
        return f"{tissue} fraction", ""
    if kind == "pv_mm3":
        return f"{tissue} partial-volume volume", "mm³"
    return f"{tissue} volume", "mm³"


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _fmt_reason_value(value: float, unit: str) -> str:
    return f"{value:.0f} {unit}" if unit else f"{value:.3f}"


# --- statistics (pure) -------------------------------------------------------------------------


def age_bin(age_months: float | None) -> str:
    """The age bin of an age in months (half-open bins ``[lo, hi)``; see :data:`AGE_BIN_LABELS`).

    Examples
    --------
    >>> age_bin(4.9), age_bin(5.0), age_bin(12), age_bin(None)
    ('3-5', '5-7', '>=12', 'unknown')
    """
    if age_months is None or not math.isfinite(age_months):
        return UNKNOWN_AGE_BIN
    return AGE_BIN_LABELS[bisect.bisect_right(AGE_BIN_EDGES, float(age_months))]


def describe(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """n, mean, sample SD, median, quartiles and IQR of the non-missing values.

    Parameters
    ----------
    values
        Numbers; None and NaN are left out.

    Returns
    -------
    dict
        Keys ``n, mean, sd, median, q1, q3, iqr``. Quartiles use numpy's default (linear,
        Hyndman & Fan type 7, as R's ``quantile``); ``sd`` has ``ddof=1`` and is None for n < 2;
        everything but ``n`` is None for n = 0.
    """
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = int(x.size)
    if n == 0:
        return {
            "n": 0,
            "mean": None,
            "sd": None,
            "median": None,
            "q1": None,
            "q3": None,
            "iqr": None,
        }
    q1, median, q3 = (float(q) for q in np.percentile(x, [25.0, 50.0, 75.0]))
    return {
        "n": n,
        "mean": float(x.mean()),
        "sd": float(x.std(ddof=1)) if n > 1 else None,
        "median": median,
        "q1": q1,
        "q3": q3,
        "iqr": q3 - q1,
    }


def robust_z(values: Sequence[float]) -> tuple[np.ndarray, float, float]:
    """Robust z-scores ``0.6745 * (x - median) / MAD`` (Iglewicz & Hoaglin, 1993).

    The median and the median absolute deviation are not pulled by the outliers they are
    meant to find, unlike the mean and SD (one bad segmentation in ten inflates the SD enough
    to hide itself).

    Parameters
    ----------
    values
        Finite numbers.

    Returns
    -------
    z : numpy.ndarray
        One score per value; all NaN when the MAD is 0 (more than half the values equal).
    median, mad : float
        The cohort median and the (unscaled) median absolute deviation.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return np.empty(0), math.nan, math.nan
    median = float(np.median(x))
    mad = float(np.median(np.abs(x - median)))
    if mad <= 1e-12 * abs(median) or mad == 0.0:
        return np.full(x.shape, np.nan), median, mad
    return MAD_TO_SD * (x - median) / mad, median, mad


def lowess(
    x: Sequence[float], y: Sequence[float], *, frac: float = 2.0 / 3.0, iterations: int = 2
) -> np.ndarray:
    """Locally weighted linear regression (Cleveland, 1979) evaluated at ``x``.

    A small numpy version (tricube weights over the ``ceil(frac * n)`` nearest points, local
    straight lines, bisquare robustness iterations) so the figures need no statsmodels. It
    reproduces a straight line exactly and ignores a single wild point.

    Parameters
    ----------
    x, y
        Samples (same length, at least 2, finite).
    frac
        Fraction of the points in each local fit, in ``(0, 1]``.
    iterations
        Robustness iterations (0 gives the plain weighted fit).

    Returns
    -------
    numpy.ndarray
        The smoothed value at each ``x``, in the input order.
    """
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise ValueError(f"x and y must be 1-D of the same length, got {xs.shape} and {ys.shape}")
    if xs.size < 2:
        raise ValueError("lowess needs at least 2 points")
    if not 0.0 < frac <= 1.0:
        raise ValueError(f"frac must be in (0, 1], got {frac}")
    n = xs.size
    r = min(n, max(2, math.ceil(frac * n)))
    dist = np.abs(xs[:, None] - xs[None, :])  # (target, sample)
    h = np.sort(dist, axis=1)[:, r - 1]
    h = np.where(h > 0, h, 1.0)
    base = np.clip(dist / (h[:, None] * 1.000001), 0.0, 1.0)
    base = (1.0 - base**3) ** 3
    robust = np.ones(n)
    fitted = np.empty(n)
    for _ in range(iterations + 1):
        w = base * robust[None, :]
        for i in range(n):
            wi = w[i]
            sw = wi.sum()
            if sw <= 0:
                fitted[i] = ys[i]
                continue
            mx = (wi * xs).sum() / sw
            my = (wi * ys).sum() / sw
            sxx = (wi * (xs - mx) ** 2).sum()
            slope = (wi * (xs - mx) * (ys - my)).sum() / sxx if sxx > 1e-12 * sw else 0.0
            fitted[i] = my + slope * (xs[i] - mx)
        resid = ys - fitted
        scale = 6.0 * float(np.median(np.abs(resid)))
        if scale <= 0:
            break
        u = np.clip(resid / scale, -1.0, 1.0)
        robust = (1.0 - u**2) ** 2
    return fitted


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


# --- finding sessions --------------------------------------------------------------------------


def _volumes_path(root: Path, subject: str, session: str | None) -> Path:
    anat = root / f"sub-{subject}" / (f"ses-{session}" if session else "") / "anat"
    return anat / f"{_prefix(subject, session)}{VOLUMES_SUFFIX}.tsv"


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
        match = _CRASH_NAME_RE.match(path.name)
        session: str | None
        if match:
            session = match["session"]
            session = None if session == _NO_SESSION else session
        else:
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
        from .bids import collect_sessions

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
        expected (:func:`infant_tissue.bids.collect_sessions`).
    expected_sessions
        ``(subject, session)`` pairs (labels with or without prefixes; session None without
        sessions), or objects with ``subject``/``session`` attributes such as
        :class:`~infant_tissue.bids.SessionInputs`. Takes precedence over ``bids_dir``.

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


# --- tables --------------------------------------------------------------------------------------


def _volumes_rows(records: Sequence[SessionVolumes], root: Path) -> list[list[Any]]:
    rows = []
    for rec in records:
        m = rec.measures()
        report_path = root / f"{_prefix(rec.subject, rec.session)}.html"
        rows.append(
            [
                f"sub-{rec.subject}",
                f"ses-{rec.session}" if rec.session else None,
                _fmt(rec.age_months, 4),
                *(_fmt(m[k], 3) for k in VOLUME_MEASURES + PV_MEASURES),
                *(_fmt(m[k], 6) for k in FRACTION_MEASURES),
                _fmt(m[REMOVED_MEASURE], 3),
                rec.age_source,
                rec.model_bundle,
                rec.inference_mode,
                _rel(report_path, root) if report_path.is_file() else None,
            ]
        )
    return rows


def _summary_rows(records: Sequence[SessionVolumes]) -> list[list[Any]]:
    groups: list[tuple[str, list[SessionVolumes]]] = [(ALL_AGES_BIN, list(records))]
    for label in (*AGE_BIN_LABELS, UNKNOWN_AGE_BIN):
        members = [r for r in records if age_bin(r.age_months) == label]
        if members:
            groups.append((label, members))
    rows = []
    for label, members in groups:
        values = [r.measures() for r in members]
        for measure in SUMMARY_MEASURES:
            stats = describe([v[measure] for v in values])
            digits = 6 if measure.endswith("_fraction") else 4 if measure == "age_months" else 3
            rows.append(
                [
                    label,
                    measure,
                    stats["n"],
                    *(_fmt(_float(stats[k]), digits) for k in SUMMARY_COLUMNS[3:]),
                ]
            )
    return rows


def find_outliers(
    records: Sequence[SessionVolumes],
) -> tuple[list[dict[str, Any]], list[Outlier]]:
    """Robust z-score of every session for every measure of :data:`OUTLIER_MEASURES`.

    The cohort is every usable session; scores are not age-adjusted. Volumes grow fast in the
    first year, so in a cohort spread over many months a failure can hide in the spread due to
    growth (and the youngest or oldest sessions may stand out for their age alone); the tissue
    fractions change slowly with age and are the more sensitive check. A measure with fewer than :data:`MIN_SESSIONS_FOR_OUTLIERS` values or a MAD of 0 gets no
    flags and a note instead of a score.

    Returns
    -------
    rows : list of dict
        One per session and measure, keys of :data:`OUTLIER_COLUMNS` (numbers unformatted,
        ``outlier`` a bool, ``robust_z`` None when not assessed).
    flagged : list of Outlier
        The values with ``|z| > 3.5``.
    """
    measures = [r.measures() for r in records]
    rows: list[dict[str, Any]] = []
    flagged: list[Outlier] = []
    by_measure: dict[str, tuple[dict[int, int], np.ndarray, float, float, str]] = {}
    for measure in OUTLIER_MEASURES:
        idx = [i for i, m in enumerate(measures) if m[measure] is not None]
        values = [_float(measures[i][measure]) for i in idx]
        note = ""
        if len(values) < MIN_SESSIONS_FOR_OUTLIERS:
            z = np.full(len(values), np.nan)
            median = float(np.median(values)) if values else math.nan
            mad = float(np.median(np.abs(np.subtract(values, median)))) if values else math.nan
            note = (
                f"not assessed: {len(values)} session(s) with a value, "
                f"at least {MIN_SESSIONS_FOR_OUTLIERS} needed"
            )
        else:
            z, median, mad = robust_z(values)
            if np.isnan(z).all():
                note = "not assessed: the median absolute deviation is 0 (most values identical)"
        by_measure[measure] = ({i: k for k, i in enumerate(idx)}, z, median, mad, note)
    for i, rec in enumerate(records):
        for measure in OUTLIER_MEASURES:
            idx, z, median, mad, note = by_measure[measure]
            value = measures[i][measure]
            score = None
            reason = note
            if value is None:
                reason = "no value"
            elif not math.isnan(z[idx[i]]):
                score = float(z[idx[i]])
                reason = ""
            is_outlier = False
            if score is not None and value is not None and abs(score) > ROBUST_Z_THRESHOLD:
                is_outlier = True
                name, unit = _measure_phrase(measure)
                side = "above" if score > 0 else "below"
                reason = (
                    f"{name} {_fmt_reason_value(value, unit)} is {abs(score):.1f} robust SD "
                    f"{side} the cohort median {_fmt_reason_value(median, unit)}"
                )
                flagged.append(Outlier(rec.subject, rec.session, measure, value, score, reason))
            rows.append(
                {
                    "subject": rec.subject,
                    "session": rec.session,
                    "age_months": rec.age_months,
                    "measure": measure,
                    "value": value,
                    "cohort_n": len(idx),
                    "cohort_median": median,
                    "cohort_mad": mad,
                    "robust_z": score,
                    "outlier": is_outlier,
                    "reason": reason,
                }
            )
    return rows, flagged


def _outlier_table_rows(rows: Sequence[Mapping[str, Any]], root: Path) -> list[list[Any]]:
    out = []
    for row in rows:
        digits = 6 if row["measure"].endswith("_fraction") else 3
        report_path = root / f"{_prefix(row['subject'], row['session'])}.html"
        out.append(
            [
                f"sub-{row['subject']}",
                f"ses-{row['session']}" if row["session"] else None,
                _fmt(row["age_months"], 4),
                row["measure"],
                _fmt(row["value"], digits),
                row["cohort_n"],
                _fmt(row["cohort_median"], digits),
                _fmt(row["cohort_mad"], digits),
                _fmt(row["robust_z"], 3),
                "true" if row["outlier"] else "false",
                row["reason"] or None,
                _rel(report_path, root) if report_path.is_file() else None,
            ]
        )
    return out


def _status_rows(statuses: Sequence[SessionStatus]) -> list[list[Any]]:
    return [
        [
            f"sub-{s.subject}",
            f"ses-{s.session}" if s.session else None,
            s.status,
            s.detail or None,
            s.volumes_file,
            s.crash_file,
            s.report,
        ]
        for s in statuses
    ]


def _volumes_sidecar() -> dict[str, Any]:
    cols: dict[str, Any] = {
        "subject": {"Description": "BIDS participant label (sub-<label>)."},
        "session": {"Description": "BIDS session label (ses-<label>); n/a without sessions."},
        "age_months": {
            "Description": "Age at scan, from the session's volume table sidecar.",
            "Units": "months",
        },
        "age_source": {"Description": "Where the age came from (file and column, or option)."},
        "model_bundle": {"Description": "Model bundle that produced the segmentation."},
        "inference_mode": {"Description": "Inference mode of the segmentation engine."},
        "report": {"Description": "Path of the session's HTML report, relative to this dataset."},
    }
    for tissue in (*TISSUES, "brain"):
        what = "total brain (CSF + GM + WM)" if tissue == "brain" else tissue
        key = tissue.lower()
        cols[f"{key}_mm3"] = {
            "Description": f"{what} volume from the label map (voxel count x voxel volume).",
            "Units": "mm^3",
        }
        cols[f"{key}_pv_mm3"] = {
            "Description": f"{what} partial volume: sum of the tissue probabilities x voxel volume.",
            "Units": "mm^3",
        }
    for tissue in TISSUES:
        cols[f"{tissue.lower()}_fraction"] = {
            "Description": f"{tissue} label-map volume divided by brain_mm3.",
            "Units": "arbitrary",
        }
    cols[REMOVED_MEASURE] = {
        "Description": "Volume of the cerebellum + brain stem removed before segmentation (not "
        "part of brain_mm3); n/a when they were kept.",
        "Units": "mm^3",
    }
    return {c: cols[c] for c in VOLUMES_COLUMNS}


# --- figures ---------------------------------------------------------------------------------------


def _save_figure(fig: Any, path: Path) -> Path:
    """Save a matplotlib figure to a hidden temporary name beside ``path``, then rename it."""
    fmt = path.suffix.lstrip(".")
    tmp = path.with_name(f".{path.stem}.tmp-{uuid.uuid4().hex[:12]}{path.suffix}")
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    try:
        fig.savefig(tmp, format=fmt, metadata=metadata, dpi=120)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _flag_set(flagged: Iterable[Outlier]) -> set[tuple[str, str | None, str]]:
    return {(o.subject, o.session, o.measure) for o in flagged}


_PANELS_VOLUME = (("CSF", "csf_mm3"), ("GM", "gm_mm3"), ("WM", "wm_mm3"), ("brain", "brain_mm3"))
_PANELS_FRACTION = (("CSF", "csf_fraction"), ("GM", "gm_fraction"), ("WM", "wm_fraction"))
_COLORS = {"CSF": "#1f77b4", "GM": "#7f7f7f", "WM": "#ff7f0e", "brain": "#2ca02c"}
_OUTLIER_COLOR = "#d62728"


def _plot_vs_age(
    records: Sequence[SessionVolumes], flagged: Iterable[Outlier], stem: Path
) -> list[Path]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    flags = _flag_set(flagged)
    aged = [r for r in records if r.age_months is not None]
    fig = Figure(figsize=(10, 8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2).ravel()
    for ax, (tissue, measure) in zip(axes, _PANELS_VOLUME, strict=True):
        ages = np.array([r.age_months for r in aged], dtype=float)
        vols = np.array([r.measures()[measure] for r in aged], dtype=float) / 1000.0
        out = np.array([(r.subject, r.session, measure) in flags for r in aged], dtype=bool)
        by_subject: dict[str, list[int]] = {}
        for i, r in enumerate(aged):
            by_subject.setdefault(r.subject, []).append(i)
        for idx in by_subject.values():
            if len(idx) > 1:
                order = sorted(idx, key=lambda i: ages[i])
                ax.plot(ages[order], vols[order], color="#bbbbbb", lw=0.8, zorder=1)
        ax.scatter(ages[~out], vols[~out], s=22, color=_COLORS[tissue], zorder=2, label="session")
        if out.any():
            ax.scatter(
                ages[out],
                vols[out],
                s=60,
                marker="X",
                color=_OUTLIER_COLOR,
                zorder=3,
                label="outlier",
            )
            for i in np.flatnonzero(out):
                ax.annotate(
                    _unit_label(aged[i].subject, aged[i].session),
                    (ages[i], vols[i]),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=7,
                    color=_OUTLIER_COLOR,
                )
        keep = ~out
        fit_x, fit_y = ages[keep], vols[keep]
        distinct = np.unique(fit_x).size
        if fit_x.size >= MIN_POINTS_LOWESS and distinct >= 4:
            order = np.argsort(fit_x, kind="stable")
            smooth = lowess(fit_x[order], fit_y[order])
            ax.plot(fit_x[order], smooth, color="black", lw=1.5, zorder=2, label="LOWESS")
        elif fit_x.size >= MIN_POINTS_LINEAR and distinct >= 2:
            slope, intercept = np.polyfit(fit_x, fit_y, 1)
            grid = np.array([fit_x.min(), fit_x.max()])
            ax.plot(
                grid, intercept + slope * grid, color="black", lw=1.5, zorder=2, label="linear fit"
            )
        ax.set_title(f"{tissue} volume")
        ax.set_xlabel("age (months)")
        ax.set_ylabel("volume (cm³)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    unknown = len(records) - len(aged)
    title = f"Tissue volume vs age ({len(aged)} sessions"
    title += f"; {unknown} without age not shown)" if unknown else ")"
    fig.suptitle(title)
    # Fixed margins: a layout engine would re-measure every text at each save (slow, and
    # the figures' content is fixed).
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.07, top=0.91, wspace=0.25, hspace=0.32)
    return [_save_figure(fig, stem.with_suffix(f".{fmt}")) for fmt in FIGURE_FORMATS]


def _plot_distributions(
    records: Sequence[SessionVolumes], flagged: Iterable[Outlier], stem: Path
) -> list[Path]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    flags = _flag_set(flagged)
    rng = np.random.default_rng(0)  # fixed jitter: same data, same figure
    fig = Figure(figsize=(12, 7))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 4)
    panels = [(axes[0, i], *p, 1e-3, "volume (cm³)") for i, p in enumerate(_PANELS_VOLUME)]
    panels += [(axes[1, i], *p, 1.0, "fraction of brain") for i, p in enumerate(_PANELS_FRACTION)]
    axes[1, 3].set_axis_off()
    for ax, tissue, measure, scale, ylabel in panels:
        vals = np.array([r.measures()[measure] for r in records], dtype=float) * scale
        out = np.array([(r.subject, r.session, measure) in flags for r in records], dtype=bool)
        ax.boxplot(vals, widths=0.5, showfliers=False, medianprops={"color": "black"})
        x = 1.0 + rng.uniform(-0.15, 0.15, size=vals.size)
        ax.scatter(x[~out], vals[~out], s=16, color=_COLORS[tissue], alpha=0.8, zorder=3)
        if out.any():
            ax.scatter(x[out], vals[out], s=50, marker="X", color=_OUTLIER_COLOR, zorder=4)
            for i in np.flatnonzero(out):
                ax.annotate(
                    _unit_label(records[i].subject, records[i].session),
                    (x[i], vals[i]),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=7,
                    color=_OUTLIER_COLOR,
                )
        what = "volume" if scale != 1.0 else "fraction"
        ax.set_title(f"{tissue} {what}")
        ax.set_ylabel(ylabel)
        ax.set_xticks([])
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"Tissue volumes and fractions ({len(records)} sessions; outliers marked X)")
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.04, top=0.9, wspace=0.4, hspace=0.25)
    return [_save_figure(fig, stem.with_suffix(f".{fmt}")) for fmt in FIGURE_FORMATS]


def make_figures(
    records: Sequence[SessionVolumes], flagged: Iterable[Outlier], group_dir: str | os.PathLike[str]
) -> list[Path]:
    """Write the distribution figures, and the volume-vs-age figures when any age is known.

    A stale volume-vs-age figure from an earlier run is removed when no age is known now, so
    the folder never shows a figure of other data.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    import matplotlib

    group = Path(group_dir)
    group.mkdir(parents=True, exist_ok=True)
    flagged = list(flagged)
    written: list[Path] = []
    with matplotlib.rc_context({"svg.hashsalt": "infant-tissue", "svg.fonttype": "none"}):
        written += _plot_distributions(records, flagged, group / FIGURE_DISTRIBUTIONS)
        if any(r.age_months is not None for r in records):
            written += _plot_vs_age(records, flagged, group / FIGURE_VS_AGE)
        else:
            LOGGER.info("no session has a known age: the volume-vs-age figure is not made")
            for fmt in FIGURE_FORMATS:
                (group / f"{FIGURE_VS_AGE}.{fmt}").unlink(missing_ok=True)
    return written


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
        ``(subject, session)`` pairs (or :class:`~infant_tissue.bids.SessionInputs`) expected to
        have outputs; takes precedence over ``bids_dir``. Without either, only what is in
        ``output_dir`` is considered.

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
