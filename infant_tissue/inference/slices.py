"""Slice-wise inference of 2-D networks (InfiNet, MixNet), beside the 3-D window engine.

A 2-D bundle (``"dimensions": 2``) holds one network per view. Each view's network runs over
**every** slice of the 1 mm RAS+ model grid in its orientation (axial: fixed z, coronal: fixed
y, sagittal: fixed x), in batches; slices are zero-padded at their end to the network's
``size_multiple`` and the outputs cropped back. The views' softmax volumes are combined as a
weighted mean (InfiNet: the plain average of the three, seed 002 §2.2; MixNet: its weighted
fusion, 1:1:1 by default, 1:1:4 = the paper, seed 004 §2.3) into one segmentation per ensemble
member group, and the groups are combined by :class:`~.vote.EnsembleAccumulator` exactly as 3-D
members are. Training cuts its slices with the same :func:`view_slices`, so both sides agree on
in-plane orientation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._types import VIEWS
from .devices import check_batch_size, check_precision, num_threads, precision_context
from .modes import InferenceMode, parse_mode
from .postprocess import postprocess as clean_labels
from .preprocess import check_pair, normalise
from .progress import Progress
from .vote import EnsembleAccumulator, check_vote

if TYPE_CHECKING:  # pragma: no cover
    from .predictor import Predictor, SegmentationResult

LOGGER = logging.getLogger(__name__)

#: Array axis held fixed by each view on the RAS+ model grid (x = R, y = A, z = S).
VIEW_AXIS: dict[str, int] = {"sagittal": 0, "coronal": 1, "axial": 2}

#: Slice pixels per CPU batch when no batch size is given (about nine 144×192 slices).
CPU_BATCH_PIXELS = 2**18
#: Slices per batch on CUDA when no batch size is given.
CUDA_BATCH_SLICES = 32


def check_view(view: str) -> str:
    if view not in VIEW_AXIS:
        raise ValueError(f"view must be one of {', '.join(VIEWS)}, got {view!r}")
    return view


def view_slices(volume: np.ndarray | torch.Tensor, view: str):
    """``(C, X, Y, Z)`` -> the view's slices ``(S, C, h, w)`` (the fixed axis first, the other
    two in array order). Works on NumPy arrays and tensors; returns a view where possible."""
    axis = 1 + VIEW_AXIS[check_view(view)]
    if isinstance(volume, torch.Tensor):
        return volume.movedim(axis, 0)
    return np.moveaxis(volume, axis, 0)


def from_view_slices(slices: torch.Tensor, view: str) -> torch.Tensor:
    """Inverse of :func:`view_slices`: ``(S, K, h, w)`` -> ``(K, X, Y, Z)``."""
    return slices.movedim(0, 1 + VIEW_AXIS[check_view(view)])


def normalised_view_weights(views: Sequence[str], weights: Mapping[str, float]) -> dict[str, float]:
    """Each view's share of the aggregation: ``w_v / Σ w`` (1:1:4 -> 1/6, 1/6, 4/6)."""
    total = float(sum(weights[v] for v in views))
    if not total > 0:
        raise ValueError(f"view weights must be positive, got {dict(weights)}")
    return {v: float(weights[v]) / total for v in views}


class SliceInferer:
    """One 2-D network on one device that turns a volume into one view's softmax volume.

    Parameters mirror :class:`~.engine.SlidingWindowInferer` (``network``, ``precision`` are
    read by the :class:`~.predictor.Predictor` that swaps member weights in). ``batch_size`` is
    slices per forward pass (``None``: :data:`CPU_BATCH_PIXELS` worth on CPU,
    :data:`CUDA_BATCH_SLICES` on CUDA); results do not depend on it beyond float rounding.
    """

    def __init__(
        self,
        network: nn.Module,
        device: torch.device,
        *,
        batch_size: int | None = None,
        precision: str = "fp32",
        channels_last: bool | None = None,
    ) -> None:
        check_batch_size(batch_size)
        if int(getattr(network, "dimensions", 3)) != 2:
            raise ValueError(f"{type(network).__name__} is not a 2-D network")
        self.device = device
        self.precision = check_precision(precision, device)
        self.batch_size = batch_size
        self.multiple = int(getattr(network, "size_multiple", 1))
        self.channels_last = True if channels_last is None else bool(channels_last)
        network = network.to(device).eval()
        if self.channels_last:
            network = network.to(memory_format=torch.channels_last)
        self.network = network

    def batch_size_for(self, slice_shape: Sequence[int]) -> int:
        if self.batch_size is not None:
            return int(self.batch_size)
        if self.device.type == "cuda":
            return CUDA_BATCH_SLICES
        return max(1, CPU_BATCH_PIXELS // int(np.prod(slice_shape)))

    @torch.inference_mode()
    def view_probabilities(
        self, image: torch.Tensor, view: str, progress: Progress | None = None
    ) -> torch.Tensor:
        """Softmax ``(K, X, Y, Z)`` of the network run over every ``view`` slice of ``image``
        ``(C, X, Y, Z)`` (on the inferer's device)."""
        slices = view_slices(image, view)  # (S, C, h, w)
        h, w = slices.shape[-2:]
        pad_h, pad_w = -h % self.multiple, -w % self.multiple
        batch = self.batch_size_for((h + pad_h, w + pad_w))
        outputs = []
        for first in range(0, slices.shape[0], batch):
            inputs = slices[first : first + batch]
            if pad_h or pad_w:
                inputs = F.pad(inputs, (0, pad_w, 0, pad_h))
            inputs = inputs.contiguous(
                memory_format=torch.channels_last if self.channels_last else torch.contiguous_format
            )
            with precision_context(self.precision, self.device):
                logits = self.network(inputs)
            outputs.append(torch.softmax(logits.float(), dim=1)[..., :h, :w])
            if progress is not None:
                progress.update(inputs.shape[0])
        return from_view_slices(torch.cat(outputs), view).contiguous()


def predict_slices(
    predictor: Predictor,
    t1w: np.ndarray,
    t2w: np.ndarray,
    *,
    mode: str | InferenceMode = "faithful",
    vote: str | None = None,
    progress: bool | None = None,
    postprocess: bool = False,
) -> SegmentationResult:
    """:meth:`Predictor.predict` for a 2-D bundle (the Predictor dispatches here).

    Of the mode's tokens only ``members:K`` applies (the first ``K`` member groups); window
    geometry (stride, tiles, whole, masks) has no meaning for whole slices and is ignored with
    a log line.
    """
    from .predictor import SegmentationResult, ensemble_outputs

    started = time.perf_counter()
    check_pair(t1w, t2w)
    parsed = parse_mode(mode) if isinstance(mode, str) else mode
    if parsed.patch or parsed.stride or parsed.whole:
        LOGGER.info("mode %s: window geometry does not apply to slice networks", parsed.name)
    bundle = predictor.bundle
    vote = check_vote(vote or str(bundle.metadata.get("default_vote", "hard")))
    groups = bundle.member_groups()
    groups = groups[: parsed.members] if parsed.members else groups
    views = bundle.views
    shares = normalised_view_weights(views, bundle.view_weights)
    inferer: SliceInferer = predictor.inferer  # type: ignore[assignment]
    device = predictor.device
    image = torch.from_numpy(np.stack([normalise(t1w, "T1w"), normalise(t2w, "T2w")])).to(device)
    shape = tuple(np.shape(t1w))
    ensemble = EnsembleAccumulator(predictor.num_classes, shape, device, vote)
    slices_per_group = sum(shape[VIEW_AXIS[v]] for v in views)
    LOGGER.info(
        "2-D bundle: views %s (weights %s) × %d member group(s) on %s",
        views,
        [bundle.view_weights[v] for v in views],
        len(groups),
        device,
    )
    with (
        num_threads(predictor.num_threads),
        Progress(slices_per_group * len(groups), enabled=progress, description="slices") as bar,
    ):
        for group in groups:
            fused = torch.zeros((predictor.num_classes, *shape), device=device)
            for view in views:
                predictor._load(group[view], None)
                fused.add_(inferer.view_probabilities(image, view, bar), alpha=shares[view])
            ensemble.add(fused)
    labels, probabilities, disagreement, entropy = ensemble_outputs(ensemble)
    labels = labels.astype(np.uint8)
    options = bundle.postprocess_options
    if postprocess or options:
        labels = clean_labels(labels, **(options or {})).astype(np.uint8)
    info: dict[str, Any] = {
        "mode": parsed.name,
        "faithful": parsed.members is None and predictor._exact_precision,
        "vote": vote,
        "dimensions": 2,
        "views": views,
        "view_weights": [bundle.view_weights[v] for v in views],
        "slices_evaluated": slices_per_group * len(groups),
        "members_used": len(groups),
        "members_total": len(bundle.member_groups()),
        "bundle": bundle.name,
        "bundle_sha256": bundle.sha256,
        "device": str(device),
        "precision": inferer.precision,
        "postprocessed": bool(postprocess or options),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return SegmentationResult(labels, probabilities, info, disagreement, entropy)
