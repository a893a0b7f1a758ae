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
    #: what the bundle's networks were trained on (``model.json`` ``input_domain``)
    input_domain: str = "cerebrum"
    #: ``--keep-cerebellum``: do not remove cerebellum and brain stem for a ``cerebrum`` bundle
    keep_cerebellum: bool = False

    @property
    def remove_cerebellum(self) -> bool:
        """The bundle was trained without cerebellum and brain stem, and they are to go."""
        return self.input_domain == "cerebrum" and not self.keep_cerebellum

    extra: dict = field(default_factory=dict)
