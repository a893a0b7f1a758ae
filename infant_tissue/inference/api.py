"""The one-call API: segment one subject's T1w/T2w with a bundle (issue 3).

A thin layer over :class:`~.predictor.Predictor` for scripts and notebooks; the BIDS-App and
the benchmarks keep a :class:`~.predictor.Predictor` alive instead, to reuse the loaded network.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..bundle import Bundle
from .predictor import Predictor, SegmentationResult


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
