"""Run configuration of the BIDS-App, built once by the command line and read by
``app.py`` and ``workflows/base.py``; nothing deeper reads the command line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._types import DeviceSpec, Vote


@dataclass(frozen=True)
class RunConfig:
    """Everything the participant level needs."""

    bids_dir: Path
    output_dir: Path
    work_dir: Path
    bundle: Path
    inference_mode: str = "faithful"
    vote: Vote = "hard"
    device: DeviceSpec = "auto"
    nprocs: int = 1
    omp_nthreads: int = 1
    mem_gb: float | None = None
    skull_stripped: bool = False
    derivatives: Path | None = None
    age_months: float | None = None
    #: what the bundle's networks were trained on (``model.json`` ``input_domain``)
    input_domain: str = "cerebrum"
    #: ``--keep-cerebellum``: do not remove cerebellum and brain stem for a ``cerebrum`` bundle
    keep_cerebellum: bool = False
    #: ``--t2w-registered``: the T2w is already aligned with the T1w (no registration)
    t2w_registered: bool = False
    #: members the segmentation uses (the bundle's, or fewer with ``members:K``)
    ensemble_members: int = 1
    #: ``--qc-norms``: brain-volume norms for the QC verdict (None: the literature's)
    qc_norms: Path | None = None
    participant_labels: list[str] | None = None
    session_labels: list[str] | None = None
    bids_filters: dict[str, Any] | None = None
    reports: bool = True
    verbose: int = 0
    plugin_file: Path | None = None
    clean_workdir: bool = False

    @property
    def remove_cerebellum(self) -> bool:
        """The bundle was trained without cerebellum and brain stem, and they are to go."""
        return self.input_domain == "cerebrum" and not self.keep_cerebellum
