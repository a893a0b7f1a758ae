"""Multi-stream 3D FCN with multi-scale deep supervision (seed 001).

Seed 001 §3.1–3.2: one encoder per source (T1, T2 and, for FCN-2, the tissue context maps),
fused "at the beginning of the decoder path"; "long and short skip connections"; 3³ stride-1
convolutions, 2³/2 max pools; BN + ReLU in convolution and deconvolution blocks; classifiers at
scales m = 0, 1, 2. Depth, widths and block form are only in the paper's Fig. 2.

Chosen reading (spec §7; a plain residual 3D U-Net meeting every stated fact — **not** "the
paper's network"). Convolutions and deconvolutions with bias.

- Per stream: 4 levels, widths 32/64/128/256; level = two conv3³–BN–ReLU plus a residual skip
  (a 1³ convolution when the width changes), ``y = block(x) + skip(x)``; 2³ max pooling between
  levels. Stream inputs: T1w 1 channel, T2w 1 channel, context 3 channels (CSF, GM, WM maps).
- Stream bottoms concatenated → 1³ conv–BN–ReLU → 256.
- Decoder levels 128, 64, 32: deconv 2³/2–BN–ReLU; concat with the same-level features of
  **every** stream (w + S·w); two conv3³–BN–ReLU + residual 1³ skip; 1³ classifier → 4 at each
  decoder level, giving logits at [full, 1/2, 1/4].

FCN-1 (2 streams, input T1w, T2w) has 9,983,116 and FCN-2 (3 streams, input T1w, T2w, CSF, GM,
WM context) 14,211,116 trainable parameters. BatchNorm: PyTorch defaults. Initialisation: He
normal (the paper's transfer-learned initial weights are not available).
"""

from __future__ import annotations

import torch
from torch import nn

from .backbone_parts import (
    TORCH_BN_EPS,
    TORCH_BN_MOMENTUM,
    check_input,
    check_positive_ints,
    he_normal_init_,
)


class ConvBNReLU(nn.Sequential):
    """``Conv3d(k, bias)``–BN–ReLU with 'same' padding."""

    def __init__(self, cin: int, cout: int, kernel: int, eps: float, momentum: float) -> None:
        super().__init__(
            nn.Conv3d(cin, cout, kernel, padding=kernel // 2, bias=True),
            nn.BatchNorm3d(cout, eps=eps, momentum=momentum),
            nn.ReLU(inplace=True),
        )


class ResidualLevel(nn.Module):
    """Two conv3³–BN–ReLU plus a residual skip (1³ convolution with bias if widths differ).

    Input ``(N, cin, D, H, W)``; output ``(N, cout, D, H, W)``.
    """

    def __init__(self, cin: int, cout: int, eps: float, momentum: float) -> None:
        super().__init__()
        self.block = nn.Sequential(
            ConvBNReLU(cin, cout, 3, eps, momentum), ConvBNReLU(cout, cout, 3, eps, momentum)
        )
        self.skip = nn.Conv3d(cin, cout, 1, bias=True) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) + self.skip(x)


class Stream(nn.Module):
    """One encoder: residual levels separated by 2³ max pooling; returns every level's output."""

    def __init__(self, cin: int, widths: tuple[int, ...], eps: float, momentum: float) -> None:
        super().__init__()
        ins = (cin, *widths[:-1])
        self.levels = nn.ModuleList(
            ResidualLevel(i, o, eps, momentum) for i, o in zip(ins, widths, strict=True)
        )
        self.pool = nn.MaxPool3d(2, 2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for i, level in enumerate(self.levels):
            x = level(x if i == 0 else self.pool(x))
            features.append(x)
        return features


class MultiStreamFCN(nn.Module):
    """Multi-stream residual 3D FCN with deep supervision at full, 1/2 and 1/4 resolution.

    Parameters
    ----------
    stream_channels
        Input channels of each stream, in input-channel order: ``(1, 1)`` for FCN-1 (T1w, T2w),
        ``(1, 1, 3)`` for FCN-2 (T1w, T2w, CSF/GM/WM context maps).
    num_classes
        4 (background, CSF, GM, WM).
    base_width, levels
        Level-1 width (32, doubled per level) and the number of encoder levels (4).
    bn_eps, bn_momentum
        PyTorch defaults 1e-5, 0.1.

    Input ``(N, sum(stream_channels), D, H, W)`` with D, H, W multiples of ``2**(levels-1)``
    (8); :meth:`forward` returns the full-resolution logits ``(N, num_classes, D, H, W)`` in
    training and eval mode; :meth:`forward_with_aux` returns the logits at every supervised
    scale, ``[full, 1/2, 1/4]``.
    """

    def __init__(
        self,
        stream_channels: tuple[int, ...] = (1, 1),
        num_classes: int = 4,
        base_width: int = 32,
        levels: int = 4,
        bn_eps: float = TORCH_BN_EPS,
        bn_momentum: float = TORCH_BN_MOMENTUM,
    ) -> None:
        super().__init__()
        stream_channels = tuple(stream_channels)
        if not stream_channels:
            raise ValueError("at least one stream is needed")
        check_positive_ints(**{f"stream_channels[{i}]": c for i, c in enumerate(stream_channels)})
        check_positive_ints(num_classes=num_classes, base_width=base_width, levels=levels)
        if levels < 3:
            raise ValueError(f"levels must be at least 3 (three supervised scales), got {levels}")
        self.stream_channels = stream_channels
        self.in_channels = sum(stream_channels)
        self.num_classes = num_classes
        self.levels = levels
        #: Input sizes must be multiples of this (``levels - 1`` poolings).
        self.size_multiple = 2 ** (levels - 1)
        widths = tuple(base_width * 2**i for i in range(levels))
        s = len(stream_channels)
        eps, mom = bn_eps, bn_momentum
        self.streams = nn.ModuleList(Stream(c, widths, eps, mom) for c in stream_channels)
        self.fuse = ConvBNReLU(s * widths[-1], widths[-1], 1, eps, mom)
        # Decoder level i = levels-2 … 0 (index i holds the level at scale 1/2**i).
        self.ups = nn.ModuleList(
            nn.Sequential(
                nn.ConvTranspose3d(widths[i + 1], widths[i], 2, stride=2, bias=True),
                nn.BatchNorm3d(widths[i], eps=eps, momentum=mom),
                nn.ReLU(inplace=True),
            )
            for i in range(levels - 1)
        )
        self.decoders = nn.ModuleList(
            ResidualLevel((s + 1) * widths[i], widths[i], eps, mom) for i in range(levels - 1)
        )
        #: Classifiers at scales m = 0, 1, 2 (full, 1/2, 1/4).
        self.classifiers = nn.ModuleList(
            nn.Conv3d(widths[m], num_classes, 1, bias=True) for m in range(3)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal initialisation (chosen reading; the paper transfers weights from models
        that are not available): every Conv3d/ConvTranspose3d weight ``N(0, 2/fan_in)``, zero
        biases, BatchNorm 1/0."""
        he_normal_init_(self)

    def _decode(self, x: torch.Tensor, scales: tuple[int, ...]) -> list[torch.Tensor]:
        """Run the streams and the decoder; logits at the requested scales (ascending m)."""
        check_input(x, self.in_channels, 2 ** (self.levels - 1), "MultiStreamFCN")
        inputs = torch.split(x, list(self.stream_channels), dim=1)
        features = [stream(inp) for stream, inp in zip(self.streams, inputs, strict=True)]
        y = self.fuse(torch.cat([f[-1] for f in features], dim=1))
        outputs: dict[int, torch.Tensor] = {}
        for i in range(self.levels - 2, -1, -1):
            y = self.ups[i](y)
            y = self.decoders[i](torch.cat([y, *(f[i] for f in features)], dim=1))
            if i in scales:
                outputs[i] = self.classifiers[i](y)
        return [outputs[m] for m in scales]

    def forward_with_aux(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logits at every supervised scale: ``[full, 1/2, 1/4]``, each
        ``(N, num_classes, D/2**m, H/2**m, W/2**m)`` (for the deep-supervision loss)."""
        return self._decode(x, (0, 1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Full-resolution logits ``(N, num_classes, D, H, W)`` only (for inference)."""
        return self._decode(x, (0,))[0]
