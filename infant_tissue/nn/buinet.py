"""BuiNet (3D-SkipDenseSeg, Bui et al.): seed 000's first candidate backbone, baseline or MixACB.

Chosen reading (spec §3), layer for layer the authors' PyTorch model (tbuikr/3D-SkipDenseSeg
``segmentor_v1.py``), confirmed by seed 002's "1.55 million" parameters:

1. Stem: conv0 3³ 2→32, BN, ReLU; conv1 3³ 32→32, BN, ReLU; conv2 3³ 32→32 = F0 (kept for
   the head); BN, ReLU, ``conv_pool_first`` 2³/2 32→32. No conv bias.
2. Four dense blocks of four pre-activation layers (BN–ReLU–Conv1³→64–BN–ReLU–Conv3³→16–
   dropout 0.2), widths 32→96, 48→112, 56→120, 60→124.
3. After dense block i, a grouped ``ConvTranspose3d(C_i→4, k=2^(i+1)+2, s=2^(i+1), p=1,
   groups=4)`` back to full resolution.
4. Three transitions BN–ReLU–Conv1³(C→C//2)–BN–ReLU–Conv2³/2 (with bias).
5. Head: concat[up0..up3, F0] (48) → BN–ReLU–Conv1³(48→4, bias).

MixACB (spec §3): stem conv1, conv2 and the sixteen dense-layer 3³ convolutions become MixACB;
the design is pre-activation so every BatchNorm stays (the stem BN between conv1 and conv2
included). Counts: 1,552,256 (baseline) / 1,847,424 (MixACB training) / 1,478,848 (fused).

BatchNorm uses PyTorch's defaults (eps 1e-5, momentum 0.1), as the reference code; He-normal
initialisation (seed 000 §2.2) of every convolution, zero biases.
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
    check_probability,
    conv3x3,
    he_normal_init_,
    switch_mixacb_to_deploy,
)


class BuiDenseLayer(nn.Module):
    """BN–ReLU–Conv1³(→bn_size·growth)–BN–ReLU–Conv3³(→growth)–dropout, concatenated after x.

    Input ``(N, C, D, H, W)``; output ``(N, C + growth, D, H, W)``.
    """

    def __init__(
        self, in_channels: int, growth_rate: int, bn_size: int, dropout: float, **conv
    ) -> None:
        super().__init__()
        width = bn_size * growth_rate
        eps, momentum = conv["bn_eps"], conv["bn_momentum"]
        self.norm1 = nn.BatchNorm3d(in_channels, eps=eps, momentum=momentum)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv3d(in_channels, width, 1, bias=False)
        self.norm2 = nn.BatchNorm3d(width, eps=eps, momentum=momentum)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(width, growth_rate, with_bn=False, bias=False, **conv)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(self.relu1(self.norm1(x)))
        y = self.drop(self.conv2(self.relu2(self.norm2(y))))
        return torch.cat([x, y], dim=1)


class BuiTransition(nn.Module):
    """BN–ReLU–Conv1³(C→C//2)–BN–ReLU–Conv2³ stride 2 (with bias): halves width and size."""

    def __init__(self, in_channels: int, bn_eps: float, bn_momentum: float) -> None:
        super().__init__()
        out = in_channels // 2
        self.norm = nn.BatchNorm3d(in_channels, eps=bn_eps, momentum=bn_momentum)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv3d(in_channels, out, 1, bias=False)
        self.pool_norm = nn.BatchNorm3d(out, eps=bn_eps, momentum=bn_momentum)
        self.pool_relu = nn.ReLU(inplace=True)
        self.pool = nn.Conv3d(out, out, 2, stride=2, bias=True)
        self.out_channels = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.relu(self.norm(x)))
        return self.pool(self.pool_relu(self.pool_norm(x)))


class BuiNet(nn.Module):
    """BuiNet / 3D-SkipDenseSeg with baseline or MixACB 3×3×3 convolutions.

    Parameters
    ----------
    conv : {"mixacb", "baseline"}
        Replaceable 3×3×3 convolutions (stem conv1, conv2, dense-layer convs): MixACB or plain.
    deploy : bool
        Build the MixACB blocks already fused (one biased plain convolution per group).
    in_channels, num_classes
        2 (T1w, T2w) and 4 (background, CSF, GM, WM).
    init_features, growth_rate, bn_size, block_config, dropout
        Reference widths 32, 16, 4, (4, 4, 4, 4), 0.2. ``num_classes`` must divide every
        dense-block output width (grouped up-sampling), and there must be 4 dense blocks.
    kernel_sizes, mix_ratio
        MixACB groups: kernels (3, 5), 3:1 channel split.
    bn_eps, bn_momentum
        PyTorch defaults 1e-5, 0.1 (the reference code), also used by the MixACB branch BNs.

    Input ``(N, in_channels, D, H, W)`` with D, H, W multiples of 16 (64³ in seed 000);
    output logits ``(N, num_classes, D, H, W)`` in training and eval mode.
    """

    def __init__(
        self,
        conv: ConvKind = "baseline",
        deploy: bool = False,
        in_channels: int = 2,
        num_classes: int = 4,
        init_features: int = 32,
        growth_rate: int = 16,
        bn_size: int = 4,
        block_config: tuple[int, ...] = (4, 4, 4, 4),
        dropout: float = 0.2,
        kernel_sizes: tuple[int, int] = (3, 5),
        mix_ratio: tuple[int, int] = (3, 1),
        bn_eps: float = TORCH_BN_EPS,
        bn_momentum: float = TORCH_BN_MOMENTUM,
    ) -> None:
        super().__init__()
        check_positive_ints(
            in_channels=in_channels,
            num_classes=num_classes,
            init_features=init_features,
            growth_rate=growth_rate,
            bn_size=bn_size,
        )
        check_probability("dropout", dropout)
        check_conv_kind(conv, deploy)
        if len(block_config) != 4:
            raise ValueError(f"BuiNet has four dense blocks, got block_config={block_config!r}")
        check_positive_ints(**{f"block_config[{i}]": n for i, n in enumerate(block_config)})
        self.in_channels = in_channels
        #: Input sizes must be multiples of this (four 2× down-samplings).
        self.size_multiple = 16
        self.num_classes = num_classes
        unit = dict(
            conv=conv,
            deploy=deploy,
            kernel_sizes=tuple(kernel_sizes),
            mix_ratio=tuple(mix_ratio),
            bn_eps=bn_eps,
            bn_momentum=bn_momentum,
        )
        bn = dict(eps=bn_eps, momentum=bn_momentum)
        f = init_features
        # Stem: the first convolution on the raw input stays plain (spec §2).
        self.conv0 = nn.Conv3d(in_channels, f, 3, padding=1, bias=False)
        self.norm0 = nn.BatchNorm3d(f, **bn)
        self.relu0 = nn.ReLU(inplace=True)
        self.conv1 = conv3x3(f, f, with_bn=False, bias=False, **unit)
        self.norm1 = nn.BatchNorm3d(f, **bn)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(f, f, with_bn=False, bias=False, **unit)
        self.norm2 = nn.BatchNorm3d(f, **bn)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv_pool_first = nn.Conv3d(f, f, 2, stride=2, bias=False)

        self.dense_blocks = nn.ModuleList()
        self.transit_blocks = nn.ModuleList()
        self.upsampling_blocks = nn.ModuleList()
        channels = f
        self.block_widths: list[int] = []
        for i, num_layers in enumerate(block_config):
            block = nn.Sequential(
                *(
                    BuiDenseLayer(channels + j * growth_rate, growth_rate, bn_size, dropout, **unit)
                    for j in range(num_layers)
                )
            )
            self.dense_blocks.append(block)
            channels += num_layers * growth_rate
            self.block_widths.append(channels)
            if channels % num_classes:
                raise ValueError(
                    f"dense block {i} width {channels} is not divisible by num_classes="
                    f"{num_classes} (grouped up-sampling)"
                )
            scale = 2 ** (i + 1)
            self.upsampling_blocks.append(
                nn.ConvTranspose3d(
                    channels,
                    num_classes,
                    kernel_size=scale + 2,
                    stride=scale,
                    padding=1,
                    groups=num_classes,
                    bias=False,
                )
            )
            if i < len(block_config) - 1:
                trans = BuiTransition(channels, bn_eps, bn_momentum)
                self.transit_blocks.append(trans)
                channels = trans.out_channels
        head = num_classes * len(block_config) + f
        self.bn_class = nn.BatchNorm3d(head, **bn)
        self.relu_class = nn.ReLU(inplace=True)
        self.conv_class = nn.Conv3d(head, num_classes, 1, bias=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal initialisation (seed 000 §2.2): every Conv3d/ConvTranspose3d weight
        ``N(0, 2/fan_in)``, zero biases, BatchNorm 1/0."""
        he_normal_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels, 16, "BuiNet")
        x = self.relu1(self.norm1(self.conv1(self.relu0(self.norm0(self.conv0(x))))))
        first = self.conv2(x)
        out = self.conv_pool_first(self.relu2(self.norm2(first)))
        ups = []
        for i, block in enumerate(self.dense_blocks):
            out = block(out)
            ups.append(self.upsampling_blocks[i](out))
            if i < len(self.transit_blocks):
                out = self.transit_blocks[i](out)
        out = torch.cat([*ups, first], dim=1)
        return self.conv_class(self.relu_class(self.bn_class(out)))

    def switch_to_deploy(self) -> None:
        """Fuse every MixACB in place (requires eval mode; idempotent)."""
        switch_mixacb_to_deploy(self)
