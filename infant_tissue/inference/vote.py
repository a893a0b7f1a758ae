"""Combining ensemble members: hard majority vote (the reference) or soft vote.

The reference (``util/prep.py: vote``) one-hot encodes each member's label map, sums and takes
the argmax, so a tie goes to the lowest label. :class:`EnsembleAccumulator` does the same
incrementally on the device, one member at a time, so only one member's probabilities exist at
once; :func:`majority_vote` and :func:`soft_vote` are the plain array versions.

The same accumulators give the ensemble's uncertainty for free (no extra network pass, no
per-member volume kept): :meth:`EnsembleAccumulator.disagreement` — the share of members whose
own label differs from the ensemble's — and :meth:`EnsembleAccumulator.entropy` — the entropy
of the mean probabilities, normalised to ``[0, 1]`` by ``log K``. :func:`disagreement` and
:func:`normalised_entropy` are the plain array versions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

VOTES: tuple[str, ...] = ("hard", "soft")


def check_vote(vote: str) -> str:
    if vote not in VOTES:
        raise ValueError(f"vote must be 'hard' (majority of label maps) or 'soft', got {vote!r}")
    return vote


def majority_vote(
    label_maps: Sequence[np.ndarray] | np.ndarray, num_classes: int = 4
) -> np.ndarray:
    """Per-voxel majority of members' label maps; ties go to the lowest label.

    Parameters
    ----------
    label_maps
        ``M`` integer label maps of one shape (a sequence or an array with members first).
    num_classes
        Labels must lie in ``0 .. num_classes - 1``.

    Returns
    -------
    numpy.ndarray
        uint8 labels of the members' shape.
    """
    maps = np.asarray(label_maps)
    if maps.ndim < 1 or maps.shape[0] == 0:
        raise ValueError("majority_vote needs at least one label map")
    if not np.issubdtype(maps.dtype, np.integer):
        raise ValueError(f"label maps must be integers, got dtype {maps.dtype}")
    if maps.min() < 0 or maps.max() >= num_classes:
        raise ValueError(f"labels must lie in 0..{num_classes - 1}")
    counts = np.stack([(maps == c).sum(axis=0) for c in range(num_classes)])
    return np.argmax(counts, axis=0).astype(np.uint8)  # argmax returns the first maximum


def soft_vote(probabilities: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Argmax of the members' mean probabilities ``(M, K, ...)``; ties go to the lowest label."""
    probs = np.asarray(probabilities)
    if probs.ndim < 2 or probs.shape[0] == 0:
        raise ValueError("soft_vote needs an array (members, classes, ...) with a member")
    return np.argmax(probs.mean(axis=0), axis=0).astype(np.uint8)


def disagreement(label_maps: Sequence[np.ndarray] | np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Share of members whose label differs from ``labels`` (the ensemble's), float32 in [0, 1].

    ``label_maps`` are the members' own label maps (members first).
    """
    maps = np.asarray(label_maps)
    if maps.ndim < 1 or maps.shape[0] == 0:
        raise ValueError("disagreement needs at least one label map")
    return (maps != np.asarray(labels)[None]).mean(axis=0).astype(np.float32)


def normalised_entropy(probabilities: np.ndarray) -> np.ndarray:
    """``-sum_k p_k log p_k / log K`` over the first axis (classes), float32 in [0, 1]; 0 where
    every probability is 0 (voxels no window covered) and ``0 log 0 = 0``."""
    p = np.asarray(probabilities, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return np.clip(-terms.sum(axis=0) / np.log(p.shape[0]), 0.0, 1.0).astype(np.float32)


def first_argmax(scores: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Argmax over ``dim`` that returns the lowest index on ties, on every device.

    ``torch.argmax`` documents the first maximum, but the rule is what the reference's outputs
    depend on, so it is made explicit: among the maxima, pick the smallest index.
    """
    best = scores.amax(dim=dim, keepdim=True)
    classes = scores.shape[dim]
    shape = [1] * scores.ndim
    shape[dim] = classes
    index = torch.arange(classes, device=scores.device).view(shape)
    candidates = torch.where(scores == best, index, classes)
    return candidates.amin(dim=dim)


class EnsembleAccumulator:
    """Combines members one at a time on the device.

    Parameters
    ----------
    num_classes
        Probability channels ``K``.
    shape
        Spatial shape ``(D, H, W)``.
    device
        Where the accumulators live.
    vote
        ``"hard"`` (majority of member label maps, ties to the lowest label) or ``"soft"``
        (argmax of the mean probability).

    Notes
    -----
    Memory: ``K`` float32 + ``K`` uint8 values per voxel — 140 MB for a 144×192×256 volume with
    4 classes. The member label counts are kept under either vote: they are the hard vote, and
    under both votes they give the disagreement map.
    """

    def __init__(self, num_classes: int, shape: Sequence[int], device: torch.device, vote: str):
        self.vote = check_vote(vote)
        self.num_classes = int(num_classes)
        self.members = 0
        self.prob_sum = torch.zeros((num_classes, *shape), dtype=torch.float32, device=device)
        self.votes = torch.zeros((num_classes, *shape), dtype=torch.uint8, device=device)

    def add(self, probabilities: torch.Tensor) -> None:
        """Add one member's probabilities ``(K, D, H, W)`` (count-0 voxels all zero)."""
        if probabilities.shape != self.prob_sum.shape:
            raise ValueError(
                f"member probabilities {tuple(probabilities.shape)} do not match "
                f"{tuple(self.prob_sum.shape)}"
            )
        if self.members >= 255:
            raise ValueError("an ensemble supports at most 255 members (uint8 label counts)")
        self.prob_sum += probabilities
        # One-hot as an elementwise comparison (no uint8 atomics needed on any device).
        labels = first_argmax(probabilities, dim=0)
        classes = torch.arange(self.num_classes, device=labels.device)
        self.votes += labels.unsqueeze(0) == classes.view(-1, *([1] * labels.ndim))
        self.members += 1

    def probabilities(self) -> torch.Tensor:
        """Mean of the members' probabilities, float32 ``(K, D, H, W)``."""
        if self.members == 0:
            raise ValueError("no member has been added")
        return self.prob_sum / self.members

    def labels(self) -> torch.Tensor:
        """uint8 labels ``(D, H, W)`` by the chosen vote."""
        if self.members == 0:
            raise ValueError("no member has been added")
        scores = self.votes if self.vote == "hard" else self.prob_sum
        return first_argmax(scores, dim=0).to(torch.uint8)

    def disagreement(self, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Share of members whose own label differs from the ensemble's, float32 ``(D, H, W)``.

        ``labels`` defaults to :meth:`labels`; 0 for voxels no window covered (every member's
        all-zero probabilities give label 0, as the ensemble's).
        """
        if self.members == 0:
            raise ValueError("no member has been added")
        labels = self.labels() if labels is None else labels
        agreeing = torch.gather(self.votes, 0, labels.long().unsqueeze(0))[0]
        return 1.0 - agreeing.float() / self.members

    def entropy(self) -> torch.Tensor:
        """Entropy of the mean probabilities divided by ``log K``, float32 ``(D, H, W)``."""
        p = self.probabilities()
        terms = torch.where(p > 0, p * torch.log(p.clamp_min(1e-30)), torch.zeros_like(p))
        return (-terms.sum(0) / math.log(self.num_classes)).clamp_(0.0, 1.0)
