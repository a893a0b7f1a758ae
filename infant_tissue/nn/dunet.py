"""DU-Net (dense 3-D U-Net) of 3D-MASNet, with MixACB, fused or baseline convolutions.

Layer for layer the reference Keras model (``DUNetMixACB``), channels first: a 3×3×3 feature
convolution, four encoder dense blocks separated by transition-down blocks, three decoder levels
of transition-up + skip concatenation + dense block, and a 1×1×1 classifier. Module names mirror
the reference layer names (``dense1.denselayer0.bottle.conv0`` …) so weight import is a rename.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from .blocks import KERAS_BN_EPS, KERAS_BN_MOMENTUM, ConvBN3d, MixACB

ConvKind = Literal["mixacb", "baseline"]


class ConvUnit(nn.Module):
    """The replaceable 3×3×3 convolution of DU-Net followed by ReLU.

    ``kind="mixacb"``: a MixACB (training or deploy form); ``kind="baseline"``: the paper's plain
    3×3×3 convolution with bias + BatchNorm.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        kind: ConvKind,
        kernel_sizes: tuple[int, int],
        mix_ratio: tuple[int, int],
        bn_eps: float,
        bn_momentum: float,
        deploy: bool,
    ) -> None:
        super().__init__()
        self.conv: nn.Module
        if kind == "mixacb":
            self.conv = MixACB(
                in_channels,
                out_channels,
                stride,
                kernel_sizes,
                mix_ratio,
                bn_eps,
                bn_momentum,
                deploy=deploy,
            )
        elif kind == "baseline":
            self.conv = ConvBN3d(
                in_channels, out_channels, (3, 3, 3), stride, True, bn_eps, bn_momentum
            )
        else:
            raise ValueError(f"unknown convolution kind {kind!r} (use 'mixacb' or 'baseline')")
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x))


class Bottleneck(nn.Module):
    """1×1×1 convolution (with bias) + BatchNorm + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, bn_eps: float, bn_momentum: float):
        super().__init__()
        self.conv0 = nn.Conv3d(in_channels, out_channels, 1, bias=True)
        self.bn0 = nn.BatchNorm3d(out_channels, eps=bn_eps, momentum=bn_momentum)
        self.relu0 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu0(self.bn0(self.conv0(x)))


class DenseLayer(nn.Module):
    """Bottleneck to ``bn_size * growth`` channels, 3×3×3 unit to ``growth``, dropout, concat."""

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int, dropout: float, **unit):
        super().__init__()
        width = bn_size * growth_rate
        self.bottle = Bottleneck(in_channels, width, unit["bn_eps"], unit["bn_momentum"])
        self.aconv = ConvUnit(width, growth_rate, 1, **unit)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.drop(self.aconv(self.bottle(x)))], dim=1)


class DenseBlock(nn.Sequential):
    """``num_layers`` dense layers; adds ``num_layers * growth_rate`` channels."""

    def __init__(self, in_channels: int, num_layers: int, growth_rate: int, **layer):
        super().__init__()
        for i in range(num_layers):
            self.add_module(
                f"denselayer{i}", DenseLayer(in_channels + i * growth_rate, growth_rate, **layer)
            )
        self.out_channels = in_channels + num_layers * growth_rate


class TransitionDown(nn.Module):
    """3×3×3 unit to ``int(C * compression)`` channels, then a stride-2 unit keeping the width."""

    def __init__(self, in_channels: int, compression: float, **unit):
        super().__init__()
        out = int(in_channels * compression)
        self.conv0 = ConvUnit(in_channels, out, 1, **unit)
        self.conv1 = ConvUnit(out, out, 2, **unit)
        self.out_channels = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.conv0(x))


class KerasSameConvTranspose3d(nn.ConvTranspose3d):
    """Stride-2, kernel-3 transposed convolution with Keras ``padding='same'`` semantics.

    The full transposed convolution gives ``2n + 1`` samples per axis; TensorFlow keeps the first
    ``2n`` (its implicit padding is 0 before and 1 after). ``padding=1, output_padding=1`` would
    instead drop the *first* sample and shift the output by one voxel.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, kernel_size=3, stride=2, padding=0, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x)[..., :-1, :-1, :-1]


class TransposedConvUnit(nn.Module):
    """``KerasSameConvTranspose3d`` + BatchNorm + ReLU (the reference ``_deconv``)."""

    def __init__(self, in_channels: int, out_channels: int, bn_eps: float, bn_momentum: float):
        super().__init__()
        self.convtrans = KerasSameConvTranspose3d(in_channels, out_channels)
        self.bn = nn.BatchNorm3d(out_channels, eps=bn_eps, momentum=bn_momentum)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.convtrans(x)))


class TransitionUp(nn.Module):
    """Doubles the resolution and halves the width (``int(C * compression)``)."""

    def __init__(self, in_channels: int, compression: float, bn_eps: float, bn_momentum: float):
        super().__init__()
        self.out_channels = int(in_channels * compression)
        self.deconv = TransposedConvUnit(in_channels, self.out_channels, bn_eps, bn_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.deconv(x)


class DUNet(nn.Module):
    """Dense U-Net of 3D-MASNet.

    Parameters
    ----------
    conv : {"mixacb", "baseline"}
        The replaceable 3×3×3 convolutions: MixACB (3D-MASNet) or plain conv + BN (baseline).
    deploy : bool
        Build MixACB blocks already fused (one plain convolution per group).
    in_channels, num_classes
        2 (T1w, T2w) and 4 (background, CSF, GM, WM) in the paper.
    init_features, growth_rate, bn_size, layers_per_block, compression, dropout
        The reference widths: 32, 16, 4, 3, 0.5, 0.1.
    kernel_sizes, mix_ratio
        MixACB groups: kernels (3, 5) with a 3:1 channel split.
    bn_eps, bn_momentum
        Keras defaults 1e-3 and 0.99 (PyTorch momentum 0.01).

    Input ``(N, in_channels, D, H, W)`` with D, H, W divisible by 8; output logits
    ``(N, num_classes, D, H, W)`` — softmax is left to the caller.
    """

    #: Input sizes must be multiples of this (three 2× down-samplings).
    size_multiple = 8

    def __init__(
        self,
        conv: ConvKind = "mixacb",
        deploy: bool = False,
        in_channels: int = 2,
        num_classes: int = 4,
        init_features: int = 32,
        growth_rate: int = 16,
        bn_size: int = 4,
        layers_per_block: int = 3,
        compression: float = 0.5,
        dropout: float = 0.1,
        kernel_sizes: tuple[int, int] = (3, 5),
        mix_ratio: tuple[int, int] = (3, 1),
        bn_eps: float = KERAS_BN_EPS,
        bn_momentum: float = KERAS_BN_MOMENTUM,
    ) -> None:
        super().__init__()
        for name, value in (
            ("in_channels", in_channels),
            ("num_classes", num_classes),
            ("init_features", init_features),
            ("growth_rate", growth_rate),
            ("bn_size", bn_size),
            ("layers_per_block", layers_per_block),
        ):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0 < compression <= 1:
            raise ValueError(f"compression must be in (0, 1], got {compression}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if deploy and conv != "mixacb":
            raise ValueError("deploy=True only applies to conv='mixacb'")
        unit = dict(
            kind=conv,
            kernel_sizes=tuple(kernel_sizes),
            mix_ratio=tuple(mix_ratio),
            bn_eps=bn_eps,
            bn_momentum=bn_momentum,
            deploy=deploy,
        )
        layer = dict(bn_size=bn_size, dropout=dropout, **unit)
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)

        self.feature_conv = nn.Conv3d(in_channels, init_features, 3, padding=1, bias=True)
        self.feature_bn = nn.BatchNorm3d(init_features, eps=bn_eps, momentum=bn_momentum)
        self.feature_relu = nn.ReLU(inplace=True)

        channels = init_features
        encoder_widths = []
        for level in range(1, 5):
            block = DenseBlock(channels, layers_per_block, growth_rate, **layer)
            self.add_module(f"dense{level}", block)
            channels = block.out_channels
            encoder_widths.append(channels)
            if level < 4:
                trans = TransitionDown(channels, compression, **unit)
                self.add_module(f"trans{level}", trans)
                channels = trans.out_channels
        for level in range(5, 8):
            up = TransitionUp(channels, compression, **bn)
            self.add_module(f"trans{level - 1}", up)
            channels = encoder_widths[7 - level] + up.out_channels
            block = DenseBlock(channels, layers_per_block, growth_rate, **layer)
            self.add_module(f"dense{level}", block)
            channels = block.out_channels
        self.seg_conv = nn.Conv3d(channels, num_classes, 1, bias=False)
        self.out_channels = channels
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Keras initialisation of the reference: He-normal (truncated) for every convolution
        except the classifier, which keeps Keras' default Glorot-uniform; zero biases; BN 1/0."""
        for name, module in self.named_modules():
            if isinstance(module, (nn.Conv3d, nn.ConvTranspose3d)):
                if name == "seg_conv":
                    nn.init.xavier_uniform_(module.weight)
                else:
                    he_normal_truncated_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm3d):
                module.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.feature_relu(self.feature_bn(self.feature_conv(x)))
        dense1 = self.dense1(x)
        dense2 = self.dense2(self.trans1(dense1))
        dense3 = self.dense3(self.trans2(dense2))
        dense4 = self.dense4(self.trans3(dense3))
        dense5 = self.dense5(torch.cat([dense3, self.trans4(dense4)], dim=1))
        dense6 = self.dense6(torch.cat([dense2, self.trans5(dense5)], dim=1))
        dense7 = self.dense7(torch.cat([dense1, self.trans6(dense6)], dim=1))
        return self.seg_conv(dense7)

    def switch_to_deploy(self) -> None:
        """Fuse every MixACB in place (requires eval mode; idempotent)."""
        for module in self.modules():
            if isinstance(module, MixACB):
                module.switch_to_deploy()


def he_normal_truncated_(weight: torch.Tensor) -> torch.Tensor:
    """Keras ``he_normal``: normal with std ``sqrt(2 / fan_in)`` truncated at two std.

    Keras scales the std by 1/0.8796 so that the truncated distribution keeps that variance.
    """
    fan_in = nn.init._calculate_fan_in_and_fan_out(weight)[0]
    std = math.sqrt(2.0 / fan_in) / 0.87962566103423978
    return nn.init.trunc_normal_(weight, 0.0, std, -2 * std, 2 * std)
