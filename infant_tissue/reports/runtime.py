"""What a session's run did and how long each stage took, kept for its report.

The participant level passes :meth:`RunRecorder.status_callback` to nipype (MultiProc and Linear
call it when a node starts and ends), then saves the record beside the session's crash files as
``sub-X/log/<prefix>_runtime.json``; the report reads it back, so it can be regenerated later
(e.g. by the group level) without re-running anything.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..layout import runtime_path
from ..utils.atomic import write_atomic

#: Stage of a node, from the sub-workflow it belongs to.
STAGES = {
    "preproc_wf": "preprocessing",
    "segmentation_wf": "segmentation",
    "outputs_wf": "outputs",
}


def software_versions() -> dict[str, str]:
    """Versions of the software whose numbers a methods section cites."""
    versions = {"infant-tissue": __version__, "python": platform.python_version()}
    for name in ("torch", "nipype", "ants", "nibabel", "numpy", "templateflow"):
        try:
            module = __import__(name)
            versions[name] = str(getattr(module, "__version__", None) or module.Version())
        except Exception:  # noqa: BLE001 - a missing or odd package is just not listed
            continue
    try:
        import torch

        versions["cuda"] = torch.version.cuda or "none (CPU build)"
    except ImportError:  # pragma: no cover
        pass
    return versions


@dataclass
class RunRecord:
    """One session's run: when, how, which nodes, how long, what went wrong."""

    subject: str
    session: str | None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    status: str = "running"
    command: list[str] = field(default_factory=lambda: list(sys.argv))
    plugin: str = ""
    inputs: dict[str, str] = field(default_factory=dict)
    age_months: float | None = None
    age_source: str = ""
    mask_method: str = ""
    template: str = ""
    removal: str = ""  # how cerebellum + brain stem were removed, or why they were kept
    warnings: list[str] = field(default_factory=list)
    error: str = ""
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=software_versions)

    @property
    def duration(self) -> float | None:
        return None if self.finished is None else self.finished - self.started

    def stage_times(self) -> dict[str, float]:
        """Seconds per stage during which at least one of its nodes ran (the union of the nodes'
        intervals): parallel nodes are not counted twice, and a stage whose writers wait for the
        segmentation is not charged for the wait."""
        intervals: dict[str, list[tuple[float, float]]] = {}
        for info in self.nodes.values():
            if info.get("end") is not None:
                intervals.setdefault(info["stage"], []).append((info["start"], info["end"]))
        totals = {}
        for stage, spans in intervals.items():
            busy, current_end = 0.0, float("-inf")
            for start, end in sorted(spans):
                if end > current_end:
                    busy += end - max(start, current_end)
                    current_end = end
            totals[stage] = round(busy, 2)
        order = list(STAGES.values())
        return dict(sorted(totals.items(), key=lambda kv: (order + [kv[0]]).index(kv[0])))

    def save(self, output_dir: Path) -> Path:
        data = asdict(self)
        data["duration"] = self.duration
        data["stages"] = self.stage_times()
        return write_atomic(
            json.dumps(data, indent=2, default=str),
            runtime_path(output_dir, self.subject, self.session),
        )


def load_run_record(output_dir: Path, subject: str, session: str | None) -> RunRecord | None:
    """The saved record of a session's last run, or None when there is none (or it is unreadable,
    which must not stop a report from being made)."""
    path = runtime_path(output_dir, subject, session)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    known = RunRecord.__dataclass_fields__
    return RunRecord(**{k: v for k, v in data.items() if k in known})


class RunRecorder:
    """Collects node start/end times from nipype's ``status_callback`` into a :class:`RunRecord`."""

    def __init__(self, record: RunRecord) -> None:
        self.record = record

    def status_callback(self, node: Any, status: str) -> None:
        hierarchy = (getattr(node, "_hierarchy", None) or "").split(".")
        stage = next((STAGES[p] for p in hierarchy if p in STAGES), "other")
        now = time.time()
        key = getattr(node, "fullname", None) or str(node)
        if status == "start":
            self.record.nodes[key] = {"stage": stage, "start": now, "end": None, "status": status}
        else:
            entry = self.record.nodes.setdefault(key, {"stage": stage, "start": now})
            entry.update(end=now, status=status)
