"""Sliding-window ensemble inference of 3D-MASNet (no nipype or pybids in here).

The default ``mode="faithful"`` reproduces the reference code's semantics exactly (32³ windows
at stride 8, the z-scored-T1w skip rule, count averaging, hard vote with ties to the lowest
label); faster modes are named and documented in :mod:`.modes` and ``docs/inference.md``.
"""

from __future__ import annotations

import importlib

# torch-free modules, imported at once; the functions ``postprocess`` and ``normalise`` must win
# over the submodules of the same name, which importing a submodule would otherwise bind here
from .modes import FAST_ALIAS, InferenceMode, parse_mode
from .postprocess import fill_holes, keep_largest_component, postprocess, relabel_small_islands
from .preprocess import normalise

#: public name -> submodule defining it, for the modules that import torch: imported on first
#: use (PEP 562), so that the command line can validate ``--inference-mode`` (:mod:`.modes`)
#: without importing torch.
_EXPORTS = {
    "resolve_device": "devices",
    "SlidingWindowInferer": "engine",
    "Predictor": "predictor",
    "SegmentationResult": "predictor",
    "segment": "api",
    "segment_with_info": "api",
    "EnsembleAccumulator": "vote",
    "majority_vote": "vote",
    "soft_vote": "vote",
    "disagreement": "vote",
    "normalised_entropy": "vote",
    "gaussian_importance": "windows",
    "pad_amounts": "windows",
    "window_grid": "windows",
    "window_starts": "windows",
    "windows_with_foreground": "windows",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "FAST_ALIAS",
    "EnsembleAccumulator",
    "InferenceMode",
    "Predictor",
    "SegmentationResult",
    "SlidingWindowInferer",
    "disagreement",
    "fill_holes",
    "gaussian_importance",
    "keep_largest_component",
    "majority_vote",
    "normalise",
    "normalised_entropy",
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
