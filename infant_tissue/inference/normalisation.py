"""Per-window intensity normalisation (seed 001), shared by training and inference.

Seed 001 (§4.1) normalises every training patch "as zero mean and unit variance"; the chosen
reading applies the same to every inference window. A bundle declares it with
``normalisation.method = "zscore-nonzero+patch"``: the images are first normalised as the
reference does (:func:`~infant_tissue.inference.preprocess.normalise`), then each image channel
of each network input (window, patch or slice) is z-scored over **all** its voxels (population
standard deviation). Extra input channels (seed 001's context maps) are left as they are. The
function is the one training and inference call, so both see the same inputs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

#: Input channels that are images (T1w, T2w); channels after them (context maps) are kept.
IMAGE_CHANNELS = 2

#: Standard deviations below this count as zero (an all-background window): output 0 there.
_TINY = 1e-6


def zscore_windows(batch: torch.Tensor, channels: int = IMAGE_CHANNELS) -> torch.Tensor:
    """Z-score the first ``channels`` channels of every sample of ``batch`` ``(N, C, *spatial)``
    over their spatial voxels; a constant channel becomes 0. Returns a new tensor."""
    if batch.ndim < 3:
        raise ValueError(f"expected (N, C, *spatial), got shape {tuple(batch.shape)}")
    images = batch[:, :channels].float()
    dims = tuple(range(2, batch.ndim))
    mean = images.mean(dim=dims, keepdim=True)
    std = images.std(dim=dims, keepdim=True, unbiased=False)
    scaled = torch.where(std > _TINY, (images - mean) / std.clamp_min(_TINY), 0.0)
    return torch.cat([scaled.to(batch.dtype), batch[:, channels:]], dim=1)


def window_transform(method: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """What to apply to each network input batch under a bundle's normalisation ``method``
    (``None``: nothing beyond the whole-image z-score)."""
    if method == "zscore-nonzero":
        return None
    if method == "zscore-nonzero+patch":
        return zscore_windows
    raise ValueError(f"unknown normalisation method {method!r}")
