"""Run configuration of the BIDS-App, built once by the CLI and read by ``workflows/base.py``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class RunConfig:
    """Everything the participant workflow needs; nothing deeper reads the command line."""

    bids_dir: Path
    output_dir: Path
    work_dir: Path
    bundle: Path
    inference_mode: str = "faithful"
    vote: str = "hard"
    device: str = "auto"
    nprocs: int = 1
    omp_nthreads: int = 1
    mem_gb: float | None = None
    skull_stripped: bool = False
    derivatives: Path | None = None
    age_months: float | None = None
    templateflow_home: Path | None = None
    extra: dict = field(default_factory=dict)
