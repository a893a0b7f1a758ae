"""The two forms a subject renders into: preprocessed iSeg volumes and raw BIDS volumes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import nibabel as nib
import numpy as np

from .anatomy import PhantomSubject
from .render import (
    brain_mask,
    hindbrain_mask,
    render_classes,
    render_image,
    tissue_labels,
    to_int16,
)


@dataclass(frozen=True)
class IsegVolumes:
    """Preprocessed iSeg form of one subject: skull-stripped, co-registered, 1 mm."""

    t1: np.ndarray  # int16, 0 outside the brain
    t2: np.ndarray  # int16, 0 outside the brain
    labels: np.ndarray  # uint8, model coding
    affine: np.ndarray  # nibabel's Analyze default for the grid (LAS, centred)
    hindbrain: np.ndarray  # bool: cerebellum + brain stem (zero in t1/t2 unless kept)


@dataclass(frozen=True)
class BidsVolumes:
    """Raw BIDS form of one subject."""

    t1w: np.ndarray  # int16, with skull and scalp
    t1w_affine: np.ndarray
    t2w: np.ndarray  # int16, on its own grid
    t2w_affine: np.ndarray
    dseg: np.ndarray  # uint8, model coding, on the T1w grid (cerebrum only)
    hindbrain: np.ndarray  # bool, cerebellum + brain stem + fourth ventricle, T1w grid
    t2w_to_t1w: np.ndarray  # 4x4: T2w scanner mm -> T1w scanner mm of the same point
    orientation: str


def iseg_affine(shape: Sequence[int]) -> np.ndarray:
    """The affine nibabel gives an Analyze file of ``shape`` at 1 mm (LAS, origin at centre).

    Rendering on exactly this grid makes the Analyze round trip lossless: what is read back
    is where the phantom was drawn.
    """
    header = nib.AnalyzeHeader()
    header.set_data_shape(tuple(int(s) for s in shape))
    header.set_zooms((1.0, 1.0, 1.0))
    return header.get_best_affine()


def make_iseg_subject(subject: PhantomSubject, keep_hindbrain: bool = False) -> IsegVolumes:
    """Render the preprocessed iSeg form (skull-stripped T1/T2 and labels on one 1 mm grid).

    As the iSeg organisers did, cerebellum and brain stem are removed (zero in both images and
    background in the labels); ``keep_hindbrain=True`` keeps them in the images (a skull-stripped
    whole brain, labels unchanged), which is what ``--skull-stripped`` users usually have.
    """
    affine = iseg_affine(subject.shape)
    classes = render_classes(subject.anatomy, subject.shape, affine)
    labels = tissue_labels(classes)
    hindbrain = hindbrain_mask(classes)
    rng = subject.rng("iseg")
    brain = brain_mask(classes) if keep_hindbrain else labels > 0
    images = []
    for modality in ("T1w", "T2w"):
        image = to_int16(render_image(classes, subject.contrast, modality, (1.0, 1.0, 1.0), rng))
        image[~brain] = 0
        images.append(image)
    return IsegVolumes(images[0], images[1], labels, affine, hindbrain)


def _grid(
    rotation: np.ndarray,
    voxel: Sequence[float],
    centre: np.ndarray,
    head_rotation: np.ndarray,
    head_axes: np.ndarray,
    margin: float,
) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and vox->world affine of a grid covering the head ellipsoid plus ``margin``.

    The head's half-extent along a grid axis ``d`` is the support function of the (rotated)
    head ellipsoid, ``sqrt(Σ_j ((R_headᵀ d)_j a_j)²)``.
    """
    voxel = np.asarray(voxel, dtype=float)
    directions = head_rotation.T @ rotation
    half = np.sqrt(((directions * head_axes[:, None]) ** 2).sum(axis=0)) + margin
    shape = tuple(int(n) for n in np.ceil(2 * half / voxel))
    affine = np.eye(4)
    affine[:3, :3] = rotation * voxel[None, :]
    affine[:3, 3] = centre - affine[:3, :3] @ ((np.asarray(shape) - 1) / 2)
    return shape, affine  # type: ignore[return-value]


def make_bids_subject(subject: PhantomSubject, skull_stripped: bool = False) -> BidsVolumes:
    """Render the raw BIDS form: T1w with skull, T2w on another grid after a head motion.

    ``skull_stripped=True`` zeroes everything outside the brain in both images (each on its own
    grid), as brain-extracted inputs for ``--skull-stripped`` runs.
    """
    acq, anatomy = subject.acquisition, subject.anatomy
    head_axes = anatomy.head_semi_axes()
    shape1, affine1 = _grid(
        acq.t1w_rotation, acq.t1w_voxel, acq.t1w_offset_mm, np.eye(3), head_axes, acq.t1w_margin_mm
    )
    motion = acq.t1w_to_t2w
    shape2, affine2 = _grid(
        acq.t2w_rotation,
        acq.t2w_voxel,
        motion[:3, 3] + acq.t2w_offset_mm,
        motion[:3, :3],
        head_axes,
        acq.t2w_margin_mm,
    )
    t2w_to_t1w = np.linalg.inv(motion)
    classes1 = render_classes(anatomy, shape1, affine1)  # T1w world is the head frame
    t1w = to_int16(
        render_image(classes1, subject.contrast, "T1w", acq.t1w_voxel, subject.rng("t1w"))
    )
    dseg = tissue_labels(classes1)
    hindbrain = hindbrain_mask(classes1)
    brain1 = brain_mask(classes1)
    del classes1
    classes2 = render_classes(anatomy, shape2, t2w_to_t1w @ affine2)
    t2w = to_int16(
        render_image(classes2, subject.contrast, "T2w", acq.t2w_voxel, subject.rng("t2w"))
    )
    if skull_stripped:
        t1w = np.where(brain1, t1w, 0).astype(t1w.dtype)
        t2w = np.where(brain_mask(classes2), t2w, 0).astype(t2w.dtype)
    return BidsVolumes(t1w, affine1, t2w, affine2, dseg, hindbrain, t2w_to_t1w, acq.orientation)
