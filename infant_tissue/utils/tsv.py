"""Reading and writing BIDS TSV tables (tab-separated, ``n/a`` for missing values)."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .atomic import write_atomic

#: BIDS spelling of a missing value.
NA = "n/a"


def read_tsv(path: str | os.PathLike[str]) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows (dicts of stripped cells) of a TSV file; blank lines are skipped, a
    UTF-8 byte-order mark is tolerated, short rows are padded with empty cells."""
    with open(path, encoding="utf-8-sig", newline="") as fobj:
        reader = csv.reader(fobj, delimiter="\t")
        rows = [r for r in reader if any(c.strip() for c in r)]
    if not rows:
        return [], []
    header = [h.strip() for h in rows[0]]
    return header, [
        {h: (r[i].strip() if i < len(r) else "") for i, h in enumerate(header)} for r in rows[1:]
    ]


def cell(value: Any) -> str:
    """A table cell: ``n/a`` for None or empty, runs of white space (tabs, newlines: they would
    split the row) folded to one space."""
    if value is None:
        return NA
    text = " ".join(str(value).split()) if isinstance(value, str) else str(value)
    return text or NA


def tsv_text(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """The text of a TSV table with ``columns`` and ``rows`` (see :func:`cell`)."""
    lines = ["\t".join(columns)]
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"row has {len(row)} fields, expected {len(columns)}")
        lines.append("\t".join(cell(v) for v in row))
    return "\n".join(lines) + "\n"


def write_tsv(
    path: str | os.PathLike[str], columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> Path:
    """Write a TSV table atomically."""
    return write_atomic(tsv_text(columns, rows), path)
