"""Random training patches: the reference's brain-restricted sampling, class balancing, and
flip/rotation augmentation (seed 001)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .data import Subject


def _pad_to(array: np.ndarray, size: int) -> np.ndarray:
    pads = [(0, 0)] * (array.ndim - 3) + [(0, max(0, size - s)) for s in array.shape[-3:]]
    return np.pad(array, pads) if any(p[1] for p in pads) else array


def window_sums(mask: np.ndarray, size: int) -> np.ndarray:
    """Number of mask voxels in every ``size³`` window: ``out[i, j, k] = mask[i:i+s, j:j+s,
    k:k+s].sum()``, shape ``L - size + 1`` per axis (summed-volume table, exact integers)."""
    c = np.pad(mask.astype(np.int64), ((1, 0),) * 3).cumsum(0).cumsum(1).cumsum(2)
    s = size
    return (
        c[s:, s:, s:]
        - c[:-s, s:, s:]
        - c[s:, :-s, s:]
        - c[s:, s:, :-s]
        + c[:-s, :-s, s:]
        + c[:-s, s:, :-s]
        + c[s:, :-s, :-s]
        - c[:-s, :-s, :-s]
    )


def valid_starts(brain: np.ndarray, size: int) -> np.ndarray:
    """Start corners ``(n, 3)`` of every ``size³`` window that contains a brain voxel.

    The reference draws starts uniformly in ``[0, L - size)`` and redraws until the window holds a
    voxel of T1w > 0; sampling uniformly from this list is the same distribution without the loop.
    (When ``L == size`` the only start is 0.)
    """
    sums = window_sums(brain, size)
    limits = tuple(slice(0, max(1, n - size)) for n in brain.shape)
    starts = np.argwhere(sums[limits] > 0)
    if len(starts) == 0:
        raise ValueError("no window of the requested size contains brain voxels")
    return starts


class PatchSampler:
    """Draws ``(image, label)`` patches from subjects with a seeded NumPy generator.

    ``mode="brain"`` follows the reference (uniform over windows that touch the brain);
    ``mode="balanced"`` picks a tissue class uniformly, then a voxel of that class, then a window
    containing it, which helps rare classes on small training sets. ``augmentation`` names the
    random transform when ``augment`` is on (:data:`AUGMENTERS`). ``extras`` are per-subject
    volumes ``(K, D, H, W)`` cut (and augmented) with each patch, e.g. DAM-AL's attention
    weights computed on the whole ground truth (:meth:`sample_with_extras`).
    """

    def __init__(
        self,
        subjects: Sequence[Subject],
        patch_size: int,
        rng: np.random.Generator,
        mode: str = "brain",
        augment: bool = False,
        augmentation: str = "flip-rot90",
        extras: Sequence[np.ndarray] | None = None,
    ) -> None:
        if not subjects:
            raise ValueError("no training subjects")
        if mode not in ("brain", "balanced"):
            raise ValueError(f"unknown sampling mode {mode!r}")
        if augmentation not in AUGMENTERS:
            raise ValueError(f"unknown augmentation {augmentation!r}")
        self.size = patch_size
        self.rng = rng
        self.mode = mode
        self.augment = augment
        self.augmenter = AUGMENTERS[augmentation]
        self.channels = subjects[0].image.shape[0]
        images = [s.image for s in subjects]
        if extras is not None:
            images = [
                np.concatenate([im, ex.astype(np.float32)])
                for im, ex in zip(images, extras, strict=True)
            ]
        self.images = [_pad_to(im, patch_size) for im in images]
        self.labels = [_pad_to(s.label, patch_size) for s in subjects]
        if mode == "brain":
            self.starts = [valid_starts(_pad_to(s.brain, patch_size), patch_size) for s in subjects]
        else:
            self.class_voxels = [[np.argwhere(lab == c) for c in (1, 2, 3)] for lab in self.labels]

    def _start(self, i: int) -> np.ndarray:
        if self.mode == "brain":
            return self.starts[i][self.rng.integers(len(self.starts[i]))]
        present = [v for v in self.class_voxels[i] if len(v)]
        voxels = present[self.rng.integers(len(present))]
        centre = voxels[self.rng.integers(len(voxels))]
        start = centre - self.rng.integers(0, self.size, size=3)
        return np.clip(start, 0, np.array(self.labels[i].shape) - self.size)

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` patches: images ``(n, C, s, s, s)`` float32 and labels ``(n, s, s, s)`` int64."""
        images, labels, _ = self.sample_with_extras(n)
        return images, labels

    def sample_with_extras(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`sample` plus the patches of the extras ``(n, K, s, s, s)`` (K may be 0)."""
        s = self.size
        channels = self.images[0].shape[0]
        images = np.empty((n, channels, s, s, s), np.float32)
        labels = np.empty((n, s, s, s), np.int64)
        for k in range(n):
            i = int(self.rng.integers(len(self.images)))
            x, y, z = self._start(i)
            img = self.images[i][:, x : x + s, y : y + s, z : z + s]
            lab = self.labels[i][x : x + s, y : y + s, z : z + s]
            if self.augment:
                img, lab = self.augmenter(img, lab, self.rng)
            images[k], labels[k] = img, lab
        return images[:, : self.channels], labels, images[:, self.channels :]


def augment_patch(
    image: np.ndarray, label: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random flips along each axis and a random multiple of 90° in a random plane."""
    for axis in range(3):
        if rng.random() < 0.5:
            image, label = np.flip(image, axis + 1), np.flip(label, axis)
    k = int(rng.integers(4))
    if k:
        a, b = rng.choice(3, size=2, replace=False)
        image = np.rot90(image, k, axes=(a + 1, b + 1))
        label = np.rot90(label, k, axes=(a, b))
    return np.ascontiguousarray(image), np.ascontiguousarray(label)


def augment_seed001(
    image: np.ndarray, label: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Seed 001 §4.1: a rotation by 0/90/180/270° about z (in the x-y plane) and a flip along y,
    each drawn at random."""
    k = int(rng.integers(4))
    if k:
        image, label = np.rot90(image, k, axes=(1, 2)), np.rot90(label, k, axes=(0, 1))
    if rng.random() < 0.5:
        image, label = np.flip(image, 2), np.flip(label, 1)
    return np.ascontiguousarray(image), np.ascontiguousarray(label)


#: ``TrainingConfig.augmentation`` -> augmenter
AUGMENTERS = {"flip-rot90": augment_patch, "rot90z-flipy": augment_seed001}
