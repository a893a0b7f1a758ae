"""The QC record of one session (``*_desc-tissue_qc.json``): what it holds and how it is read.

One JSON object per session, written next to the volume table by the QC node::

    {
      "Verdict": "pass" | "warn" | "fail",
      "Reasons": ["one sentence per metric outside its range", ...],
      "Metrics": {"disagreement_mean": 0.04, ..., "window_coverage": 1.0},
      "Thresholds": {"disagreement_mean": {"warn": [null, 0.13], "fail": [null, 0.25]}, ...},
      "AgeMonths": 6.0, "NormsSource": "...", "Members": 10, "InferenceMode": "faithful",
      "Subject": "01", "Session": null
    }

A metric is ``null`` when it could not be measured (e.g. disagreement of a one-member bundle,
the brain volume without an age). :func:`read_session_qc` reads it strictly and raises one
:class:`QCRecordError` line naming the file.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ExitCode, InfantTissueError

#: The verdicts, from best to worst.
VERDICTS: tuple[str, ...] = ("pass", "warn", "fail")


class QCRecordError(InfantTissueError, ValueError):
    """A session's QC record cannot be used; one line naming the file."""

    exit_code = ExitCode.FAILED


@dataclass
class SessionQC:
    """Verdict, reasons and metrics of one session."""

    verdict: str
    reasons: list[str]
    metrics: dict[str, float | None]
    thresholds: dict[str, dict[str, list[float | None]]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "Verdict": self.verdict,
            "Reasons": list(self.reasons),
            "Metrics": {k: _finite_or_none(v) for k, v in self.metrics.items()},
            "Thresholds": self.thresholds,
            **self.extra,
        }


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def read_session_qc(path: str | os.PathLike[str]) -> SessionQC:
    """Read and check a ``*_desc-tissue_qc.json``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise QCRecordError(f"{path}: cannot read the QC record ({exc})") from None
    if not isinstance(data, dict):
        raise QCRecordError(f"{path}: the QC record is not a JSON object")
    verdict = data.get("Verdict")
    if verdict not in VERDICTS:
        raise QCRecordError(
            f"{path}: Verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}"
        )
    reasons = data.get("Reasons", [])
    metrics = data.get("Metrics", {})
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise QCRecordError(f"{path}: Reasons must be a list of sentences")
    if not isinstance(metrics, dict):
        raise QCRecordError(f"{path}: Metrics must be an object")
    checked: dict[str, float | None] = {}
    for name, value in metrics.items():
        if value is not None and not isinstance(value, (int, float)):
            raise QCRecordError(f"{path}: metric {name} is not a number ({value!r})")
        checked[name] = None if value is None else float(value)
    extra = {
        k: v for k, v in data.items() if k not in ("Verdict", "Reasons", "Metrics", "Thresholds")
    }
    return SessionQC(verdict, reasons, checked, data.get("Thresholds", {}), extra, path)
