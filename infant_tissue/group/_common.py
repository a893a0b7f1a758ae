"""Names and small helpers shared by the group-level modules.

The tissues and measure names of one session, the BIDS spelling of a missing value, and the
``sub-``/``ses-`` label and path helpers used by the readers, the session finder, the tables and
the figures (the names themselves come from :mod:`infant_tissue.layout`). This module imports
nothing else from :mod:`infant_tissue.group`, so every module of the package can use it without
an import cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..anat.volumes import REMOVED_REGION
from ..layout import session_label as _unit_label
from ..layout import session_prefix as _prefix

#: Tissues in the order used for every table and figure.
TISSUES: tuple[str, ...] = ("CSF", "GM", "WM")
__all__ = ["NA", "TISSUES", "_prefix", "_rel", "_strip", "_unit_label", "_float"]
#: BIDS spelling of a missing value.
NA = "n/a"

#: Label-map volumes (mm³), one per tissue and the whole brain.
VOLUME_MEASURES: tuple[str, ...] = ("csf_mm3", "gm_mm3", "wm_mm3", "brain_mm3")
#: Partial-volume (probability-weighted) volumes (mm³).
PV_MEASURES: tuple[str, ...] = ("csf_pv_mm3", "gm_pv_mm3", "wm_pv_mm3", "brain_pv_mm3")
#: Tissue fractions of the label-map brain volume.
FRACTION_MEASURES: tuple[str, ...] = ("csf_fraction", "gm_fraction", "wm_fraction")
#: Volume (mm³) of the cerebellum + brain stem removed before segmentation (None when kept).
REMOVED_MEASURE = f"{REMOVED_REGION}_mm3"


def _strip(label: Any, prefix: str) -> str:
    text = str(label).strip()
    return text[len(prefix) :] if text.startswith(prefix) else text


def _rel(path: Path | None, root: Path) -> str | None:
    if path is None:
        return None
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
