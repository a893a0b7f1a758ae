"""Ensemble segmentation of one subject: normalise, plan windows, run members, vote.

:class:`Predictor` is the long-lived object (one network on one device; member weights are
swapped in, the next member's file is read and checksummed in a background thread while the
current one runs). The one-call :func:`~.api.segment` wraps it.
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
from .normalisation import window_transform
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
    disagreement
        float32 ``(D, H, W)``: share of the members used whose own label differs from the
        ensemble's vote (before any post-processing); ``None`` with a single member.
    entropy
        float32 ``(D, H, W)``: entropy of the mean probabilities over ``log K`` (0 certain,
        1 uniform).
    """

    labels: np.ndarray
    probabilities: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    disagreement: np.ndarray | None = None
    entropy: np.ndarray | None = None

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
        network = self.bundle.build_network()
        self.size_multiple = int(getattr(network, "size_multiple", 8))
        self.inferer: Any
        if self.bundle.dimensions == 2:  # slice networks: inference/slices.py
            from .slices import SliceInferer

            self.inferer = SliceInferer(
                network,
                self.device,
                batch_size=batch_size,
                precision=precision,
                channels_last=channels_last,
            )
        else:
            self.inferer = SlidingWindowInferer(
                network,
                self.device,
                batch_size=batch_size,
                precision=precision,
                channels_last=channels_last,
                transfer=transfer,
                window_transform=window_transform(self.bundle.normalisation_method),
            )
        self.first_stage = None
        if self.bundle.metadata.get("first_stage"):  # seed 001: FCN-1 feeds FCN-2 context maps
            from .stages import FirstStage

            self.first_stage = FirstStage(
                self.bundle,
                device=self.device,
                batch_size=batch_size,
                precision=precision,
                channels_last=channels_last,
                num_threads=num_threads,
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
        multiple = self.size_multiple
        if mode.whole:
            patch = tuple(_round_up(n, multiple) for n in sub)
            stride = patch
        elif mode.shrink:
            patch = tuple(min(p, _round_up(n, multiple)) for p, n in zip(patch, sub, strict=True))
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
        if self.bundle.dimensions == 2:
            from .slices import predict_slices

            return predict_slices(
                self, t1w, t2w, mode=mode, vote=vote, progress=progress, postprocess=postprocess
            )
        started = time.perf_counter()
        check_pair(t1w, t2w)
        parsed = parse_mode(mode) if isinstance(mode, str) else mode
        vote = check_vote(vote or str(self.bundle.metadata.get("default_vote", "hard")))
        rule = window_mask or parsed.window_mask
        if rule not in WINDOW_MASKS:
            raise ValueError(f"window_mask must be one of {', '.join(WINDOW_MASKS)}, got {rule!r}")
        members = self._members(parsed)

        t1n, t2n = normalise(t1w, "T1w"), normalise(t2w, "T2w")
        channels, stage_info = [t1n, t2n], None
        if self.first_stage is not None:
            context, stage_info = self.first_stage.context(t1w, t2w, parsed, vote)
            channels.extend(context)
        plan = self.plan(t1w, t1n, parsed, rule)
        voxels = int(np.prod(plan.patch))
        if self.device.type == "cpu" and voxels > CPU_MAX_WINDOW_VOXELS:
            raise ValueError(
                f"mode {parsed.name!r} needs windows of {'×'.join(map(str, plan.patch))} voxels "
                f"(≈{voxels * 4096 / 2**30:.0f} GB of activations at full width) on the CPU; "
                "use tile96 or a GPU"
            )
        pads = pad_amounts(tuple(s.stop - s.start for s in plan.region), plan.patch)
        image = np.stack([pad_end(c[plan.region], pads) for c in channels])
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
            labels, probs, disagreement, entropy = self._run(image, plan, members, vote, progress)
        sub = tuple(s.stop - s.start for s in plan.region)
        crop = (slice(0, sub[0]), slice(0, sub[1]), slice(0, sub[2]))
        out_labels = np.zeros(np.shape(t1w), dtype=np.uint8)
        out_probs = np.zeros((self.num_classes, *np.shape(t1w)), dtype=np.float32)
        out_labels[plan.region] = labels[crop]
        out_probs[(slice(None), *plan.region)] = probs[(slice(None), *crop)]
        out_entropy = np.zeros(np.shape(t1w), dtype=np.float32)
        out_entropy[plan.region] = entropy[crop]
        out_disagreement = None
        if disagreement is not None:
            out_disagreement = np.zeros(np.shape(t1w), dtype=np.float32)
            out_disagreement[plan.region] = disagreement[crop]
        options = self.bundle.postprocess_options  # a bundle's own clean-up (seed 001)
        if postprocess or options:
            out_labels = clean_labels(out_labels, **(options or {})).astype(np.uint8)
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
            "postprocessed": bool(postprocess or options),
            "normalisation": self.bundle.normalisation_method,
            "seconds": round(time.perf_counter() - started, 3),
        }
        if stage_info is not None:
            info["first_stage"] = stage_info
        return SegmentationResult(out_labels, out_probs, info, out_disagreement, out_entropy)

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
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
        """Labels, mean probabilities, disagreement (``None`` for one member) and entropy on
        the working grid."""
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
        return ensemble_outputs(ensemble)

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


def ensemble_outputs(
    ensemble: EnsembleAccumulator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """Labels, mean probabilities, disagreement (``None`` for a single member) and normalised
    entropy of a filled accumulator, as host arrays."""
    labels = ensemble.labels()
    disagreement = ensemble.disagreement(labels).cpu().numpy() if ensemble.members > 1 else None
    return (
        labels.cpu().numpy(),
        ensemble.probabilities().cpu().numpy(),
        disagreement,
        ensemble.entropy().cpu().numpy(),
    )


def _round_up(value: int, multiple: int) -> int:
    return -(-int(value) // multiple) * multiple
