"""Ensemble segmentation of one subject: normalise, plan windows, run members, vote.

:class:`Predictor` is the long-lived object (one network on one device; member weights are
swapped in, the next member's file is read and checksummed in a background thread while the
current one runs). :func:`segment` is the one-call API of issue 3.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..bundle import Bundle, load_bundle, load_state_dict_strict
from .devices import num_threads, resolve_device
from .engine import CPU_MAX_WINDOW_VOXELS, SlidingWindowInferer
from .modes import CROP_MARGIN, WINDOW_MASKS, InferenceMode, parse_mode
from .postprocess import postprocess as clean_labels
from .preprocess import check_pair, normalise
from .progress import Progress
from .vote import EnsembleAccumulator, check_vote
from .windows import (
    foreground_bbox,
    gaussian_importance,
    pad_amounts,
    pad_end,
    window_grid,
    windows_with_foreground,
)

LOGGER = logging.getLogger(__name__)


@dataclass
class SegmentationResult:
    """Labels, probabilities and how they were obtained (for the outputs' sidecars).

    Attributes
    ----------
    labels
        uint8 ``(D, H, W)``: 0 background, 1 CSF, 2 GM, 3 WM (the model's order).
    probabilities
        float32 ``(K, D, H, W)``: mean over the members used of each member's averaged softmax;
        0 for voxels no window covered.
    info
        JSON-ready record: mode, vote, window mask, members used, windows, device, precision,
        batch size, post-processing, seconds.
    """

    labels: np.ndarray
    probabilities: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        return str(self.info["mode"])

    @property
    def vote(self) -> str:
        return str(self.info["vote"])


@dataclass(frozen=True)
class WindowPlan:
    """Where windows go for one subject under one mode (all in the padded working volume)."""

    region: tuple[slice, slice, slice]  # cropped part of the input volume
    shape: tuple[int, int, int]  # working (cropped, then padded) shape
    patch: tuple[int, int, int]
    stride: tuple[int, int, int]
    starts: np.ndarray  # (N, 3) kept windows
    total: int  # windows on the grid before the skip rule
    window_mask: str
    weighting: str


class Predictor:
    """One network on one device that segments subjects with a bundle's members.

    Parameters
    ----------
    bundle
        A loaded :class:`~infant_tissue.bundle.Bundle` or the path of one.
    device
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    batch_size
        Windows per forward pass (``None``: chosen per device; results do not depend on it).
    precision
        ``"fp32"`` (default; strict IEEE on CUDA), ``"tf32"``, ``"bf16"``, ``"fp16"``.
    channels_last
        ``channels_last_3d`` activations (``None``: yes, faster on CPU and GPU).
    num_threads
        CPU intra-op threads while predicting (``None``: PyTorch's current setting).
    """

    def __init__(
        self,
        bundle: Bundle | str | os.PathLike[str],
        *,
        device: str | torch.device = "auto",
        batch_size: int | None = None,
        precision: str = "fp32",
        channels_last: bool | None = None,
        num_threads: int | None = None,
        transfer: str | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        modalities = list(self.bundle.metadata.get("input_modalities", []))
        if modalities != ["T1w", "T2w"]:
            raise ValueError(
                f"bundle {self.bundle.path}: expects inputs {modalities}, this engine feeds "
                "['T1w', 'T2w']"
            )
        self.num_classes = len(self.bundle.metadata["classes"])
        self.num_threads = num_threads
        self.inferer = SlidingWindowInferer(
            self.bundle.build_network(),
            self.device,
            batch_size=batch_size,
            precision=precision,
            channels_last=channels_last,
            transfer=transfer,
        )
        self._loaded: int | None = None

    # ------------------------------------------------------------------ planning
    def plan(
        self, t1w: np.ndarray, t1w_norm: np.ndarray, mode: InferenceMode, window_mask: str
    ) -> WindowPlan:
        """Crop, window size, grid and skip rule for one subject (no network involved)."""
        brain = np.asarray(t1w) > 0
        region: tuple[slice, slice, slice] = tuple(slice(0, n) for n in brain.shape)  # type: ignore[assignment]
        if mode.crop:
            region = foreground_bbox(brain, CROP_MARGIN) or region
        sub = tuple(s.stop - s.start for s in region)
        meta = self.bundle.metadata
        patch = tuple(int(p) for p in (mode.patch or meta.get("patch_size", (32, 32, 32))))
        stride = tuple(int(s) for s in (mode.stride or meta.get("stride", (8, 8, 8))))
        if mode.whole:
            patch = tuple(_round_up(n, 8) for n in sub)
            stride = patch
        elif mode.shrink:
            patch = tuple(min(p, _round_up(n, 8)) for p, n in zip(patch, sub, strict=True))
        stride = tuple(min(s, p) for s, p in zip(stride, patch, strict=True))
        shape = tuple(n + a for n, a in zip(sub, pad_amounts(sub, patch), strict=True))
        starts = window_grid(shape, patch, stride)
        if window_mask == "all":
            keep = np.ones(len(starts), dtype=bool)
        else:
            inside = t1w_norm[region] > 0 if window_mask == "normalised" else brain[region]
            keep = windows_with_foreground(pad_end(inside, pad_amounts(sub, patch)), starts, patch)
        return WindowPlan(
            region=region,
            shape=shape,  # type: ignore[arg-type]
            patch=patch,  # type: ignore[arg-type]
            stride=stride,  # type: ignore[arg-type]
            starts=starts[keep],
            total=len(starts),
            window_mask=window_mask,
            weighting=mode.weighting,
        )

    # ------------------------------------------------------------------ running
    def predict(
        self,
        t1w: np.ndarray,
        t2w: np.ndarray,
        *,
        mode: str | InferenceMode = "faithful",
        vote: str | None = None,
        window_mask: str | None = None,
        progress: bool | None = None,
        postprocess: bool = False,
    ) -> SegmentationResult:
        """Segment one subject; see :func:`segment` for the arguments."""
        started = time.perf_counter()
        check_pair(t1w, t2w)
        parsed = parse_mode(mode) if isinstance(mode, str) else mode
        vote = check_vote(vote or str(self.bundle.metadata.get("default_vote", "hard")))
        rule = window_mask or parsed.window_mask
        if rule not in WINDOW_MASKS:
            raise ValueError(f"window_mask must be one of {', '.join(WINDOW_MASKS)}, got {rule!r}")
        members = self._members(parsed)

        t1n, t2n = normalise(t1w, "T1w"), normalise(t2w, "T2w")
        plan = self.plan(t1w, t1n, parsed, rule)
        voxels = int(np.prod(plan.patch))
        if self.device.type == "cpu" and voxels > CPU_MAX_WINDOW_VOXELS:
            raise ValueError(
                f"mode {parsed.name!r} needs windows of {'×'.join(map(str, plan.patch))} voxels "
                f"(≈{voxels * 4096 / 2**30:.0f} GB of activations at full width) on the CPU; "
                "use tile96 or a GPU"
            )
        pads = pad_amounts(tuple(s.stop - s.start for s in plan.region), plan.patch)
        image = np.stack([pad_end(t1n[plan.region], pads), pad_end(t2n[plan.region], pads)])
        LOGGER.info(
            "mode %s: %d of %d windows of %s (stride %s) × %d member(s) on %s",
            parsed.name,
            len(plan.starts),
            plan.total,
            plan.patch,
            plan.stride,
            len(members),
            self.device,
        )
        with num_threads(self.num_threads):
            labels, probs = self._run(image, plan, members, vote, progress)
        sub = tuple(s.stop - s.start for s in plan.region)
        out_labels = np.zeros(np.shape(t1w), dtype=np.uint8)
        out_probs = np.zeros((self.num_classes, *np.shape(t1w)), dtype=np.float32)
        out_labels[plan.region] = labels[: sub[0], : sub[1], : sub[2]]
        out_probs[(slice(None), *plan.region)] = probs[:, : sub[0], : sub[1], : sub[2]]
        if postprocess:
            out_labels = clean_labels(out_labels).astype(np.uint8)
        info = {
            "mode": parsed.name,
            "faithful": parsed.is_faithful and rule == "normalised" and self._exact_precision,
            "vote": vote,
            "window_mask": rule,
            "weighting": plan.weighting,
            "patch_size": list(plan.patch),
            "stride": list(plan.stride),
            "windows_evaluated": int(len(plan.starts)),
            "windows_total": int(plan.total),
            "members_used": len(members),
            "members_total": len(self.bundle),
            "bundle": self.bundle.name,
            "bundle_sha256": self.bundle.sha256,
            "device": str(self.device),
            "precision": self.inferer.precision,
            "postprocessed": bool(postprocess),
            "seconds": round(time.perf_counter() - started, 3),
        }
        return SegmentationResult(out_labels, out_probs, info)

    @property
    def _exact_precision(self) -> bool:
        # TF32 only exists on CUDA; on the CPU "tf32" computes in IEEE fp32.
        precision = self.inferer.precision
        return precision == "fp32" or (precision == "tf32" and self.device.type == "cpu")

    def _members(self, mode: InferenceMode) -> list[int]:
        total = len(self.bundle)
        wanted = mode.members or total
        if wanted > total:
            LOGGER.warning(
                "mode %s asks for %d members; bundle %s has %d, using all",
                mode.name,
                wanted,
                self.bundle.name,
                total,
            )
            wanted = total
        return list(range(wanted))

    def _run(
        self,
        image: np.ndarray,
        plan: WindowPlan,
        members: Sequence[int],
        vote: str,
        progress: bool | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        device = self.device
        tensor = torch.from_numpy(np.ascontiguousarray(image))
        if device.type == "cuda":
            tensor = tensor.pin_memory().to(device, non_blocking=True)
        importance = gaussian_importance(plan.patch) if plan.weighting == "gaussian" else None
        weights = self.inferer.window_weights(plan.shape, plan.starts, plan.patch, importance)
        denominator = torch.where(weights > 0, weights, torch.ones_like(weights))
        del weights
        ensemble = EnsembleAccumulator(self.num_classes, plan.shape, device, vote)
        acc = torch.empty((self.num_classes, *plan.shape), dtype=torch.float32, device=device)
        total = len(plan.starts) * len(members)
        with (
            Progress(total, enabled=progress, description="windows × members") as bar,
            ThreadPoolExecutor(max_workers=1) as pool,
        ):
            pending = pool.submit(self._read_member, members[0]) if members else None
            for k, member in enumerate(members):
                tensors = pending.result() if pending is not None else None
                pending = (
                    pool.submit(self._read_member, members[k + 1]) if k + 1 < len(members) else None
                )
                self._load(member, tensors)
                tick = time.perf_counter()
                acc.zero_()
                self.inferer.accumulate(tensor, plan.starts, plan.patch, acc, importance, bar)
                acc.div_(denominator)
                ensemble.add(acc)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                LOGGER.debug("member %d: %.2f s", member, time.perf_counter() - tick)
        labels = ensemble.labels().cpu().numpy()
        probs = ensemble.probabilities().cpu().numpy()
        return labels, probs

    def _read_member(self, index: int) -> dict[str, torch.Tensor] | None:
        # Runs in the prefetch thread: file read + sha256 + safetensors parse overlap the
        # previous member's compute. Skipped when the member is already in the network.
        if index == self._loaded:
            return None
        return self.bundle.state_dict(index)

    def _load(self, index: int, tensors: dict[str, torch.Tensor] | None) -> None:
        if index == self._loaded:
            return
        if tensors is None:
            tensors = self.bundle.state_dict(index)
        load_state_dict_strict(self.inferer.network, tensors, source=self.bundle.member_path(index))
        self._loaded = index


def segment_with_info(
    t1w: np.ndarray,
    t2w: np.ndarray,
    bundle: Bundle | str | os.PathLike[str],
    *,
    mode: str = "faithful",
    vote: str = "hard",
    device: str = "auto",
    batch_size: int | None = None,
    progress: bool | None = None,
    window_mask: str | None = None,
    precision: str = "fp32",
    num_threads: int | None = None,
    postprocess: bool = False,
    channels_last: bool | None = None,
) -> SegmentationResult:
    """:func:`segment`, returning a :class:`SegmentationResult` that records how it was run."""
    predictor = Predictor(
        bundle,
        device=device,
        batch_size=batch_size,
        precision=precision,
        channels_last=channels_last,
        num_threads=num_threads,
    )
    return predictor.predict(
        t1w,
        t2w,
        mode=mode,
        vote=vote,
        window_mask=window_mask,
        progress=progress,
        postprocess=postprocess,
    )


def segment(
    t1w: np.ndarray,
    t2w: np.ndarray,
    bundle: Bundle | str | os.PathLike[str],
    *,
    mode: str = "faithful",
    vote: str = "hard",
    device: str = "auto",
    batch_size: int | None = None,
    progress: bool | None = None,
    **options: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Segment one subject's T1w/T2w into background, CSF, GM and WM with a bundle's ensemble.

    Parameters
    ----------
    t1w, t2w
        3-D arrays on the same 1 mm grid, skull-stripped (background 0), *not* normalised: each
        is z-scored over its voxels > 0 here, as in the reference.
    bundle
        A loaded bundle or its folder.
    mode
        ``"faithful"`` (the paper's 32³ windows at stride 8, default) or a faster mode:
        ``"stride16"``, ``"tile64"``, ``"tile96"``, ``"tile96:80"``, ``"whole"``,
        ``"members:K"``, ``"mask:brain"``, combinations joined by ``+``, or ``"fast"``
        (``stride32+mask:brain``: no window overlap, all members). Every mode is described in
        :mod:`infant_tissue.inference.modes` and ``docs/inference.md``; ``info["faithful"]``
        says whether the reference semantics were used.
    vote
        ``"hard"``: majority of members' label maps, ties to the lowest label (the reference);
        ``"soft"``: argmax of the mean probabilities.
    device
        ``"auto"`` (CUDA if visible, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    batch_size
        Windows per forward pass (``None``: automatic). Does not change results beyond float
        rounding.
    progress
        ``True``: tqdm bar over windows × members; ``False``: log lines every 10 %; ``None``: a
        bar when stderr is a terminal.
    **options
        ``window_mask`` (``"normalised"`` reference rule, ``"brain"`` raw T1w > 0, ``"all"``),
        ``precision`` (``"fp32"``, ``"tf32"``, ``"bf16"``, ``"fp16"``), ``num_threads`` (CPU
        threads), ``postprocess`` (bool), ``channels_last`` (bool).

    Returns
    -------
    labels : numpy.ndarray
        uint8 ``(D, H, W)``: 0 background, 1 CSF, 2 GM, 3 WM.
    probabilities : numpy.ndarray
        float32 ``(4, D, H, W)``, mean over members.

    Use :func:`segment_with_info` to also get the mode, vote and window counts to record.
    """
    result = segment_with_info(
        t1w,
        t2w,
        bundle,
        mode=mode,
        vote=vote,
        device=device,
        batch_size=batch_size,
        progress=progress,
        **options,
    )
    return result.labels, result.probabilities


def _round_up(value: int, multiple: int) -> int:
    return -(-int(value) // multiple) * multiple
