"""Seed 001's second stage in training: FCN-2 learns from out-of-fold FCN-1 context maps.

``infant-tissue train --arch msfcn-context --context-from RUN [RUN ...]`` gives FCN-2 the tissue
context a first-stage network (FCN-1, ``--arch msfcn``) predicts for each subject. A network
that has seen a subject predicts it too well, and FCN-2 would learn to trust context it will not
get at test time, so each subject's maps come from a run that did **not** train on it (chosen
reading, spec §7): train FCN-1 with ``--folds K --fold k`` for every ``k`` on the same data, then
pass all K runs. The maps are :func:`~infant_tissue.inference.context.context_maps` of FCN-1's
sliding-window segmentation (its own patch size, the stride its bundle would use, its
normalisation), exactly what a two-stage bundle computes at inference
(:mod:`infant_tissue.inference.stages`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..inference.context import context_maps
from ..inference.engine import SlidingWindowInferer
from ..inference.normalisation import window_transform
from ..inference.windows import pad_amounts, pad_end, window_grid, windows_with_foreground
from .backbones import bundle_defaults
from .data import Subject
from .runs import load_run

LOGGER = logging.getLogger(__name__)


def first_stage_probabilities(
    model: torch.nn.Module,
    image: np.ndarray,
    brain: np.ndarray,
    *,
    patch: int,
    stride: int,
    normalisation: str,
    device: torch.device,
) -> np.ndarray:
    """Averaged softmax ``(K, D, H, W)`` of ``model`` over windows of ``image`` ``(C, D, H, W)``
    (already z-scored) that touch ``brain``; 0 where no window reached."""
    shape = image.shape[1:]
    pads = pad_amounts(shape, (patch,) * 3)
    padded = pad_end(image, pads)
    starts = window_grid(padded.shape[1:], (patch,) * 3, (stride,) * 3)
    starts = starts[windows_with_foreground(pad_end(brain, pads), starts, (patch,) * 3)]
    inferer = SlidingWindowInferer(
        model, device, window_transform=window_transform(normalisation), channels_last=False
    )
    tensor = torch.from_numpy(np.ascontiguousarray(padded, dtype=np.float32)).to(device)
    out = torch.zeros((4, *padded.shape[1:]), dtype=torch.float32, device=device)
    inferer.accumulate(tensor, starts, (patch,) * 3, out)
    counts = inferer.window_weights(padded.shape[1:], starts, (patch,) * 3)
    out /= torch.where(counts > 0, counts, torch.ones_like(counts))
    return out[:, : shape[0], : shape[1], : shape[2]].cpu().numpy()


def add_context(
    subjects: Mapping[str, Subject],
    runs: Sequence[str | Path],
    *,
    device: torch.device,
    clip_mm: float = 20.0,
) -> tuple[dict[str, Subject], dict[str, Any]]:
    """Subjects with three more image channels (CSF, GM, WM context maps, out of fold).

    Returns the new subjects and a provenance record (the runs, and which run predicted which
    subject). Raises ValueError when some subject was seen in training by every run, or a run
    is not a first-stage network (3-D, T1w + T2w input).
    """
    if not runs:
        raise ValueError("--context-from needs the first-stage (FCN-1) runs")
    loaded = []
    for run in runs:
        model, info = load_run(run)
        if getattr(model, "dimensions", 3) != 3 or getattr(model, "in_channels", 2) != 2:
            raise ValueError(f"{run}: not a first-stage network (3-D, inputs T1w and T2w)")
        loaded.append((Path(run).resolve(), model.to(device).eval(), info))
    used: dict[str, str] = {}
    out: dict[str, Subject] = {}
    for name, subject in subjects.items():
        candidates = [r for r in loaded if name not in (r[2].get("training_subjects") or [])]
        if not candidates:
            raise ValueError(
                f"subject {name} was seen in training by every --context-from run; train the "
                "first stage with --folds K on the same data and pass every fold's run"
            )
        run, model, info = candidates[0]
        config = info.get("config", {})
        arch = info["architecture"]["name"]
        probabilities = first_stage_probabilities(
            model,
            subject.image[:2],
            subject.brain,
            patch=int(config.get("patch_size", 64)),
            stride=int(bundle_defaults(arch).get("stride", 8)),
            normalisation=str(config.get("normalisation", "zscore-nonzero")),
            device=device,
        )
        maps = context_maps(probabilities, clip_mm=clip_mm)
        LOGGER.info("context maps of %s from %s", name, run)
        used[name] = str(run)
        out[name] = Subject(
            name, np.concatenate([subject.image[:2], maps]), subject.label, subject.brain
        )
    record = {
        "context_from": [str(r[0]) for r in loaded],
        "context_run_by_subject": used,
        "context_clip_mm": clip_mm,
    }
    return out, record
