"""Region and boundary losses of seeds 002 (InfiNet) and 003 (DAM-AL).

All losses take **logits** ``(N, C, *spatial)`` (softmax over ``C`` is applied here, like
:func:`infant_tissue.training.losses.cross_entropy`) and integer labels ``(N, *spatial)`` with
values in ``[0, C)``; they work for 2-D slices and 3-D patches alike. Sums over ``x`` run over
every voxel of the batch (the batch is one "volume", as in Sudre et al.).

* :func:`generalized_dice_loss`: seed 002 eq. 1 with fixed training-set weights
  (:func:`gdl_class_weights`) or Sudre's per-batch weights.
* :func:`soft_dice_loss`: Dice loss averaged over the classes.
* :func:`attention_weights` (numpy, at sampling time) and :func:`attention_loss`: seed 003
  eq. 6–7; :func:`damal_loss` = attention loss + soft Dice, 1:1.
* MixNet (seed 004) trains on the mean pixel-wise cross-entropy, which is
  :func:`infant_tissue.training.losses.cross_entropy` (re-exported here as ``mixnet_loss``).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from .losses import cross_entropy

#: MixNet's loss (seed 004 §2.2): unweighted pixel-wise cross-entropy, mean over pixels.
mixnet_loss = cross_entropy


def _probabilities_and_onehot(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    if logits.ndim < 3 or labels.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(
            f"logits (N, C, *spatial) and labels (N, *spatial) do not match: "
            f"{tuple(logits.shape)} vs {tuple(labels.shape)}"
        )
    c = logits.shape[1]
    p = torch.softmax(logits, dim=1)
    g = F.one_hot(labels.long(), c).movedim(-1, 1).to(p.dtype)
    return p, g


def _sum_all_but_class(t: torch.Tensor) -> torch.Tensor:
    return t.transpose(0, 1).reshape(t.shape[1], -1).sum(dim=1)


def gdl_class_weights(label_arrays: Iterable[np.ndarray], num_classes: int = 4) -> np.ndarray:
    """Fixed Generalized-Dice weights from training labels: ``ω_l = 1 / f_l²``.

    ``f_l`` is the fraction of all training voxels (every array, e.g. every training slice or
    volume) labelled ``l``, background included (seed 002: "inverse square of their frequencies
    in the training data"). Fractions rather than counts keep the weights in float range; GDL is
    invariant to a common scale of ω. Returns float64 ``(num_classes,)``; raises ``ValueError``
    when a class never occurs (its weight would be infinite) or a label is out of range.
    """
    counts = np.zeros(num_classes, dtype=np.int64)
    for arr in label_arrays:
        arr = np.asarray(arr)
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ValueError(f"labels must lie in [0, {num_classes}), got {arr.min()}..{arr.max()}")
        counts += np.bincount(arr.ravel().astype(np.int64), minlength=num_classes)
    if counts.sum() == 0:
        raise ValueError("no labelled voxels to compute class frequencies from")
    if (counts == 0).any():
        missing = np.flatnonzero(counts == 0).tolist()
        raise ValueError(f"classes {missing} never occur in the training labels")
    freq = counts / counts.sum()
    return 1.0 / freq**2


def generalized_dice_loss(
    logits: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Generalized Dice loss (seed 002 eq. 1, Sudre et al. 2017).

    ``GDL = 1 − 2 · Σ_l ω_l Σ_x p_l(x) g_l(x) / Σ_l ω_l Σ_x (p_l(x) + g_l(x))``

    with ``p = softmax(logits)`` and ``g`` the one-hot labels. ``class_weights`` are fixed
    ``ω_l`` (:func:`gdl_class_weights`, the chosen reading of seed 002); ``None`` computes
    Sudre's per-batch ``ω_l = 1 / (Σ_x g_l(x))²``, where a class absent from the batch gets the
    largest finite weight (MONAI's rule) instead of infinity.
    """
    p, g = _probabilities_and_onehot(logits, labels)
    if class_weights is None:
        w = 1.0 / _sum_all_but_class(g) ** 2
        inf = torch.isinf(w)
        w = torch.where(inf, torch.zeros_like(w), w)
        w = torch.where(inf, w.max(), w)
    else:
        w = torch.as_tensor(class_weights, dtype=p.dtype, device=p.device)
        if w.shape != (p.shape[1],):
            raise ValueError(f"class_weights must have shape ({p.shape[1]},), got {tuple(w.shape)}")
    intersection = (w * _sum_all_but_class(p * g)).sum()
    total = (w * _sum_all_but_class(p + g)).sum()
    return 1.0 - 2.0 * intersection / total


def soft_dice_loss(
    logits: torch.Tensor, labels: torch.Tensor, smooth: float = 1e-5
) -> torch.Tensor:
    """Soft Dice loss averaged over the ``C`` classes (seed 003's ``L_Dice``, per class).

    ``L_Dice = 1 − (1/C) Σ_c (2 Σ_x T_c P_c + s) / (Σ_x (T_c + P_c) + s)``

    with ``P = softmax(logits)``, ``T`` one-hot, ``s = smooth`` (a class absent from both target
    and prediction then scores 1 instead of 0/0; ``smooth=0`` is the formula of the seed).
    """
    p, g = _probabilities_and_onehot(logits, labels)
    dice = (2.0 * _sum_all_but_class(p * g) + smooth) / (_sum_all_but_class(p + g) + smooth)
    return 1.0 - dice.mean()


def class_surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with at least one face neighbour (6 in 3-D, ``2·ndim`` in general)
    outside it; neighbours beyond the array edge do not count."""
    mask = np.asarray(mask, dtype=bool)
    surface = np.zeros_like(mask)
    for axis in range(mask.ndim):
        n = mask.shape[axis]
        if n < 2:
            continue
        lo = [slice(None)] * mask.ndim
        hi = [slice(None)] * mask.ndim
        lo[axis], hi[axis] = slice(0, n - 1), slice(1, n)
        lo, hi = tuple(lo), tuple(hi)
        differs = mask[lo] != mask[hi]
        surface[lo] |= differs & mask[lo]
        surface[hi] |= differs & mask[hi]
    return surface


def attention_weights(
    labels: np.ndarray,
    num_classes: int = 4,
    spacing: float | tuple[float, ...] | None = None,
) -> np.ndarray:
    """Surface attention weight maps of seed 003 eq. 6, ``(num_classes, *labels.shape)`` float32.

    ``W_i^c = 1 / (min_{j ∈ T^c} d(i, j) + 1)``, ``d`` Euclidean (in voxels, or in the units of
    ``spacing``), ``T^c`` the surface of class ``c``: voxels of class ``c`` with a face neighbour
    of another class (:func:`class_surface`). ``W = 1`` on the surface, ``1/(d+1)`` elsewhere.
    A class without surface voxels (absent, or filling the array) has ``W^c = 0`` (the minimum
    over an empty set is infinite). Compute it on the whole ground truth and crop it with the
    patch, so distances are not cut at patch borders (the chosen reading).
    """
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got {labels.min()}..{labels.max()}"
        )
    out = np.zeros((num_classes, *labels.shape), dtype=np.float32)
    for c in range(num_classes):
        surface = class_surface(labels == c)
        if not surface.any():
            continue
        dist = ndimage.distance_transform_edt(~surface, sampling=spacing)
        out[c] = 1.0 / (dist + 1.0)
    return out


def attention_loss(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Hard-case attention loss of seed 003 eq. 7, summed over classes, mean over voxels.

    ``L_Att = (1/N) Σ_i Σ_c W_i^c · ( (1 − P_i^c)²  if T_i = c,  (P_i^c)²  otherwise )``

    ``P = softmax(logits)``; ``weights`` are :func:`attention_weights` maps shaped like the
    logits ``(N, C, *spatial)``; ``N`` counts every voxel of the batch.
    """
    p, g = _probabilities_and_onehot(logits, labels)
    if weights.shape != p.shape:
        raise ValueError(
            f"weights must be shaped like the logits {tuple(p.shape)}, got {tuple(weights.shape)}"
        )
    w = weights.to(dtype=p.dtype, device=p.device)
    per_class = w * (g * (1.0 - p) ** 2 + (1.0 - g) * p**2)
    return per_class.sum(dim=1).mean()


def damal_loss(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, smooth: float = 1e-5
) -> torch.Tensor:
    """DAM-AL training loss: ``L = L_Att + L_Dice`` (1:1, the chosen reading of seed 003 §2.2)."""
    return attention_loss(logits, labels, weights) + soft_dice_loss(logits, labels, smooth)
