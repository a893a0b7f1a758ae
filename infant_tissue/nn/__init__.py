"""Networks and blocks of 3D-MASNet (no nipype or pybids in here)."""

from __future__ import annotations

import copy

from torch import nn

from .blocks import ACB3d, ConvBN3d, MixACB, split_channels
from .dunet import DUNet
from .registry import available_models, build_model, register


def fuse_model(model: nn.Module) -> nn.Module:
    """Return an eval-mode copy of ``model`` with every re-parameterisable block fused.

    The input model is left untouched (including its train/eval mode). Fusion uses BatchNorm
    running statistics, which is why the copy is put in eval mode first.
    """
    fused = copy.deepcopy(model).eval()
    for module in fused.modules():
        if isinstance(module, ACB3d):
            module.switch_to_deploy()
    return fused


def spatial_dimensions(model: nn.Module) -> int:
    """2 for slice networks (InfiNet, MixNet: class attribute ``dimensions = 2``), else 3."""
    return int(getattr(model, "dimensions", 3))


def size_multiple(model: nn.Module) -> int:
    """Every spatial input size must be a multiple of this (the network's down-sampling)."""
    return int(getattr(model, "size_multiple", 8))


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters as the paper counts them (BatchNorm running statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "ACB3d",
    "ConvBN3d",
    "DUNet",
    "MixACB",
    "available_models",
    "build_model",
    "count_parameters",
    "fuse_model",
    "register",
    "size_multiple",
    "spatial_dimensions",
    "split_channels",
]
