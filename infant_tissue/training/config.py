"""Training configuration: the paper's DU-Net schedule (seed 000, Table 1) as dataclass defaults,
each other backbone's own schedule through :meth:`TrainingConfig.from_dict` (see
:mod:`.backbones`)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._types import NORMALISATIONS, VIEWS
from .backbones import training_defaults

OPTIMIZERS = ("adam", "sgd")
#: ``keras-l2``: ``weight_decay · Σ w²`` over convolution kernels added to the loss (the DU-Net's
#: Keras ``kernel_regularizer``); ``coupled``: the optimiser's ``weight_decay`` on every parameter
#: (PyTorch's L2 gradient term, = TF's ``wd · Σ l2_loss``).
WEIGHT_DECAY_MODES = ("keras-l2", "coupled")
LR_SCHEDULES = ("cosine", "step", "multistep", "constant")
LOSSES = ("cross-entropy", "deep-supervision", "gdl", "damal")
#: ``flip-rot90``: flips along each axis and a rot90 in a random plane; ``rot90z-flipy``: seed
#: 001's rotations by 90/180/270° about z and flips along y.
AUGMENTATIONS = ("flip-rot90", "rot90z-flipy")


@dataclass
class TrainingConfig:
    """Every number of a training run; JSON-serialisable so a run can be resumed and audited.

    Defaults are the reference DU-Net schedule: 32³ patches, batch 16, Adam, cosine annealing
    from 3e-4 to 1e-6 over 500 epochs of 1000 random patches, He initialisation, cross-entropy,
    L2 weight decay 1e-4 on convolution kernels (Keras ``kernel_regularizer``). The reference
    cosine schedule restarts every ``lr_period`` = 50 epochs. Build other backbones' configs with
    :meth:`from_dict` (``{"architecture": "buinet-mixacb"}`` gives BuiNet's Table 1 schedule).

    Learning-rate schedules (per epoch): ``cosine`` (``lr_max`` → ``lr_min``, restarts every
    ``lr_period``), ``step`` (``lr_max · lr_gamma ** ((epoch mod lr_period) // lr_step)``,
    ``lr_period`` 0 = no restart), ``multistep`` (``lr_max`` times each ``lr_gammas[i]`` once
    ``epoch >= lr_milestones[i] · epochs``: milestones are fractions, so a shortened run keeps the
    paper's shape) and ``constant``.

    ``view`` is the slice orientation of a 2-D network (``axial``, ``coronal``, ``sagittal``;
    ``None`` for 3-D networks); ``patch_size`` does not apply to them (whole slices).

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
    optimizer: str = "adam"
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    adam_eps: float = 1e-7  # Keras' epsilon (the DU-Net's reference)
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay_mode: str = "keras-l2"
    lr_schedule: str = "cosine"
    lr_step: int = 0
    lr_gamma: float = 0.1
    lr_milestones: list[float] = field(default_factory=list)
    lr_gammas: list[float] = field(default_factory=list)
    loss: str = "cross-entropy"
    normalisation: str = "zscore-nonzero"
    augmentation: str = "flip-rot90"
    view: str | None = None

    def __post_init__(self) -> None:
        choices = {
            "sampling": ("brain", "balanced"),
            "optimizer": OPTIMIZERS,
            "weight_decay_mode": WEIGHT_DECAY_MODES,
            "lr_schedule": LR_SCHEDULES,
            "loss": LOSSES,
            "normalisation": NORMALISATIONS,
            "augmentation": AUGMENTATIONS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )
        for name in ("patch_size", "batch_size", "epochs", "patches_per_epoch", "folds"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.view is not None and self.view not in VIEWS:
            raise ValueError(f"view must be one of {', '.join(VIEWS)}, got {self.view!r}")
        # NLU-Net pools twice; every other 3-D network at least three times (the trainer checks
        # the built network's own multiple, e.g. 16 for BuiNet)
        multiple = 4 if self.architecture.startswith("nlunet") else 8
        if self.view is None and self.patch_size % multiple:
            raise ValueError(
                f"patch_size must be a multiple of {multiple} (the network's poolings), got "
                f"{self.patch_size}"
            )
        if not 0 <= self.fold < self.folds:
            raise ValueError(f"fold must be in [0, {self.folds}), got {self.fold}")
        if not 0 < self.lr_min <= self.lr_max:
            raise ValueError(f"need 0 < lr_min <= lr_max, got {self.lr_min}, {self.lr_max}")
        self._check_schedule()

    def _check_schedule(self) -> None:
        if self.lr_schedule == "cosine" and self.lr_period < 1:
            raise ValueError(f"the cosine schedule needs lr_period >= 1, got {self.lr_period}")
        if self.lr_schedule == "step" and (self.lr_step < 1 or self.lr_period < 0):
            raise ValueError(
                f"the step schedule needs lr_step >= 1 and lr_period >= 0, got {self.lr_step}, "
                f"{self.lr_period}"
            )
        if self.lr_schedule == "multistep":
            if len(self.lr_milestones) != len(self.lr_gammas):
                raise ValueError("lr_milestones and lr_gammas must have the same length")
            if any(not 0 < m < 1 for m in self.lr_milestones) or sorted(self.lr_milestones) != list(
                self.lr_milestones
            ):
                raise ValueError(
                    f"lr_milestones must be increasing fractions of the epochs in (0, 1), got "
                    f"{self.lr_milestones}"
                )
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas):
            raise ValueError(f"adam_betas must be two numbers in [0, 1), got {self.adam_betas}")

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.patches_per_epoch // self.batch_size)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        """A config from ``data`` on top of its architecture's paper schedule
        (:func:`~infant_tissue.training.backbones.training_defaults`)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training option(s): {', '.join(unknown)}")
        values = training_defaults(str(data.get("architecture", cls.architecture)))
        values.update(data)
        return cls(**values)

    @classmethod
    def for_architecture(cls, architecture: str, **overrides: Any) -> TrainingConfig:
        """``architecture``'s paper schedule with ``overrides``."""
        return cls.from_dict({"architecture": architecture, **overrides})

    @staticmethod
    def read_file(path: str | Path) -> dict[str, Any]:
        """The fields a JSON or YAML config file sets (not yet checked or completed)."""
        path = Path(path)
        text = path.read_text()
        if path.suffix in (".yml", ".yaml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of option names to values")
        return data

    @classmethod
    def from_file(cls, path: str | Path) -> TrainingConfig:
        """Read a JSON or YAML config file (keys are the field names) on top of its
        architecture's paper schedule."""
        data = cls.read_file(path)
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from None
