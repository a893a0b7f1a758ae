"""CC-3D-FCN (Nie et al.) of seed 000 (backbone 3): six convolution groups with 1³ fusion skips.

Seed 000 §2.2(3): "6 groups of 3×3×3 convolutional layers", 2³ max pooling with stride 2 between
groups, a 1³ convolution "between two groups with the same resolution for feature fusion";
Xavier initialisation.

Chosen reading (spec §5; the first author's Caffe net, ginobilinie/infantSeg
``infant_train_test_skipunet-v1.prototxt``). Convolutions 3³ with padding 1 and bias.

- Encoder, conv–BN–ReLU: G1 conv1a 2→96, conv1b, conv1c 96→96 | pool | G2 conv2a 96→64,
  conv2b 64→64 | pool | G3 conv3a 64→64 | pool (1/8).
- Decoder: up = ``ConvTranspose3d(→32, k4, s2, p1, no bias)`` + ReLU; skip = 1³ conv (→32,
  bias) + ReLU on the **first** convolution output (after BN–ReLU) of the same-resolution group;
  concat [skip, up] = 64; decoder convolutions conv–ReLU without BN. G4 (1/4): skip conv3a; conv4
  64→32. G5 (1/2): skip conv2a; conv5 64→32, conv5_2 32→32. G6 (full): skip conv1a; conv6 64→32,
  conv6_2 32→32, conv6_3 32→4 (3³ classifier, no activation).
- Pooling is **max** 2³/2 as the seed says (the prototxt averages 3³/2); BatchNorm is affine
  (the Caffe net has no Scale layer; any PyTorch/Keras port is affine).

MixACB: every 3³ convolution except conv1a and the classifier; encoder conv+BN pairs are
replaced whole, decoder convolutions alone; 1³ skips and deconvolutions stay plain. Counts:
1,385,572 (baseline) / 2,038,852 (MixACB) / 1,220,964 (fused).

BatchNorm uses PyTorch's defaults (eps 1e-5, momentum 0.1). Initialisation: Glorot/Xavier
uniform (seed 000 §2.2) of every convolution and deconvolution weight, zero biases. (Caffe's
``xavier`` filler would be ``U(±sqrt(3/fan_in))``; the Glorot bound is the usual port.)
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
    switch_mixacb_to_deploy,
    xavier_uniform_init_,
)


class _Act(nn.Module):
    """A module followed by ReLU."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.conv = module
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x))


class CC3DFCN(nn.Module):
    """CC-3D-FCN with baseline or MixACB convolutions.

    Parameters
    ----------
    conv : {"mixacb", "baseline"}
        The replaceable 3³ convolutions (all but conv1a and the classifier).
    deploy : bool
        Build the MixACB blocks already fused.
    in_channels, num_classes
        2 (T1w, T2w) and 4 (background, CSF, GM, WM).
    widths
        Encoder group widths (G1, G2, G3) = (96, 64, 64) and the decoder width 32, given as
        ``(96, 64, 64, 32)``.
    kernel_sizes, mix_ratio
        MixACB groups: kernels (3, 5), 3:1 channel split.
    bn_eps, bn_momentum
        BatchNorm (and MixACB branch BN) settings, PyTorch defaults 1e-5, 0.1.

    Input ``(N, in_channels, D, H, W)`` with D, H, W multiples of 8 (32³ in seed 000);
    output logits ``(N, num_classes, D, H, W)`` in training and eval mode.
    """

    def __init__(
        self,
        conv: ConvKind = "baseline",
        deploy: bool = False,
        in_channels: int = 2,
        num_classes: int = 4,
        widths: tuple[int, int, int, int] = (96, 64, 64, 32),
        kernel_sizes: tuple[int, int] = (3, 5),
        mix_ratio: tuple[int, int] = (3, 1),
        bn_eps: float = TORCH_BN_EPS,
        bn_momentum: float = TORCH_BN_MOMENTUM,
    ) -> None:
        super().__init__()
        check_positive_ints(in_channels=in_channels, num_classes=num_classes)
        if len(widths) != 4:
            raise ValueError(f"widths must be (G1, G2, G3, decoder), got {widths!r}")
        check_positive_ints(**{f"widths[{i}]": w for i, w in enumerate(widths)})
        check_conv_kind(conv, deploy)
        self.in_channels = in_channels
        #: Input sizes must be multiples of this (three 2× poolings).
        self.size_multiple = 8
        self.num_classes = num_classes
        w1, w2, w3, wd = widths
        unit = dict(
            conv=conv,
            deploy=deploy,
            kernel_sizes=tuple(kernel_sizes),
            mix_ratio=tuple(mix_ratio),
            bn_eps=bn_eps,
            bn_momentum=bn_momentum,
        )
        plain = dict(unit, conv="baseline", deploy=False)

        def enc(cin: int, cout: int, **u) -> nn.Module:
            return _Act(conv3x3(cin, cout, with_bn=True, bias=True, **u))

        def dec(cin: int, cout: int) -> nn.Module:
            return _Act(conv3x3(cin, cout, with_bn=False, bias=True, **unit))

        def up(cin: int) -> nn.Module:
            return _Act(nn.ConvTranspose3d(cin, wd, 4, stride=2, padding=1, bias=False))

        def skip(cin: int) -> nn.Module:
            return _Act(nn.Conv3d(cin, wd, 1, bias=True))

        self.conv1a = enc(in_channels, w1, **plain)
        self.conv1b = enc(w1, w1, **unit)
        self.conv1c = enc(w1, w1, **unit)
        self.conv2a = enc(w1, w2, **unit)
        self.conv2b = enc(w2, w2, **unit)
        self.conv3a = enc(w2, w3, **unit)
        self.pool = nn.MaxPool3d(2, 2)
        self.up4, self.skip4 = up(w3), skip(w3)
        self.conv4 = dec(2 * wd, wd)
        self.up5, self.skip5 = up(wd), skip(w2)
        self.conv5 = dec(2 * wd, wd)
        self.conv5_2 = dec(wd, wd)
        self.up6, self.skip6 = up(wd), skip(w1)
        self.conv6 = dec(2 * wd, wd)
        self.conv6_2 = dec(wd, wd)
        # 3³ classifier: stays plain (spec §2), no activation.
        self.conv6_3 = nn.Conv3d(wd, num_classes, 3, padding=1, bias=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier/Glorot-uniform initialisation (seed 000 §2.2): every Conv3d/ConvTranspose3d
        weight ``U(-a, a)``, ``a = sqrt(6 / (fan_in + fan_out))``; zero biases; BN 1/0."""
        xavier_uniform_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels, 8, "CC3DFCN")
        c1a = self.conv1a(x)
        g1 = self.conv1c(self.conv1b(c1a))
        c2a = self.conv2a(self.pool(g1))
        g2 = self.conv2b(c2a)
        c3a = self.conv3a(self.pool(g2))
        y = torch.cat([self.skip4(c3a), self.up4(self.pool(c3a))], dim=1)
        y = self.conv4(y)
        y = torch.cat([self.skip5(c2a), self.up5(y)], dim=1)
        y = self.conv5_2(self.conv5(y))
        y = torch.cat([self.skip6(c1a), self.up6(y)], dim=1)
        y = self.conv6_2(self.conv6(y))
        return self.conv6_3(y)

    def switch_to_deploy(self) -> None:
        """Fuse every MixACB in place (requires eval mode; idempotent)."""
        switch_mixacb_to_deploy(self)
