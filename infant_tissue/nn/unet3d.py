"""3D-UNet of seed 000 (backbone 2): one 3³ conv–BN–ReLU per level, summed skips.

Seed 000 §2.2(2): four resolution levels, each "one 3×3×3 convolution, which is followed by BN
and a rectified linear unit"; 2³ max pooling and 2³ stride-2 transposed convolutions; same-level
features of both paths are **summed**. Not Çiçek's original (two convolutions, concatenation).

Chosen reading (spec §4; the seed is silent on widths, so Çiçek's base width): widths
32/64/128/256; encoder level = conv3³ (bias)–BN–ReLU with 2³ max pooling between levels; decoder
level = ``ConvTranspose3d(w_{l+1}→w_l, 2, 2, bias)`` (no BN/ReLU) summed with the level's encoder
output, then conv3³ (bias)–BN–ReLU; classifier 1³ 32→4 (bias). Each decoder convolution's input
width therefore equals its level's encoder width.

MixACB: the first convolution (2→32) stays plain with its BN; the other six conv+BN pairs become
MixACB (+ReLU). Counts: 2,090,084 (baseline) / 3,117,572 (MixACB) / 1,830,692 (fused).

BatchNorm uses PyTorch's defaults (eps 1e-5, momentum 0.1; the seed names no code);
He-normal initialisation (seed 000 §2.2), zero biases.
"""

from __future__ import annotations

import torch
from torch import nn

from .backbone_parts import (
    TORCH_BN_EPS,
    TORCH_BN_MOMENTUM,
    ConvKind,
    check_conv_kind,
    check_input,
    check_positive_ints,
    conv3x3,
    he_normal_init_,
    switch_mixacb_to_deploy,
)


class ConvBNReLU(nn.Module):
    """A 3³ conv–BN–ReLU unit: plain (``Conv3d`` with bias + BN) or a MixACB replacing both."""

    def __init__(self, in_channels: int, out_channels: int, **unit) -> None:
        super().__init__()
        self.conv = conv3x3(in_channels, out_channels, with_bn=True, bias=True, **unit)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x))


class UNet3D(nn.Module):
    """Seed 000's 3D-UNet with baseline or MixACB convolutions.

    Parameters
    ----------
    conv : {"mixacb", "baseline"}
        The six replaceable 3³ conv+BN pairs (all but the first): MixACB or plain.
    deploy : bool
        Build the MixACB blocks already fused.
    in_channels, num_classes
        2 (T1w, T2w) and 4 (background, CSF, GM, WM).
    base_width, levels
        Width of level 1 (doubled per level) and the number of levels: 32 and 4.
    kernel_sizes, mix_ratio
        MixACB groups: kernels (3, 5), 3:1 channel split.
    bn_eps, bn_momentum
        BatchNorm (and MixACB branch BN) settings, PyTorch defaults 1e-5, 0.1.

    Input ``(N, in_channels, D, H, W)`` with D, H, W multiples of ``2**(levels-1)`` (8);
    output logits ``(N, num_classes, D, H, W)`` in training and eval mode.
    """

    def __init__(
        self,
        conv: ConvKind = "baseline",
        deploy: bool = False,
        in_channels: int = 2,
        num_classes: int = 4,
        base_width: int = 32,
        levels: int = 4,
        kernel_sizes: tuple[int, int] = (3, 5),
        mix_ratio: tuple[int, int] = (3, 1),
        bn_eps: float = TORCH_BN_EPS,
        bn_momentum: float = TORCH_BN_MOMENTUM,
    ) -> None:
        super().__init__()
        check_positive_ints(
            in_channels=in_channels, num_classes=num_classes, base_width=base_width, levels=levels
        )
        if levels < 2:
            raise ValueError(f"levels must be at least 2, got {levels}")
        check_conv_kind(conv, deploy)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.levels = levels
        #: Input sizes must be multiples of this (``levels - 1`` poolings).
        self.size_multiple = 2 ** (levels - 1)
        unit = dict(
            conv=conv,
            deploy=deploy,
            kernel_sizes=tuple(kernel_sizes),
            mix_ratio=tuple(mix_ratio),
            bn_eps=bn_eps,
            bn_momentum=bn_momentum,
        )
        widths = [base_width * 2**i for i in range(levels)]
        self.widths = widths
        # The first convolution on the raw input stays plain (spec §2).
        first = dict(unit, conv="baseline", deploy=False)
        self.encoders = nn.ModuleList(
            ConvBNReLU(
                in_channels if i == 0 else widths[i - 1], widths[i], **(first if i == 0 else unit)
            )
            for i in range(levels)
        )
        self.pool = nn.MaxPool3d(2, 2)
        # Decoder level i (levels-2 … 0): up from widths[i+1] to widths[i], sum, conv.
        self.ups = nn.ModuleList(
            nn.ConvTranspose3d(widths[i + 1], widths[i], 2, stride=2, bias=True)
            for i in range(levels - 1)
        )
        self.decoders = nn.ModuleList(
            ConvBNReLU(widths[i], widths[i], **unit) for i in range(levels - 1)
        )
        self.classifier = nn.Conv3d(widths[0], num_classes, 1, bias=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal initialisation (seed 000 §2.2): every Conv3d/ConvTranspose3d weight
        ``N(0, 2/fan_in)``, zero biases, BatchNorm 1/0."""
        he_normal_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels, 2 ** (self.levels - 1), "UNet3D")
        skips = []
        for i, encoder in enumerate(self.encoders):
            x = encoder(x if i == 0 else self.pool(x))
            skips.append(x)
        for i in range(self.levels - 2, -1, -1):
            x = self.decoders[i](self.ups[i](x) + skips[i])
        return self.classifier(x)

    def switch_to_deploy(self) -> None:
        """Fuse every MixACB in place (requires eval mode; idempotent)."""
        switch_mixacb_to_deploy(self)
