"""InfiNet (seed 002): a 2-D network with one encoder arm per modality and a joint decoder.

Each input channel (T1w, T2w) has its own encoder arm of three blocks; each block ends in a 2×2
max pooling whose **indices** are kept. The bottleneck unpools each arm's deepest map with that
arm's own indices; the two decoder blocks unpool their single input once per arm, again with the
matching arm's indices (SegNet unpooling: the value goes to the arg-max position, exact zeros
elsewhere). Unpooled maps are concatenated, reduced by a 1×1 convolution, concatenated with both
arms' pre-pool features of the same resolution (long skips) and convolved 3×3.

Readings (``shared/specs/seed-systems.md`` §8):

* ``variant="code"`` (default), the authors' Keras model (``MODEL_Y.py``): **two** conv–ReLU–BN
  (64) per encoder block, a BatchNorm on each raw input, a BatchNorm on the skip concatenation.
  731,784 trainable parameters (736,012 with BN running statistics = Keras "Total params", the
  paper's "0.74 million").
* ``variant="paper"``, the text of §2.1: one conv–ReLU–BN per encoder block, no input BN, no BN on
  the skip concatenation: 508,292 trainable parameters (510,596 with BN statistics).
* Every convolution has a bias and is followed by ReLU *then* BatchNorm (Keras
  ``Conv2D(activation='relu')`` + ``BatchNormalization``); BN eps 1e-3, Keras momentum 0.99.
* Unpooling uses max-pool indices (``F.max_unpool2d``). The authors' Keras layer rebuilt a mask
  from the reference tensor instead, which marks every tied maximum; with indices exactly one
  position per window receives the value.
* The classifier is a 1×1 convolution to 4 classes; softmax is left to the loss / caller.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import KERAS_BN_EPS, KERAS_BN_MOMENTUM

Variant = Literal["code", "paper"]


class ConvReLUBN2d(nn.Sequential):
    """Conv2d (bias, 'same' padding) → ReLU → BatchNorm2d, the Keras order of the reference."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bn_eps: float = KERAS_BN_EPS,
        bn_momentum: float = KERAS_BN_MOMENTUM,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=True
        )
        self.relu = nn.ReLU(inplace=True)
        self.bn = nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum)


class Unpool2d(nn.Module):
    """2×2 max unpooling with saved indices: ``(N, C, h, w)`` → ``(N, C, H, W)``.

    Each value is written at the position its max pooling selected; every other position is an
    exact zero. ``output_size`` is the pre-pool spatial size ``(H, W)``.
    """

    def forward(
        self, x: torch.Tensor, indices: torch.Tensor, output_size: tuple[int, int]
    ) -> torch.Tensor:
        return F.max_unpool2d(x, indices, kernel_size=2, stride=2, output_size=output_size)


class EncoderBlock(nn.Module):
    """``num_convs`` × (3×3 conv → ReLU → BN), then 2×2 max pooling that keeps its indices.

    Input ``(N, in_channels, H, W)``; returns the pre-pool features ``(N, F, H, W)``, the pooled
    map ``(N, F, H/2, W/2)`` and the pooling indices (same shape as the pooled map).
    """

    def __init__(
        self, in_channels: int, features: int, num_convs: int, bn_eps: float, bn_momentum: float
    ) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            *(
                ConvReLUBN2d(in_channels if i == 0 else features, features, 3, bn_eps, bn_momentum)
                for i in range(num_convs)
            )
        )
        self.pool = nn.MaxPool2d(2, stride=2, return_indices=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = self.convs(x)
        pooled, indices = self.pool(features)
        return features, pooled, indices


class UnpoolFusionBlock(nn.Module):
    """Bottleneck / decoder block: unpool per arm → concat → BN → 1×1 conv–ReLU–BN → concat with
    the arms' skips → [BN] → 3×3 conv–ReLU–BN.

    ``forward(inputs, indices, skips)`` takes one low-resolution map per arm (the bottleneck gets
    each arm's own pooled map; a decoder block passes the same map once per arm), each arm's
    pooling indices and each arm's pre-pool features. Output ``(N, features, H, W)`` at the skips'
    resolution.
    """

    def __init__(
        self,
        in_channels: int,
        skip_channels: int,
        arms: int,
        features: int,
        skip_bn: bool,
        bn_eps: float,
        bn_momentum: float,
    ) -> None:
        super().__init__()
        self.unpool = Unpool2d()
        self.unpooled_bn = nn.BatchNorm2d(arms * in_channels, eps=bn_eps, momentum=bn_momentum)
        self.reduce = ConvReLUBN2d(arms * in_channels, features, 1, bn_eps, bn_momentum)
        concat = features + arms * skip_channels
        self.skip_bn = nn.BatchNorm2d(concat, eps=bn_eps, momentum=bn_momentum) if skip_bn else None
        self.fuse = ConvReLUBN2d(concat, features, 3, bn_eps, bn_momentum)

    def forward(
        self, inputs: list[torch.Tensor], indices: list[torch.Tensor], skips: list[torch.Tensor]
    ) -> torch.Tensor:
        size = tuple(skips[0].shape[-2:])
        unpooled = [self.unpool(x, idx, size) for x, idx in zip(inputs, indices, strict=True)]
        y = self.reduce(self.unpooled_bn(torch.cat(unpooled, dim=1)))
        y = torch.cat([y, *skips], dim=1)
        if self.skip_bn is not None:
            y = self.skip_bn(y)
        return self.fuse(y)


class InfiNet(nn.Module):
    """InfiNet of seed 002 (2-D, slice-wise), one encoder arm per input channel.

    Parameters
    ----------
    variant : {"code", "paper"}
        ``"code"`` (default): the authors' public Keras model, two convolutions per encoder block,
        BN on each raw input and on the skip concatenation (731,784 trainable parameters).
        ``"paper"``: the text's one convolution per block, neither extra BN (508,292).
    in_channels : int
        Modalities, one encoder arm each (2: T1w, T2w).
    num_classes : int
        Output classes (4: background, CSF, GM, WM).
    features : int
        Width of every convolution (64 in the paper); smaller values give reduced test models.
    num_blocks : int
        Encoder blocks per arm (3); also the number of bottleneck + decoder blocks.
    bn_eps, bn_momentum
        Keras BatchNormalization defaults 1e-3 and 0.99 (PyTorch momentum 0.01).

    Input ``(N, in_channels, H, W)`` with H and W divisible by ``2 ** num_blocks`` (8); output
    logits ``(N, num_classes, H, W)`` in train and eval mode.
    """

    #: Spatial dimensions of the input slices (the inference engine runs 2-D models per view).
    dimensions = 2

    def __init__(
        self,
        variant: Variant = "code",
        in_channels: int = 2,
        num_classes: int = 4,
        features: int = 64,
        num_blocks: int = 3,
        bn_eps: float = KERAS_BN_EPS,
        bn_momentum: float = KERAS_BN_MOMENTUM,
    ) -> None:
        super().__init__()
        if variant not in ("code", "paper"):
            raise ValueError(f"unknown InfiNet variant {variant!r} (use 'code' or 'paper')")
        for name, value in (
            ("in_channels", in_channels),
            ("num_classes", num_classes),
            ("features", features),
            ("num_blocks", num_blocks),
        ):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.variant = variant
        self.in_channels = in_channels
        self.num_blocks = num_blocks
        self.size_multiple = 2**num_blocks
        code = variant == "code"
        convs = 2 if code else 1
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)

        self.input_bn = (
            nn.ModuleList(
                nn.BatchNorm2d(1, eps=bn_eps, momentum=bn_momentum) for _ in range(in_channels)
            )
            if code
            else None
        )
        self.arms = nn.ModuleList(
            nn.ModuleList(
                EncoderBlock(1 if b == 0 else features, features, convs, **bn)
                for b in range(num_blocks)
            )
            for _ in range(in_channels)
        )
        # decoders[0] is the bottleneck (deepest level), decoders[-1] restores full resolution.
        self.decoders = nn.ModuleList(
            UnpoolFusionBlock(features, features, in_channels, features, code, **bn)
            for _ in range(num_blocks)
        )
        self.classifier = nn.Conv2d(features, num_classes, 1, bias=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Keras defaults of the reference: Glorot-uniform kernels, zero biases, BN 1/0."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"InfiNet expects (N, {self.in_channels}, H, W) slices, got {tuple(x.shape)}"
            )
        m = self.size_multiple
        if x.shape[-2] % m or x.shape[-1] % m:
            raise ValueError(
                f"InfiNet needs H and W divisible by {m}, got {tuple(x.shape[-2:])}; "
                "zero-pad the slice and crop the output back"
            )
        skips: list[list[torch.Tensor]] = [[] for _ in range(self.num_blocks)]
        indices: list[list[torch.Tensor]] = [[] for _ in range(self.num_blocks)]
        deepest = []
        for a, arm in enumerate(self.arms):
            y = x[:, a : a + 1]
            if self.input_bn is not None:
                y = self.input_bn[a](y)
            for b, block in enumerate(arm):
                features, y, idx = block(y)
                skips[b].append(features)
                indices[b].append(idx)
            deepest.append(y)
        arms = len(self.arms)
        inputs = deepest
        for d, decoder in enumerate(self.decoders):
            level = self.num_blocks - 1 - d
            y = decoder(inputs, indices[level], skips[level])
            inputs = [y] * arms
        return self.classifier(y)
