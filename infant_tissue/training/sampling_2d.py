"""Random training slices of one view for the 2-D networks (InfiNet, MixNet).

Both papers train on whole slices of one orientation (seed 002 §2.2, seed 004 §2.3), one
network per view. Slices are cut with the inference engine's own
:func:`~infant_tissue.inference.slices.view_slices`, so in-plane orientation is the same on both
sides, and zero-padded at their end to one shape: the largest in-plane size of the training
subjects rounded up to the network's ``size_multiple``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..inference.slices import view_slices
from .data import Subject


def _round_up(value: int, multiple: int) -> int:
    return -(-int(value) // multiple) * multiple


class SliceSampler:
    """Draws ``(image, label)`` slices of ``view`` with a seeded NumPy generator.

    A draw picks uniformly among the (subject, slice) pairs whose slice holds brain (the 2-D
    form of the reference's rule that a patch must touch the brain). ``augment`` adds a random
    flip along each in-plane axis (the papers' own augmentations are not implemented).

    Parameters
    ----------
    subjects
        Normalised training subjects.
    view
        ``axial``, ``coronal`` or ``sagittal``.
    multiple
        The network's ``size_multiple``: slices are padded to a multiple of it.
    rng
        The run's generator (its state is checkpointed).
    """

    def __init__(
        self,
        subjects: Sequence[Subject],
        view: str,
        multiple: int,
        rng: np.random.Generator,
        augment: bool = False,
    ) -> None:
        if not subjects:
            raise ValueError("no training subjects")
        self.rng = rng
        self.augment = augment
        self.images = [view_slices(s.image, view) for s in subjects]  # (S, C, h, w) views
        self.labels = [view_slices(s.label[None], view)[:, 0] for s in subjects]
        brains = [view_slices(s.brain[None], view)[:, 0] for s in subjects]
        self.shape = tuple(
            _round_up(max(im.shape[axis] for im in self.images), multiple) for axis in (2, 3)
        )
        self.index = np.array(
            [(i, k) for i, b in enumerate(brains) for k in np.flatnonzero(b.any(axis=(1, 2)))],
            dtype=np.int64,
        ).reshape(-1, 2)
        if len(self.index) == 0:
            raise ValueError("no slice of the training subjects contains brain voxels")

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` slices: images ``(n, C, H, W)`` float32, labels ``(n, H, W)`` int64."""
        images, labels, _ = self.sample_with_extras(n)
        return images, labels

    def sample_with_extras(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`sample` and an empty extras array (the patch samplers' interface)."""
        h, w = self.shape
        channels = self.images[0].shape[1]
        images = np.zeros((n, channels, h, w), np.float32)
        labels = np.zeros((n, h, w), np.int64)
        for k in range(n):
            i, s = self.index[self.rng.integers(len(self.index))]
            img, lab = self.images[i][s], self.labels[i][s]
            if self.augment:
                for axis in (0, 1):
                    if self.rng.random() < 0.5:
                        img, lab = np.flip(img, axis + 1), np.flip(lab, axis)
            images[k, :, : img.shape[1], : img.shape[2]] = img
            labels[k, : lab.shape[0], : lab.shape[1]] = lab
        return images, labels, np.zeros((n, 0, h, w), np.float32)
