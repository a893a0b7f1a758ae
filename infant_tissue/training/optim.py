"""Optimisers and learning-rate schedules of the backbones' papers (one place, per epoch)."""

from __future__ import annotations

import torch
from torch import nn

from .config import TrainingConfig
from .losses import cosine_annealing_lr


def learning_rate(config: TrainingConfig, epoch: int) -> float:
    """Learning rate of epoch ``epoch`` (0-based) under ``config.lr_schedule``.

    ``cosine``: the DU-Net reference (:func:`~.losses.cosine_annealing_lr`). ``step``:
    ``lr_max · lr_gamma ** ((epoch mod lr_period) // lr_step)`` (``lr_period`` 0: no restart;
    DAM-AL's warm restarts are ``lr_period`` 200, ``lr_step`` 40). ``multistep``: ``lr_max`` times
    ``lr_gammas[i]`` for every milestone with ``epoch >= lr_milestones[i] · epochs``.
    ``constant``: ``lr_max``.
    """
    schedule = config.lr_schedule
    if schedule == "cosine":
        return cosine_annealing_lr(epoch, config.lr_max, config.lr_min, config.lr_period)
    if schedule == "step":
        within = epoch % config.lr_period if config.lr_period else epoch
        return config.lr_max * config.lr_gamma ** (within // config.lr_step)
    if schedule == "multistep":
        lr = config.lr_max
        for milestone, gamma in zip(config.lr_milestones, config.lr_gammas, strict=True):
            if epoch >= milestone * config.epochs:
                lr *= gamma
        return lr
    if schedule == "constant":
        return config.lr_max
    raise ValueError(f"unknown learning-rate schedule {schedule!r}")


def build_optimizer(model: nn.Module, config: TrainingConfig) -> torch.optim.Optimizer:
    """Adam or SGD over every parameter; ``weight_decay`` is the optimiser's own only in the
    ``coupled`` mode (the ``keras-l2`` penalty is added to the loss by the trainer)."""
    decay = config.weight_decay if config.weight_decay_mode == "coupled" else 0.0
    params = model.parameters()
    if config.optimizer == "adam":
        return torch.optim.Adam(
            params,
            lr=config.lr_max,
            betas=tuple(config.adam_betas),  # type: ignore[arg-type]
            eps=config.adam_eps,
            weight_decay=decay,
        )
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=config.lr_max,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=decay,
        )
    raise ValueError(f"unknown optimizer {config.optimizer!r}")
