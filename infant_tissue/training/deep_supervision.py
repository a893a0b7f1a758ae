"""Multi-scale deep-supervision loss of seed 001 (multi-stream 3D FCN).

Seed 001 eq. 1–3 (§3.2, §4.1)::

    L_cls = Σ_{m=0}^{M-1} α_m Σ_{(x_i, y_i) ∈ S_m} l^m(x_i, y_i | W, w_m),
    l^m   = -log p(y_i = t(x_i) | x_i; W, w_m),
    L_total = L_cls + λ (ψ(W) + Σ_m ψ(w_m)),   ψ = L2, λ = 0.005,

with M = 3 scales, α = (1.0, 0.67, 0.33), and S_m the training voxels down-sampled "by a factor
of 2^m along each dimension".

Chosen reading (spec §7): the inner sum is a **mean** cross-entropy per scale (a literal sum
would weight scale m by an extra 8^-m), and the labels of scale m are ``labels[:, ::2**m,
::2**m, ::2**m]``::

    L_cls = Σ_m α_m · mean_i CE(logits_m[i], labels[::2^m, ::2^m, ::2^m][i]).

The L2 term is **not** added here: λ = 0.005 is the optimiser's weight decay (one regulariser,
applied once).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

#: α_m of seed 001 §4.1 for the scales full, 1/2, 1/4.
DEEP_SUPERVISION_WEIGHTS = (1.0, 0.67, 0.33)


def downsample_labels(labels: torch.Tensor, scale: int) -> torch.Tensor:
    """Labels of scale ``m``: every ``2**m``-th voxel along each spatial axis of
    ``(N, D, H, W)``, starting at the first."""
    step = 2**scale
    return labels[:, ::step, ::step, ::step]


def deep_supervision_loss(
    logits: Sequence[torch.Tensor],
    labels: torch.Tensor,
    weights: Sequence[float] = DEEP_SUPERVISION_WEIGHTS,
) -> torch.Tensor:
    """α-weighted sum of the mean cross-entropy at each supervised scale.

    Parameters
    ----------
    logits
        ``[full, 1/2, 1/4]`` logits, scale m shaped ``(N, C, D_m, H_m, W_m)`` with
        ``D_m = ceil(D / 2**m)`` etc. (``MultiStreamFCN.forward_with_aux``).
    labels
        Integer labels ``(N, D, H, W)`` at full resolution.
    weights
        α_m, one per scale (1.0, 0.67, 0.33).

    Returns
    -------
    torch.Tensor
        Scalar ``Σ_m α_m · CE_mean(logits[m], labels[:, ::2^m, ::2^m, ::2^m])``.
    """
    if len(logits) != len(weights):
        raise ValueError(f"got {len(logits)} scales of logits but {len(weights)} weights")
    if not logits:
        raise ValueError("no logits given")
    if labels.dim() != 4:
        raise ValueError(f"labels must be (N, D, H, W), got shape {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor, got {labels.dtype}")
    total = logits[0].new_zeros(())
    for m, (out, alpha) in enumerate(zip(logits, weights, strict=True)):
        target = downsample_labels(labels, m)
        if out.dim() != 5 or out.shape[0] != target.shape[0] or out.shape[2:] != target.shape[1:]:
            raise ValueError(
                f"scale {m}: logits {tuple(out.shape)} do not match labels sampled every "
                f"{2**m} voxels {tuple(target.shape)}"
            )
        total = total + alpha * F.cross_entropy(out, target.long())
    return total
