"""Small helpers for BIDS labels and file names shared by the input readers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any


def strip_prefix(label: Any, prefix: str) -> str:
    """``"01"`` for ``"sub-01"`` (and for ``"01"``) with ``prefix="sub-"``."""
    label = str(label).strip()
    return label[len(prefix) :] if label.startswith(prefix) else label


def natural_key(path: str | Path) -> list[Any]:
    """Sort key where ``run-2`` comes before ``run-10`` (plain string order would not)."""
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", str(path))]
