"""Named inference modes: the paper's faithful sliding window and faster, measured departures.

A mode string is one or more tokens joined by ``+``:

``faithful``
    The reference semantics (default): windows of the bundle's ``patch_size`` (32³) at its
    ``stride`` (8), a window evaluated only if its z-scored T1w has a voxel > 0, softmax
    outputs averaged with equal weight (sum / count), count-0 voxels get probability 0 and
    label 0, all members.
``stride<S>``
    As faithful but with stride ``S`` on every axis (``stride16``: 8× fewer windows).
``tile<N>`` or ``tile<N>:<S>``
    Tiles of ``N``³ voxels (``N`` a multiple of 8) at stride ``S`` (default ``N/2``), Gaussian
    weighting (σ = N/8, as nnU-Net), a tile evaluated if it holds any brain voxel (raw T1w > 0),
    computed on the brain's bounding box plus a margin of :data:`CROP_MARGIN` voxels (voxels
    outside it get probability 0 and label 0). An axis shorter than ``N`` uses a tile of its
    length rounded up to a multiple of 8. Far fewer network evaluations per voxel than 32³
    windows at stride 8, at the price of predictions made with more context than in training.
``whole``
    One tile covering the whole brain bounding box (plus margin). Cheapest in FLOPs, most
    memory (≈4 kB per voxel at full width in fp32 — a GPU mode).
``gaussian`` / ``constant``
    Override the window weighting of the other tokens.
``members:<K>``
    Use only the first ``K`` ensemble members (prefer an odd ``K``: with the hard vote an even
    number of members ties often, and ties go to the lowest label).
``mask:<rule>``
    Which windows are evaluated: ``mask:normalised`` (the reference rule), ``mask:brain`` (any
    raw T1w > 0), ``mask:all``.
``fast``
    Alias of :data:`FAST_ALIAS` — windows of the bundle's size without overlap (stride 32 for
    the paper's 32³; a stride is never larger than the window), every window that holds brain,
    all members. 8³ = 512 times fewer network evaluations per voxel than faithful mode in the
    interior; the CPU setting measured in ``benchmarks/README.md``.

A stride larger than the window is reduced to the window size (no gaps).

Examples: ``"faithful"``, ``"stride16"``, ``"tile96"``, ``"tile96:80+members:3"``, ``"fast"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

Weighting = Literal["constant", "gaussian"]
WindowMask = Literal["normalised", "brain", "all"]

#: Accepted ``window_mask`` values: the reference rule (z-scored T1w > 0 in the window), any
#: brain voxel (raw T1w > 0), or every window (what MONAI's sliding window does).
WINDOW_MASKS: tuple[str, ...] = ("normalised", "brain", "all")

#: Voxels kept around the brain's bounding box by the tile and whole modes.
CROP_MARGIN = 16

#: What ``mode="fast"`` stands for.
FAST_ALIAS = "stride32+mask:brain"

_TILE = re.compile(r"^tile(\d+)(?::(\d+))?$")
_STRIDE = re.compile(r"^stride(\d+)$")
_MEMBERS = re.compile(r"^members:(\d+)$")
_MASK = re.compile(r"^mask:(\w+)$")


@dataclass(frozen=True)
class InferenceMode:
    """A parsed mode; ``None`` sizes mean "the bundle's patch size / stride".

    Attributes
    ----------
    name
        The mode string as given (``fast`` expanded), recorded in outputs.
    patch, stride
        Window extent and step per axis, or ``None`` for the bundle's values.
    whole
        One window covering the (cropped) volume.
    weighting
        ``"constant"`` (plain average) or ``"gaussian"``.
    window_mask
        Which windows are evaluated (see :data:`WINDOW_MASKS`).
    members
        How many members to use (``None``: all).
    crop
        Work on the brain bounding box plus :data:`CROP_MARGIN`.
    shrink
        Shrink the window on axes shorter than it (rounded up to a multiple of 8) instead of
        zero-padding the volume up to the window.
    """

    name: str
    patch: tuple[int, int, int] | None = None
    stride: tuple[int, int, int] | None = None
    whole: bool = False
    weighting: Weighting = "constant"
    window_mask: WindowMask = "normalised"
    members: int | None = None
    crop: bool = False
    shrink: bool = False

    @property
    def is_faithful(self) -> bool:
        """True when the settings are exactly the reference's."""
        return (
            self.patch is None
            and self.stride is None
            and not self.whole
            and self.weighting == "constant"
            and self.window_mask == "normalised"
            and self.members is None
            and not self.crop
        )


def parse_mode(spec: str) -> InferenceMode:
    """Parse a mode string (see the module docstring for the grammar).

    Raises
    ------
    ValueError
        Unknown token, a tile size that is not a positive multiple of 8, a stride out of range,
        ``members:0``, or two tokens that set the same thing.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"mode must be a non-empty string, got {spec!r}")
    text = spec.strip().lower()
    tokens = [t.strip() for t in text.split("+")]
    if "fast" in tokens:
        tokens = [t for tok in tokens for t in (FAST_ALIAS.split("+") if tok == "fast" else [tok])]
    mode = InferenceMode(name="+".join(tokens))
    geometry = weighting = members = mask = None
    for token in tokens:
        if token == "faithful":
            continue
        if (m := _STRIDE.match(token)) is not None:
            geometry = _once(geometry, token, spec)
            step = int(m.group(1))
            if step < 1:
                raise ValueError(f"mode {spec!r}: stride must be at least 1")
            mode = replace(mode, stride=(step,) * 3)
        elif (m := _TILE.match(token)) is not None:
            geometry = _once(geometry, token, spec)
            size = int(m.group(1))
            if size < 8 or size % 8:
                raise ValueError(f"mode {spec!r}: tile size must be a positive multiple of 8")
            step = int(m.group(2)) if m.group(2) else size // 2
            if not 1 <= step <= size:
                raise ValueError(f"mode {spec!r}: tile stride must be in 1..{size}")
            mode = replace(
                mode,
                patch=(size,) * 3,
                stride=(step,) * 3,
                weighting="gaussian",
                window_mask="brain",
                crop=True,
                shrink=True,
            )
        elif token == "whole":
            geometry = _once(geometry, token, spec)
            mode = replace(mode, whole=True, window_mask="brain", crop=True, shrink=True)
        elif (m := _MASK.match(token)) is not None:
            mask = _once(mask, token, spec)
            if m.group(1) not in WINDOW_MASKS:
                raise ValueError(f"mode {spec!r}: mask must be one of {', '.join(WINDOW_MASKS)}")
        elif token in ("gaussian", "constant"):
            weighting = _once(weighting, token, spec)
        elif (m := _MEMBERS.match(token)) is not None:
            members = _once(members, token, spec)
            count = int(m.group(1))
            if count < 1:
                raise ValueError(f"mode {spec!r}: members:K needs K >= 1")
            mode = replace(mode, members=count)
        else:
            raise ValueError(
                f"unknown mode token {token!r} in {spec!r}; use faithful, stride<S>, tile<N>, "
                "tile<N>:<S>, whole, gaussian, constant, members:<K>, mask:<rule> or fast, "
                "joined by '+'"
            )
    if weighting is not None:
        mode = replace(mode, weighting=weighting)
    if mask is not None:
        mode = replace(mode, window_mask=mask.split(":", 1)[1])
    return mode


def _once(previous: str | None, token: str, spec: str) -> str:
    if previous is not None:
        raise ValueError(f"mode {spec!r}: {previous!r} and {token!r} both set the same option")
    return token
