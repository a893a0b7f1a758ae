"""MixNet v1 / v2 / v3 (seed 004): 2-D dilated residual networks mixing modalities three ways.

Units (seed 004 §2.1): an InitUnit (5×5 convolution + 2×2 max pooling), five DilateResUnits with
dilations (2, 1, 4, 1, 8), and an OutputUnit (pyramid pooling, 3×3 classifier, ×2 upscaling).
The versions differ in how the modalities meet (§2.2, Table 1):

* **v1** "stacked channels": one InitUnit over all channels (5×5×S) to 72, five units 72→72.
* **v2** "periodic summarization": one InitUnit per stream (24); odd levels are *summary* units on
  the concatenated streams, even levels per-stream units (own weights) on ``[summary, stream]``:
  L1 = U1(cat_s init_s); L2_s = U2_s([L1, init_s]); L3 = U3(cat_s L2_s);
  L4_s = U4_s([L3, L2_s]); L5 = U5(cat_s L4_s). Unit inputs are (72, 48, 72, 48, 72) for three
  modalities and (48, 48, 48, 48, 48) for two.
* **v3** "parallel streams": per stream an InitUnit (24) and five units 24→24.

Readings (``shared/specs/seed-systems.md`` §10), pinned by the parameter counts
(4 classes; 2 modalities: 140,332 / 57,412 / 62,404; 3 modalities: 142,132 / 77,188 / 91,876):

* InitUnit: conv with bias, no activation (the authors' TF code), then max pooling.
* DilateResUnit(c1, c2, f, d), pre-activation bottleneck: ``a = ReLU(BN(x))`` → 1×1 c1→f/2 →
  BN-ReLU → 3×3 f/2→f/2 with dilation = padding = d → BN-ReLU → 1×1 f/2→c2; plus ``x`` when
  c1 = c2, else a 1×1 projection of ``a``. No convolution bias.
* OutputUnit input = the code's ``merge`` (v1: L1..L5; v2: per stream [init, L2, L4], then
  [L1, L3, L5]; v3: per stream [init, L1..L5]), then ReLU. Pyramid pooling with 2, 4, 6, 12 bins
  per side (adaptive average pooling), each level a bias-free 1×1 conv to 24 + ReLU, bilinear back
  to the feature size; concat; 3×3 classifier with bias; bilinear ×2 to the input size.
* One unit per level (Table 1), not the later code's 3/2/3/2/3.
* BatchNorm eps 1e-5 (the code's); momentum PyTorch's 0.1 (the code's decay 0.997 would be
  0.003). Initialisation: PyTorch defaults (the code's variance scaling 0.01 is not followed).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Version = Literal["v1", "v2", "v3"]

#: Filters per version in Table 1 of seed 004.
DEFAULT_FEATURES = {"v1": 72, "v2": 24, "v3": 24}
#: Dilation of the unit at each of the five levels.
DEFAULT_DILATIONS = (2, 1, 4, 1, 8)
#: Pyramid pooling bins per side (2×2, 4×4, 6×6, 12×12).
DEFAULT_BINS = (2, 4, 6, 12)


class InitUnit(nn.Sequential):
    """5×5 convolution (bias, no activation) + 2×2 max pooling: ``(N, C, H, W)`` →
    ``(N, features, H/2, W/2)``."""

    def __init__(self, in_channels: int, features: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, features, 5, padding=2, bias=True)
        self.pool = nn.MaxPool2d(2, stride=2)


class DilateResUnit(nn.Module):
    """Pre-activation bottleneck residual unit with a dilated 3×3 middle convolution.

    ``a = ReLU(BN(x))``; residual = 1×1 (c1→f/2) → BN-ReLU → 3×3 dilated (f/2→f/2) → BN-ReLU →
    1×1 (f/2→c2); output = residual + (``x`` if c1 == c2 else 1×1 projection of ``a``).
    Input ``(N, in_channels, H, W)``; output ``(N, out_channels, H, W)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        features: int,
        dilation: int,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        if features < 2 or features % 2:
            raise ValueError(f"features must be even and >= 2, got {features}")
        if dilation < 1:
            raise ValueError(f"dilation must be >= 1, got {dilation}")
        mid = features // 2
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.bn0 = nn.BatchNorm2d(in_channels, eps=bn_eps, momentum=bn_momentum)
        self.conv1 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid, eps=bn_eps, momentum=bn_momentum)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(mid, eps=bn_eps, momentum=bn_momentum)
        self.conv3 = nn.Conv2d(mid, out_channels, 1, bias=False)
        self.shortcut = (
            nn.Conv2d(in_channels, out_channels, 1, bias=False)
            if in_channels != out_channels
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.bn0(x))
        r = F.relu(self.bn1(self.conv1(a)))
        r = F.relu(self.bn2(self.conv2(r)))
        r = self.conv3(r)
        return r + (x if self.shortcut is None else self.shortcut(a))


class OutputUnit(nn.Module):
    """ReLU → pyramid pooling → 3×3 classifier → bilinear upscaling to ``output_size``.

    Each pyramid level: adaptive average pooling to ``b × b`` bins, bias-free 1×1 conv to
    ``pyramid_features``, ReLU, bilinear back to the feature size. Input ``(N, C, h, w)``;
    output ``(N, num_classes, *output_size)``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        pyramid_features: int = 24,
        bins: tuple[int, ...] = DEFAULT_BINS,
    ) -> None:
        super().__init__()
        self.bins = tuple(bins)
        self.pyramid = nn.ModuleList(
            nn.Conv2d(in_channels, pyramid_features, 1, bias=False) for _ in self.bins
        )
        width = in_channels + len(self.bins) * pyramid_features
        self.classifier = nn.Conv2d(width, num_classes, 3, padding=1, bias=True)

    def forward(self, x: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
        x = F.relu(x)
        size = tuple(x.shape[-2:])
        levels = [x]
        for b, conv in zip(self.bins, self.pyramid, strict=True):
            y = F.relu(conv(F.adaptive_avg_pool2d(x, b)))
            levels.append(F.interpolate(y, size=size, mode="bilinear", align_corners=False))
        y = self.classifier(torch.cat(levels, dim=1))
        return F.interpolate(y, size=output_size, mode="bilinear", align_corners=False)


class MixNet(nn.Module):
    """MixNet v1, v2 or v3 of seed 004 (2-D, slice-wise).

    Parameters
    ----------
    version : {"v1", "v2", "v3"}
        Stacked channels, periodic summarization, or parallel streams.
    in_channels : int
        Modalities (2: T1w, T2w here; 3 in the paper's MRBrainS setting); one stream each in
        v2 and v3.
    num_classes : int
        Output classes (4: background, CSF, GM, WM).
    features : int, optional
        Unit width ``f`` (Table 1: 72 for v1, 24 for v2 and v3, the default when ``None``); even.
    dilations : tuple of int
        Dilation of the five levels (2, 1, 4, 1, 8).
    pyramid_features, bins
        OutputUnit pyramid width (24) and bins per side (2, 4, 6, 12).
    bn_eps, bn_momentum
        BatchNorm settings (1e-5, 0.1).

    Input ``(N, in_channels, H, W)`` with even H and W; output logits ``(N, num_classes, H, W)``
    in train and eval mode.
    """

    #: Spatial dimensions of the input slices (the inference engine runs 2-D models per view).
    dimensions = 2
    #: H and W must be multiples of this (the InitUnit's 2×2 pooling).
    size_multiple = 2

    def __init__(
        self,
        version: Version = "v1",
        in_channels: int = 2,
        num_classes: int = 4,
        features: int | None = None,
        dilations: tuple[int, ...] = DEFAULT_DILATIONS,
        pyramid_features: int = 24,
        bins: tuple[int, ...] = DEFAULT_BINS,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        if version not in DEFAULT_FEATURES:
            raise ValueError(f"unknown MixNet version {version!r} (use 'v1', 'v2' or 'v3')")
        f = DEFAULT_FEATURES[version] if features is None else features
        for name, value in (
            ("in_channels", in_channels),
            ("num_classes", num_classes),
            ("features", f),
            ("pyramid_features", pyramid_features),
        ):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if f % 2:
            raise ValueError(f"features must be even (the middle width is f/2), got {f}")
        if not dilations or any(int(d) != d or d < 1 for d in dilations):
            raise ValueError(f"dilations must be positive integers, got {dilations!r}")
        if not bins or any(int(b) != b or b < 1 for b in bins):
            raise ValueError(f"bins must be positive integers, got {bins!r}")
        self.version = version
        self.in_channels = in_channels
        self.features = f
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        streams = in_channels

        def unit(c_in: int, d: int) -> DilateResUnit:
            return DilateResUnit(c_in, f, f, d, **bn)

        if version == "v1":
            self.inits = nn.ModuleList([InitUnit(in_channels, f)])
            self.levels = nn.ModuleList(unit(f, d) for d in dilations)
            merged = len(dilations) * f
        elif version == "v2":
            self.inits = nn.ModuleList(InitUnit(1, f) for _ in range(streams))
            # Even index (L1, L3, L5): one summary unit on cat_s; odd index: one unit per stream.
            self.levels = nn.ModuleList(
                unit(streams * f, d)
                if i % 2 == 0
                else nn.ModuleList(unit(2 * f, d) for _ in range(streams))
                for i, d in enumerate(dilations)
            )
            per_stream = 1 + len(dilations) // 2
            merged = streams * per_stream * f + (len(dilations) + 1) // 2 * f
        else:
            self.inits = nn.ModuleList(InitUnit(1, f) for _ in range(streams))
            self.levels = nn.ModuleList(
                nn.ModuleList(unit(f, d) for _ in range(streams)) for d in dilations
            )
            merged = streams * (1 + len(dilations)) * f
        self.output = OutputUnit(merged, num_classes, pyramid_features, bins)

    @property
    def level_in_channels(self) -> tuple[int, ...]:
        """Input width of the unit(s) at each level (one stream's unit for per-stream levels)."""
        return tuple(
            (level[0] if isinstance(level, nn.ModuleList) else level).in_channels
            for level in self.levels
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"MixNet expects (N, {self.in_channels}, H, W) slices, got {tuple(x.shape)}"
            )
        if x.shape[-2] % 2 or x.shape[-1] % 2:
            raise ValueError(f"MixNet needs even H and W, got {tuple(x.shape[-2:])}")
        if self.version == "v1":
            y = self.inits[0](x)
            outputs = []
            for level in self.levels:
                y = level(y)
                outputs.append(y)
            merged = torch.cat(outputs, dim=1)
        elif self.version == "v2":
            streams = [init(x[:, s : s + 1]) for s, init in enumerate(self.inits)]
            per_stream = [[s] for s in streams]
            summaries = []
            for level in self.levels:
                if isinstance(level, nn.ModuleList):
                    streams = [
                        u(torch.cat([summaries[-1], s], dim=1))
                        for u, s in zip(level, streams, strict=True)
                    ]
                    for kept, s in zip(per_stream, streams, strict=True):
                        kept.append(s)
                else:
                    summaries.append(level(torch.cat(streams, dim=1)))
            merged = torch.cat([t for kept in per_stream for t in kept] + summaries, dim=1)
        else:
            per_stream = []
            for s, init in enumerate(self.inits):
                y = init(x[:, s : s + 1])
                kept = [y]
                for level in self.levels:
                    y = level[s](y)
                    kept.append(y)
                per_stream.append(kept)
            merged = torch.cat([t for kept in per_stream for t in kept], dim=1)
        return self.output(merged, tuple(x.shape[-2:]))
