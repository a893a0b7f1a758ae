"""Sliding-window ensemble inference of 3D-MASNet (no nipype or pybids in here).

The default ``mode="faithful"`` reproduces the reference code's semantics exactly (32³ windows
at stride 8, the z-scored-T1w skip rule, count averaging, hard vote with ties to the lowest
label); faster modes are named and documented in :mod:`.modes` and ``docs/inference.md``.
"""

from __future__ import annotations

from .devices import resolve_device
from .engine import SlidingWindowInferer
from .modes import FAST_ALIAS, InferenceMode, parse_mode
from .postprocess import fill_holes, keep_largest_component, postprocess, relabel_small_islands
from .predictor import Predictor, SegmentationResult, segment, segment_with_info
from .preprocess import normalise
from .vote import EnsembleAccumulator, majority_vote, soft_vote
from .windows import (
    gaussian_importance,
    pad_amounts,
    window_grid,
    window_starts,
    windows_with_foreground,
)

__all__ = [
    "FAST_ALIAS",
    "EnsembleAccumulator",
    "InferenceMode",
    "Predictor",
    "SegmentationResult",
    "SlidingWindowInferer",
    "fill_holes",
    "gaussian_importance",
    "keep_largest_component",
    "majority_vote",
    "normalise",
    "pad_amounts",
    "parse_mode",
    "postprocess",
    "relabel_small_islands",
    "resolve_device",
    "segment",
    "segment_with_info",
    "soft_vote",
    "window_grid",
    "window_starts",
    "windows_with_foreground",
]
