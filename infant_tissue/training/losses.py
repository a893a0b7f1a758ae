"""Loss terms of the reference training: categorical cross-entropy and Keras L2 regularisation."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean voxel-wise cross-entropy of ``(N, C, D, H, W)`` logits against ``(N, D, H, W)``."""
    return F.cross_entropy(logits, labels)


def regularised_kernels(model: nn.Module) -> list[torch.Tensor]:
    """Kernels that carry ``kernel_regularizer=l2(1e-4)`` in the reference: every convolution
    and transposed convolution except the 1×1×1 classifier (``seg_conv``); 2-D convolutions
    too, for slice networks trained with this penalty."""
    return [
        module.weight
        for name, module in model.named_modules()
        if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d))
        and name != "seg_conv"
    ]


def keras_l2_penalty(kernels: list[torch.Tensor], l2: float) -> torch.Tensor:
    """Keras ``l2(l)`` adds ``l * sum(w²)`` per kernel to the loss (not ``l/2``, and not Adam's
    decoupled or coupled ``weight_decay``, which would differ in scale and in which tensors)."""
    return l2 * sum(w.pow(2).sum() for w in kernels)


def cosine_annealing_lr(epoch: int, lr_max: float, lr_min: float, period: int = 50) -> float:
    """Learning rate of epoch ``epoch`` (0-based) with the reference schedule.

    The reference (``util/misc.py``) anneals from ``lr_max`` to ``lr_min`` with warm restarts
    every ``period`` epochs and evaluates ``cos(pi * ((epoch - 1) mod period) / period)`` — so the
    first epoch (0) already sits at the bottom of a cycle and epoch 1 starts at ``lr_max``.
    """
    phase = ((epoch - 1) % period) / period
    return (lr_max - lr_min) / 2 * (math.cos(math.pi * phase) + 1) + lr_min


def dice_per_class(pred: torch.Tensor, truth: torch.Tensor, classes=(1, 2, 3)) -> list[float]:
    """Dice of each class between integer label tensors (nan when both are empty)."""
    out = []
    for c in classes:
        p, t = pred == c, truth == c
        denom = p.sum().item() + t.sum().item()
        out.append(2 * (p & t).sum().item() / denom if denom else float("nan"))
    return out
