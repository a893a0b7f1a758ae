"""Shared pieces of the seed-000/001 backbones: argument checks, the MixACB conversion rule,
initialisers and the input-size check.

The MixACB conversion rule (spec §2, chosen reading mirroring the authors' DU-Net): every 3×3×3
convolution except a network's first convolution on the raw input and a 3×3×3 classifier
becomes a :class:`~infant_tissue.nn.blocks.MixACB`. Where the plain convolution is followed by
BatchNorm (conv→BN→ReLU designs) the MixACB replaces the convolution *and* its BatchNorm (bias
included); where it is not (pre-activation designs, convolutions without BN) it replaces the
convolution alone and every other BatchNorm stays. :func:`conv3x3` builds either form.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

import torch
from torch import nn

from .blocks import ConvBN3d, MixACB

ConvKind = Literal["mixacb", "baseline"]

#: PyTorch's BatchNorm defaults (eps, momentum), used where the reference code is PyTorch or
#: silent (BuiNet, 3D-UNet, CC-3D-FCN, multi-stream FCN).
TORCH_BN_EPS = 1e-5
TORCH_BN_MOMENTUM = 0.1


def check_positive_ints(**values: int) -> None:
    """Raise ``ValueError`` unless every value is a positive integer."""
    for name, value in values.items():
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_probability(name: str, value: float) -> None:
    """Raise ``ValueError`` unless ``0 <= value < 1`` (a dropout rate)."""
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")


def check_conv_kind(conv: str, deploy: bool) -> None:
    """Validate the ``conv`` / ``deploy`` pair shared by every MixACB-capable backbone."""
    if conv not in ("mixacb", "baseline"):
        raise ValueError(f"unknown convolution kind {conv!r} (use 'mixacb' or 'baseline')")
    if deploy and conv != "mixacb":
        raise ValueError("deploy=True only applies to conv='mixacb'")


def check_input(x: torch.Tensor, in_channels: int, multiple: int, network: str) -> None:
    """Raise ``ValueError`` unless ``x`` is ``(N, in_channels, D, H, W)`` with every spatial size
    a positive multiple of ``multiple`` (the network's total down-sampling factor)."""
    if x.dim() != 5:
        raise ValueError(f"{network} expects a 5-D tensor (N, C, D, H, W), got {tuple(x.shape)}")
    if x.shape[1] != in_channels:
        raise ValueError(f"{network} expects {in_channels} input channels, got {x.shape[1]}")
    spatial = tuple(x.shape[2:])
    if any(s < multiple or s % multiple for s in spatial):
        raise ValueError(
            f"{network} needs every spatial size to be a positive multiple of {multiple}, "
            f"got {spatial}"
        )


def conv3x3(
    in_channels: int,
    out_channels: int,
    *,
    conv: ConvKind,
    with_bn: bool,
    bias: bool,
    stride: int = 1,
    deploy: bool = False,
    kernel_sizes: tuple[int, int] = (3, 5),
    mix_ratio: tuple[int, int] = (3, 1),
    bn_eps: float = TORCH_BN_EPS,
    bn_momentum: float = TORCH_BN_MOMENTUM,
) -> nn.Module:
    """A replaceable 3×3×3 convolution under the MixACB conversion rule (no activation).

    ``conv="baseline"``: ``Conv3d(k=3, padding=1, bias=bias)``, followed by BatchNorm when
    ``with_bn`` (:class:`ConvBN3d`). ``conv="mixacb"``: a :class:`MixACB` whose branch
    BatchNorms use ``bn_eps`` / ``bn_momentum``; it stands for the convolution and, when
    ``with_bn``, for its BatchNorm as well (``bias`` is then irrelevant: the branches are
    bias-free and the fused form has a bias).

    Input ``(N, in_channels, D, H, W)``; output ``(N, out_channels, D/s, H/s, W/s)``.
    """
    if conv == "mixacb":
        return MixACB(
            in_channels,
            out_channels,
            stride,
            tuple(kernel_sizes),
            tuple(mix_ratio),
            bn_eps,
            bn_momentum,
            deploy=deploy,
        )
    if conv != "baseline":
        raise ValueError(f"unknown convolution kind {conv!r} (use 'mixacb' or 'baseline')")
    if with_bn:
        return ConvBN3d(in_channels, out_channels, (3, 3, 3), stride, bias, bn_eps, bn_momentum)
    return nn.Conv3d(in_channels, out_channels, 3, stride=stride, padding=1, bias=bias)


def switch_mixacb_to_deploy(model: nn.Module) -> None:
    """Fuse every MixACB of ``model`` in place (requires eval mode; idempotent)."""
    for module in model.modules():
        if isinstance(module, MixACB):
            module.switch_to_deploy()


def _conv_modules(model: nn.Module) -> Iterable[tuple[str, nn.Module]]:
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv3d, nn.ConvTranspose3d)):
            yield name, module


def he_normal_init_(model: nn.Module) -> nn.Module:
    """He (Kaiming) normal initialisation, ``std = sqrt(2 / fan_in)``, of every Conv3d and
    ConvTranspose3d weight (PyTorch's fan-in convention for both); zero biases; BatchNorm
    weight 1, bias 0. Returns ``model``."""
    for _, module in _conv_modules(model):
        nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    _reset_norms(model)
    return model


def xavier_uniform_init_(model: nn.Module) -> nn.Module:
    """Glorot/Xavier uniform initialisation, ``U(-a, a)`` with
    ``a = sqrt(6 / (fan_in + fan_out))``, of every Conv3d and ConvTranspose3d weight; zero
    biases; BatchNorm weight 1, bias 0. Returns ``model``."""
    for _, module in _conv_modules(model):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    _reset_norms(model)
    return model


def xavier_bound(weight: torch.Tensor) -> float:
    """The Glorot uniform bound ``sqrt(6 / (fan_in + fan_out))`` of a convolution weight."""
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(weight)
    return math.sqrt(6.0 / (fan_in + fan_out))


def _reset_norms(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.BatchNorm3d):
            module.reset_parameters()
