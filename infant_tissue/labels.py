"""Tissue label codings and conversion to and from the model's internal labels.

Three codings meet in this project and mixing them up silently ruins every metric, so all
conversions go through this module:

* ``model``: the network's classes, 0 background, 1 CSF, 2 GM, 3 WM (iSeg order);
* ``iseg``: the iSeg-2017/2019 label files, 0 background, 10 CSF, 150 GM, 250 WM;
* ``nipreps``: BIDS/NiPreps ``dseg`` order, 0 background, 1 GM, 2 WM, 3 CSF.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._types import LabelCoding


@dataclass(frozen=True)
class Tissue:
    """One tissue class and everything each output needs to know of it."""

    name: str  # abbreviation used in tables, file names (label-GM) and figures
    long_name: str  # as written in dseg.tsv
    nipreps_index: int  # its value in the BIDS/NiPreps dseg (1 GM, 2 WM, 3 CSF)
    model_class: int  # the network's output channel (0 bg, 1 CSF, 2 GM, 3 WM)
    colour: str  # the one colour every figure and report uses for it


#: THE tissue table, in NiPreps order: derivatives, volume tables, reports and the group level all
#: read it, so a label index or a colour cannot disagree between two outputs.
TISSUE_TABLE: tuple[Tissue, ...] = (
    Tissue("GM", "Gray matter", 1, 2, "#f0a030"),
    Tissue("WM", "White matter", 2, 3, "#3ec46d"),
    Tissue("CSF", "Cerebrospinal fluid", 3, 1, "#3a8ee6"),
)
#: tissue name -> its row of :data:`TISSUE_TABLE`
TISSUE_BY_NAME: dict[str, Tissue] = {t.name: t for t in TISSUE_TABLE}
#: colour of the whole brain in cohort figures
BRAIN_COLOUR = "#7f7f7f"

#: model class -> tissue name (background excluded)
TISSUES: dict[int, str] = {
    t.model_class: t.name for t in sorted(TISSUE_TABLE, key=lambda t: t.model_class)
}

#: coding name -> {value in that coding: model class}
CODINGS: dict[str, dict[int, int]] = {
    "model": {0: 0, 1: 1, 2: 2, 3: 3},
    "iseg": {0: 0, 10: 1, 150: 2, 250: 3},
    "nipreps": {0: 0, **{t.nipreps_index: t.model_class for t in TISSUE_TABLE}},
}

#: BIDS ``dseg.tsv`` rows (index, name) for the NiPreps coding
NIPREPS_DSEG_TSV = "index\tname\n" + "".join(f"{t.nipreps_index}\t{t.name}\n" for t in TISSUE_TABLE)
#: The derivatives' ``dseg.tsv`` lookup table (index, name, abbreviation)
DSEG_LOOKUP_TSV = "index\tname\tabbreviation\n" + "".join(
    f"{t.nipreps_index}\t{t.long_name}\t{t.name}\n" for t in TISSUE_TABLE
)


def _check_coding(coding: str) -> dict[int, int]:
    if coding not in CODINGS:
        raise ValueError(f"unknown label coding {coding!r}; expected one of {sorted(CODINGS)}")
    return CODINGS[coding]


def to_model(labels: np.ndarray, coding: LabelCoding) -> np.ndarray:
    """Convert a label map from ``coding`` to the model's 0-3 classes.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer-valued label map (float arrays holding integers, as Analyze files often do,
        are accepted).
    coding : {"model", "iseg", "nipreps"}
        The coding ``labels`` is written in.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array of model classes.

    Raises
    ------
    ValueError
        If ``labels`` holds values that do not belong to ``coding``: guessing would turn a
        wrong ``--labels`` choice into plausible-looking but meaningless scores.
    """
    table = _check_coding(coding)
    values = np.asarray(labels)
    rounded = np.rint(values)
    if values.dtype.kind == "f" and not np.array_equal(rounded, values):
        raise ValueError(f"label map holds non-integer values; it is not a {coding!r} label map")
    present = np.unique(rounded).astype(np.int64)
    unknown = sorted(set(present.tolist()) - set(table))
    if unknown:
        raise ValueError(
            f"label values {unknown[:8]} are not in the {coding!r} coding "
            f"(expected {sorted(table)})"
        )
    lut = np.zeros(int(present.max(initial=0)) + 1, dtype=np.uint8)
    for value, cls in table.items():
        if value < lut.size:
            lut[value] = cls
    return lut[rounded.astype(np.int64)]


def from_model(labels: np.ndarray, coding: LabelCoding, dtype: type = np.uint8) -> np.ndarray:
    """Convert model classes (0-3) to ``coding``.

    Parameters
    ----------
    labels : numpy.ndarray
        Array of model classes.
    coding : {"model", "iseg", "nipreps"}
        Target coding.
    dtype : numpy dtype
        Output dtype (``uint8`` holds every coding).

    Returns
    -------
    numpy.ndarray
        Label map in the target coding.
    """
    table = _check_coding(coding)
    values = np.asarray(labels)
    if values.size and (values.min() < 0 or values.max() > 3):
        raise ValueError(f"model labels must be 0-3, got range [{values.min()}, {values.max()}]")
    lut = np.zeros(4, dtype=dtype)
    for value, cls in table.items():
        lut[cls] = value
    return lut[values.astype(np.int64)]
