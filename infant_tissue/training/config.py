"""Training configuration with the paper's DU-Net schedule (seed 000, Table 1) as defaults."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TrainingConfig:
    """Every number of a training run; JSON-serialisable so a run can be resumed and audited.

    Defaults are the reference DU-Net schedule: 32³ patches, batch 16, Adam, cosine annealing
    from 3e-4 to 1e-6 over 500 epochs of 1000 random patches, He initialisation, cross-entropy,
    L2 weight decay 1e-4 on convolution kernels (Keras ``kernel_regularizer``). The reference
    cosine schedule restarts every ``lr_period`` = 50 epochs.

    ``bn_recalibration_batches`` > 0 (not in the paper) re-estimates BatchNorm statistics exactly
    over that many training batches after the last epoch: with Keras' momentum 0.99 the running
    statistics of a short run (a few hundred steps, as the demo model) lag the weights.
    """

    architecture: str = "dunet-mixacb"
    architecture_kwargs: dict[str, Any] = field(default_factory=dict)
    patch_size: int = 32
    batch_size: int = 16
    epochs: int = 500
    patches_per_epoch: int = 1000
    lr_max: float = 3e-4
    lr_min: float = 1e-6
    weight_decay: float = 1e-4
    sampling: str = "brain"  # "brain" or "balanced"
    augment: bool = False
    folds: int = 1
    fold: int = 0
    seed: int = 0
    lr_period: int = 50
    validation_patches: int = 32
    bn_recalibration_batches: int = 0
    num_threads: int | None = None

    def __post_init__(self) -> None:
        if self.sampling not in ("brain", "balanced"):
            raise ValueError(f"sampling must be 'brain' or 'balanced', got {self.sampling!r}")
        for name in ("patch_size", "batch_size", "epochs", "patches_per_epoch", "folds"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.patch_size % 8:
            raise ValueError(
                f"patch_size must be a multiple of 8 (three poolings), got {self.patch_size}"
            )
        if not 0 <= self.fold < self.folds:
            raise ValueError(f"fold must be in [0, {self.folds}), got {self.fold}")
        if not 0 < self.lr_min <= self.lr_max:
            raise ValueError(f"need 0 < lr_min <= lr_max, got {self.lr_min}, {self.lr_max}")

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.patches_per_epoch // self.batch_size)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training option(s): {', '.join(unknown)}")
        return cls(**data)

    @classmethod
    def from_file(cls, path: str | Path) -> TrainingConfig:
        """Read a JSON or YAML config file (keys are the field names)."""
        path = Path(path)
        text = path.read_text()
        if path.suffix in (".yml", ".yaml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of option names to values")
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from None
