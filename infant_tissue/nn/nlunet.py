"""Non-local U-Net (NLU-Net, Wang et al. 2020) of seed 000 (backbone 4).

Seed 000 §2.2(5): "five different kinds of residual blocks", 3 resolution levels, BN + ReLU6
before each 3³ convolution; a global aggregation block replaces the two convolutions of the
input residual block to form the bottom block.

Chosen reading (spec §6; the authors' TF code, divelab Non-local U-Nets ``network.py``,
``attention.py``). No convolution bias unless stated.

1. Initial conv 3³ 2→32.
2. Residual block: ``a = BN-ReLU6(x)``; shortcut = 1³ projection (stride s) of ``a``, or x;
   ``conv3³(a, stride s) → BN-ReLU6 → conv3³``; + shortcut. enc1 32 s1, enc2 64 s2, enc3 128
   s2, all projecting.
3. Bottom: ``BN-ReLU6(enc3)`` → global aggregation (2 heads; key/value/output 128; q, k, v,
   output = 1³ convolutions with bias; q × (128/2)^-0.5; softmax over all positions; dropout 0.5
   on the weights) + enc3.
4. dec2: ``a = BN-ReLU6(x)``; shortcut = deconv3³/2 (128→64) of ``a``; aggregation with 1 head,
   64 channels, whose *query* is a deconv3³/2 with bias (so the output is at the higher
   resolution) and k, v 1³ convolutions of ``a``; aggregation + shortcut + enc2; residual block
   64 (no projection).
5. dec1: deconv3³/2 (64→32) + enc1; residual block 32.
6. Output: BN-ReLU6 – dropout 0.5 – conv1³ 32→4 (bias).

TF 'same' deconvolutions (k3, s2) give 2n: here ``padding=1, output_padding=1``. The aggregation
has no fixed-size assumption (any D·H·W). BatchNorm eps 1e-5, TF momentum 0.997 (PyTorch 0.003).

MixACB: every residual-block 3³ convolution (stride-2 ones included) — the ten of the five
residual blocks enc1, enc2, enc3, dec2, dec1; every BatchNorm stays; the initial conv,
projections, deconvolutions and attention projections stay plain. Counts: 1,760,452 (baseline) /
2,448,324 (MixACB) / 1,589,060 (fused). (The spec's text says "the six residual-block 3³
convs"; its pinned counts are reproduced only with all ten — six, the encoder's alone, give
2,284,228 — so the count is followed.) He-normal initialisation.
"""

from __future__ import annotations

import torch
from torch import nn

from .backbone_parts import (
    ConvKind,
    check_conv_kind,
    check_input,
    check_positive_ints,
    check_probability,
    conv3x3,
    he_normal_init_,
    switch_mixacb_to_deploy,
)

#: TF ``batch_normalization`` settings of the reference (momentum 0.997 → PyTorch 0.003).
NLU_BN_EPS = 1e-5
NLU_BN_MOMENTUM = 0.003


class BNReLU6(nn.Sequential):
    """BatchNorm followed by ReLU6 (the pre-activation of every NLU-Net block)."""

    def __init__(self, channels: int, eps: float, momentum: float) -> None:
        super().__init__(nn.BatchNorm3d(channels, eps=eps, momentum=momentum), nn.ReLU6())


def _deconv(cin: int, cout: int, bias: bool) -> nn.ConvTranspose3d:
    """TF 'same' stride-2 kernel-3 transposed convolution: ``n → 2n``."""
    return nn.ConvTranspose3d(cin, cout, 3, stride=2, padding=1, output_padding=1, bias=bias)


class ResidualBlock(nn.Module):
    """Pre-activation residual block: ``conv3(BN-ReLU6(conv3(a, s))) + shortcut``.

    ``a = BN-ReLU6(x)``; the shortcut is a 1³ stride-``s`` projection of ``a`` when ``project``
    (needed when the width or the size changes), else ``x``.
    Input ``(N, C_in, D, H, W)``; output ``(N, C_out, D/s, H/s, W/s)``.
    """

    def __init__(self, cin: int, cout: int, stride: int, project: bool, **unit) -> None:
        super().__init__()
        if not project and (cin != cout or stride != 1):
            raise ValueError("a residual block that changes width or size needs a projection")
        eps, momentum = unit["bn_eps"], unit["bn_momentum"]
        self.pre = BNReLU6(cin, eps, momentum)
        self.shortcut = nn.Conv3d(cin, cout, 1, stride=stride, bias=False) if project else None
        self.conv1 = conv3x3(cin, cout, with_bn=False, bias=False, stride=stride, **unit)
        self.mid = BNReLU6(cout, eps, momentum)
        self.conv2 = conv3x3(cout, cout, with_bn=False, bias=False, **unit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.pre(x)
        shortcut = x if self.shortcut is None else self.shortcut(a)
        return self.conv2(self.mid(self.conv1(a))) + shortcut


class GlobalAggregation(nn.Module):
    """Multi-head global aggregation (non-local attention) over all voxel positions.

    ``q = query(x_q)``, ``k = key(x)``, ``v = value(x)`` (1³ convolutions with bias; the query
    module may be any up-sampling layer); per head, ``softmax((q · dk^-0.5) kᵀ)`` over the
    key positions, dropout on the weights, times v; heads concatenated; 1³ output convolution
    with bias. Input ``(N, C_in, D, H, W)``; output ``(N, C_out, D_q, H_q, W_q)``, the query's
    size. No fixed-size assumption.
    """

    def __init__(
        self,
        in_channels: int,
        key_channels: int,
        value_channels: int,
        out_channels: int,
        num_heads: int,
        dropout: float,
        query: nn.Module | None = None,
    ) -> None:
        super().__init__()
        check_positive_ints(num_heads=num_heads)
        if key_channels % num_heads or value_channels % num_heads:
            raise ValueError(
                f"key ({key_channels}) and value ({value_channels}) channels must be divisible "
                f"by num_heads={num_heads}"
            )
        self.num_heads = num_heads
        self.scale = (key_channels // num_heads) ** -0.5
        self.query = query if query is not None else nn.Conv3d(in_channels, key_channels, 1)
        self.key = nn.Conv3d(in_channels, key_channels, 1, bias=True)
        self.value = nn.Conv3d(in_channels, value_channels, 1, bias=True)
        self.drop = nn.Dropout(dropout)
        self.output = nn.Conv3d(value_channels, out_channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.query(x)
        k, v = self.key(x), self.value(x)
        n, h = x.shape[0], self.num_heads
        out_size = q.shape[2:]
        q = q.reshape(n, h, q.shape[1] // h, -1).transpose(2, 3) * self.scale  # (N, h, Pq, dk)
        k = k.reshape(n, h, k.shape[1] // h, -1)  # (N, h, dk, Pk)
        v = v.reshape(n, h, v.shape[1] // h, -1).transpose(2, 3)  # (N, h, Pk, dv)
        weights = self.drop(torch.softmax(q @ k, dim=-1))
        out = (weights @ v).transpose(2, 3).reshape(n, -1, *out_size)
        return self.output(out)


class NLUNet(nn.Module):
    """Non-local U-Net (depth 3) with baseline or MixACB residual-block convolutions.

    Parameters
    ----------
    conv : {"mixacb", "baseline"}
        The ten residual-block 3³ convolutions: MixACB or plain.
    deploy : bool
        Build the MixACB blocks already fused.
    in_channels, num_classes
        2 (T1w, T2w) and 4 (background, CSF, GM, WM).
    base_width
        Level-1 width (32); levels 2, 3 use 2× and 4×.
    num_heads_bottom, num_heads_up
        Heads of the bottom (2) and up-sampling (1) aggregation blocks.
    attention_dropout, output_dropout
        Dropout on the attention weights and before the classifier (0.5, 0.5).
    kernel_sizes, mix_ratio
        MixACB groups: kernels (3, 5), 3:1 channel split.
    bn_eps, bn_momentum
        1e-5 and 0.003 (TF's 0.997); also the MixACB branch BN settings.

    Input ``(N, in_channels, D, H, W)`` with D, H, W multiples of 4 (32³ in seed 000);
    output logits ``(N, num_classes, D, H, W)`` in training and eval mode.
    """

    def __init__(
        self,
        conv: ConvKind = "baseline",
        deploy: bool = False,
        in_channels: int = 2,
        num_classes: int = 4,
        base_width: int = 32,
        num_heads_bottom: int = 2,
        num_heads_up: int = 1,
        attention_dropout: float = 0.5,
        output_dropout: float = 0.5,
        kernel_sizes: tuple[int, int] = (3, 5),
        mix_ratio: tuple[int, int] = (3, 1),
        bn_eps: float = NLU_BN_EPS,
        bn_momentum: float = NLU_BN_MOMENTUM,
    ) -> None:
        super().__init__()
        check_positive_ints(
            in_channels=in_channels,
            num_classes=num_classes,
            base_width=base_width,
            num_heads_bottom=num_heads_bottom,
            num_heads_up=num_heads_up,
        )
        check_probability("attention_dropout", attention_dropout)
        check_probability("output_dropout", output_dropout)
        check_conv_kind(conv, deploy)
        self.in_channels = in_channels
        #: Input sizes must be multiples of this (two stride-2 blocks).
        self.size_multiple = 4
        self.num_classes = num_classes
        unit = dict(
            conv=conv,
            deploy=deploy,
            kernel_sizes=tuple(kernel_sizes),
            mix_ratio=tuple(mix_ratio),
            bn_eps=bn_eps,
            bn_momentum=bn_momentum,
        )
        w1, w2, w3 = base_width, 2 * base_width, 4 * base_width
        self.initial_conv = nn.Conv3d(in_channels, w1, 3, padding=1, bias=False)
        self.enc1 = ResidualBlock(w1, w1, 1, True, **unit)
        self.enc2 = ResidualBlock(w1, w2, 2, True, **unit)
        self.enc3 = ResidualBlock(w2, w3, 2, True, **unit)
        self.bottom_pre = BNReLU6(w3, bn_eps, bn_momentum)
        self.bottom_attention = GlobalAggregation(
            w3, w3, w3, w3, num_heads_bottom, attention_dropout
        )
        self.dec2_pre = BNReLU6(w3, bn_eps, bn_momentum)
        self.dec2_shortcut = _deconv(w3, w2, bias=False)
        self.dec2_attention = GlobalAggregation(
            w3, w2, w2, w2, num_heads_up, attention_dropout, query=_deconv(w3, w2, bias=True)
        )
        self.dec2_block = ResidualBlock(w2, w2, 1, False, **unit)
        self.dec1_up = _deconv(w2, w1, bias=False)
        self.dec1_block = ResidualBlock(w1, w1, 1, False, **unit)
        self.out_pre = BNReLU6(w1, bn_eps, bn_momentum)
        self.out_drop = nn.Dropout(output_dropout)
        self.classifier = nn.Conv3d(w1, num_classes, 1, bias=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal initialisation (seed 000 §2.2): every Conv3d/ConvTranspose3d weight
        ``N(0, 2/fan_in)``, zero biases, BatchNorm 1/0."""
        he_normal_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels, 4, "NLUNet")
        enc1 = self.enc1(self.initial_conv(x))
        enc2 = self.enc2(enc1)
        enc3 = self.enc3(enc2)
        y = self.bottom_attention(self.bottom_pre(enc3)) + enc3
        a = self.dec2_pre(y)
        y = self.dec2_attention(a) + self.dec2_shortcut(a) + enc2
        y = self.dec2_block(y)
        y = self.dec1_block(self.dec1_up(y) + enc1)
        return self.classifier(self.out_drop(self.out_pre(y)))

    def switch_to_deploy(self) -> None:
        """Fuse every MixACB in place (requires eval mode; idempotent)."""
        switch_mixacb_to_deploy(self)
