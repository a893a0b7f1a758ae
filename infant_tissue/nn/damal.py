"""DAM-AL (seed 003): a 3-D U-Net with spatial attention on low-level and channel attention on
high-level encoder features.

Seed 003 §2.1 fixes the attention mechanisms: spatial attention (SA, eq. 1) on the two low-level
encoder levels from six convolutions in three pairs, ``F_sa = sigmoid(F1 + F2 + F3)``,
``F_L = F_sa · F_l``; an atrous block with dilations 1, 2, 3, 4 (concatenated) on the three
high-level levels, weighted by channel attention (CA, eq. 2),
``F_ca = sigmoid(FC(ReLU(FC(Pool(F_h)))))``, ``F_H = F_ca · F_h``; instance normalisation and
LeakyReLU (§3.2). Everything else is a chosen reading (``shared/specs/seed-systems.md`` §9),
pinned by its count, 8,259,882 trainable parameters with the defaults:

* Skip block: two conv3³–IN–LReLU plus a 1³ projection shortcut (with bias) when the width
  changes, added after the second activation. Convolutions with bias, affine InstanceNorm3d,
  LeakyReLU(0.01).
* Encoder widths 16/32/64/128/256, 2³ max pooling; the encoder chain runs on the *un-attended*
  skip-block outputs, the attended features feed the decoder.
* SA (levels 1–2), K = 9, pairs (1×K×K → K×1×1), (K×1×K → 1×K×1), (K×K×1 → 1×1×K); first conv
  C→C/2 + IN + LReLU, second C/2→1 without norm; the map is one channel.
* Atrous block (levels 3–5): four conv3³ branches (dilation = padding = d) to C/4 + IN + LReLU,
  concatenated to C = ``F_h``; CA: global average pool, FC C→C/4, ReLU, FC C/4→C, sigmoid.
* Decoder: transposed conv 2³/2 (bias), concat [attended encoder feature, upsampled], skip block
  2w→w, starting from the attended level 5; head 1³ conv 16→4.

The seed's conclusion swaps SA and CA; §2.1 and Fig. 1 (SA low, CA high) are followed. The authors'
code (DinhHieuHoang/DAM-CA-InfantBrain) was not available to check these readings.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_in_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int, int],
    negative_slope: float,
    dilation: int = 1,
) -> nn.Sequential:
    """Conv3d (bias, size-preserving) → affine InstanceNorm3d → LeakyReLU."""
    ks = (kernel_size,) * 3 if isinstance(kernel_size, int) else tuple(kernel_size)
    padding = tuple(dilation * (k // 2) for k in ks)
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, ks, padding=padding, dilation=dilation, bias=True),
        nn.InstanceNorm3d(out_channels, affine=True),
        nn.LeakyReLU(negative_slope, inplace=True),
    )


class SkipBlock(nn.Module):
    """Two conv3³–IN–LReLU plus a shortcut (1³ conv with bias when the width changes).

    Input ``(N, in_channels, D, H, W)``; output ``(N, out_channels, D, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_in_act(in_channels, out_channels, 3, negative_slope),
            _conv_in_act(out_channels, out_channels, 3, negative_slope),
        )
        self.shortcut = (
            nn.Conv3d(in_channels, out_channels, 1, bias=True)
            if in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


def spatial_attention_kernel_pairs(k: int) -> tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]:
    """Eq. 1's six kernel shapes in its three pairs (conv1, conv2), (conv3, conv4), (conv5, conv6):
    ``((1,K,K), (K,1,1)), ((K,1,K), (1,K,1)), ((K,K,1), (1,1,K))``."""
    return (((1, k, k), (k, 1, 1)), ((k, 1, k), (1, k, 1)), ((k, k, 1), (1, 1, k)))


class SpatialAttention(nn.Module):
    """Spatial attention of eq. 1: ``F_L = sigmoid(F1 + F2 + F3) · F_l``.

    Each pair is conv (first shape, C→C/2) + IN + LReLU, then conv (second shape, C/2→1).
    Input and output ``(N, C, D, H, W)``; :meth:`attention_map` gives ``F_sa``, ``(N, 1, D, H, W)``.
    """

    def __init__(self, channels: int, kernel_size: int = 9, negative_slope: float = 0.01) -> None:
        super().__init__()
        if channels < 2 or channels % 2:
            raise ValueError(f"spatial attention needs an even width >= 2, got {channels}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size K must be odd, got {kernel_size}")
        mid = channels // 2
        self.pairs = nn.ModuleList(
            nn.Sequential(
                _conv_in_act(channels, mid, first, negative_slope),
                nn.Conv3d(mid, 1, second, padding=tuple(k // 2 for k in second), bias=True),
            )
            for first, second in spatial_attention_kernel_pairs(kernel_size)
        )

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """``F_sa = sigmoid(F1 + F2 + F3)``, one channel."""
        return torch.sigmoid(sum(pair(x) for pair in self.pairs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention_map(x) * x


class AtrousBlock(nn.Module):
    """Parallel conv3³–IN–LReLU branches with dilations ``d`` (padding ``d``), each to
    ``C / len(dilations)`` channels, concatenated: ``(N, C, D, H, W)`` → ``(N, C, D, H, W)``."""

    def __init__(
        self, channels: int, dilations: tuple[int, ...] = (1, 2, 3, 4), negative_slope: float = 0.01
    ) -> None:
        super().__init__()
        if not dilations or any(int(d) != d or d < 1 for d in dilations):
            raise ValueError(f"dilations must be positive integers, got {dilations!r}")
        if channels % len(dilations):
            raise ValueError(f"width {channels} is not divisible by {len(dilations)} branches")
        self.dilations = tuple(dilations)
        width = channels // len(dilations)
        self.branches = nn.ModuleList(
            _conv_in_act(channels, width, 3, negative_slope, dilation=d) for d in self.dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class ChannelAttention(nn.Module):
    """Channel attention of eq. 2: ``F_H = sigmoid(FC(ReLU(FC(Pool(F_h))))) · F_h``.

    Global average pooling, FC C→C/r (bias), ReLU, FC C/r→C (bias), sigmoid. Input and output
    ``(N, C, D, H, W)``; :meth:`attention_weights` gives ``F_ca``, ``(N, C, 1, 1, 1)``.
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        if reduction < 1 or channels % reduction:
            raise ValueError(f"width {channels} is not divisible by the reduction {reduction}")
        self.fc1 = nn.Linear(channels, channels // reduction, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(channels // reduction, channels, bias=True)

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """``F_ca`` in (0, 1), broadcastable over the spatial axes."""
        pooled = x.mean(dim=(2, 3, 4))
        w = torch.sigmoid(self.fc2(self.relu(self.fc1(pooled))))
        return w[:, :, None, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention_weights(x) * x


class DAMAL(nn.Module):
    """DAM-AL network of seed 003 (3-D patches).

    Parameters
    ----------
    in_channels, num_classes
        2 (T1w, T2w) and 4 (background, CSF, GM, WM).
    base_width : int
        Width of level 1; level ``l`` has ``base_width * 2**(l-1)`` channels (16 → 16..256).
        Must be a multiple of 4 (SA halves level 1; atrous and CA quarter level 3).
    num_levels, attention_levels
        Encoder levels (5) and how many low-level ones get SA (2); the rest get atrous + CA.
    kernel_size : int
        K of the SA kernels (9, odd).
    dilations : tuple of int
        Atrous branch dilations (1, 2, 3, 4).
    ca_reduction : int
        CA bottleneck ratio (4).
    negative_slope : float
        LeakyReLU slope (0.01).

    Input ``(N, in_channels, D, H, W)`` with D, H, W divisible by ``2**(num_levels-1)`` (16) and
    more than one voxel at the deepest level (instance normalisation); output logits
    ``(N, num_classes, D, H, W)`` in train and eval mode. The seed trains on 32³ patches.
    """

    #: Spatial dimensions of the input patches.
    dimensions = 3

    def __init__(
        self,
        in_channels: int = 2,
        num_classes: int = 4,
        base_width: int = 16,
        num_levels: int = 5,
        attention_levels: int = 2,
        kernel_size: int = 9,
        dilations: tuple[int, ...] = (1, 2, 3, 4),
        ca_reduction: int = 4,
        negative_slope: float = 0.01,
    ) -> None:
        super().__init__()
        for name, value in (
            ("in_channels", in_channels),
            ("num_classes", num_classes),
            ("base_width", base_width),
            ("num_levels", num_levels),
        ):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0 <= attention_levels <= num_levels:
            raise ValueError(
                f"attention_levels must be in [0, {num_levels}], got {attention_levels}"
            )
        if negative_slope < 0:
            raise ValueError(f"negative_slope must be >= 0, got {negative_slope}")
        self.in_channels = in_channels
        self.size_multiple = 2 ** (num_levels - 1)
        widths = [base_width * 2**i for i in range(num_levels)]
        self.widths = tuple(widths)
        self.encoder = nn.ModuleList(
            SkipBlock(in_channels if i == 0 else widths[i - 1], w, negative_slope)
            for i, w in enumerate(widths)
        )
        self.pool = nn.MaxPool3d(2, stride=2)
        self.attention = nn.ModuleList(
            SpatialAttention(w, kernel_size, negative_slope)
            if i < attention_levels
            else nn.Sequential(
                AtrousBlock(w, tuple(dilations), negative_slope),
                ChannelAttention(w, ca_reduction),
            )
            for i, w in enumerate(widths)
        )
        # ups[i] / decoder[i] produce level i (0-based) from level i + 1.
        self.ups = nn.ModuleList(
            nn.ConvTranspose3d(widths[i + 1], widths[i], 2, stride=2, bias=True)
            for i in range(num_levels - 1)
        )
        self.decoder = nn.ModuleList(
            SkipBlock(2 * widths[i], widths[i], negative_slope) for i in range(num_levels - 1)
        )
        self.head = nn.Conv3d(widths[0], num_classes, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"DAM-AL expects (N, {self.in_channels}, D, H, W) patches, got {tuple(x.shape)}"
            )
        m = self.size_multiple
        spatial = tuple(x.shape[-3:])
        if any(s % m for s in spatial):
            raise ValueError(f"DAM-AL needs D, H, W divisible by {m}, got {spatial}")
        if all(s == m for s in spatial):
            raise ValueError(
                f"DAM-AL needs more than one voxel at the deepest level, got {spatial}"
            )
        attended = []
        y = x
        for i, (block, attention) in enumerate(zip(self.encoder, self.attention, strict=True)):
            if i:
                y = self.pool(y)
            y = block(y)
            attended.append(attention(y))
        y = attended[-1]
        for i in reversed(range(len(self.ups))):
            y = self.decoder[i](torch.cat([attended[i], self.ups[i](y)], dim=1))
        return self.head(y)
