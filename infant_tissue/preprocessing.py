"""Anatomical preprocessing as pure functions on files: registration, brain masks, N4, resampling.

Registration and bias correction use antspyx (ANTs); resampling between voxel grids uses nibabel's
physical-space resampling. Functions read and write NIfTI files so that the nipype interfaces in
:mod:`infant_tissue.interfaces.preproc` stay one-liners and every intermediate can be inspected in
the work directory.
"""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.processing import resample_from_to
from scipy import ndimage

from .images import load_image, to_canonical, write_atomic

LOGGER = logging.getLogger(__name__)


#: Seed of ANTs' random metric sampling: the same inputs must give the same registration.
ANTS_SEED = 20221


def _ants():
    import os

    import ants  # deferred: importing ANTs costs seconds and is only needed in these steps

    # set_ants_deterministic also forces one ITK thread; keep the thread count we were given.
    threads = os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")
    ants.config.set_ants_deterministic(True, ANTS_SEED)
    if threads is None:
        os.environ.pop("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", None)
    else:
        os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = threads
    return ants


def reorient_to_ras(in_file: str, out_file: str, kind: str | None = None) -> str:
    """Validate an input image and write it in RAS+ voxel order as float32 (no resampling)."""
    img = to_canonical(load_image(in_file, kind=kind))
    data = np.asanyarray(img.dataobj, dtype=np.float32)
    out = nib.Nifti1Image(data, img.affine)
    out.set_qform(img.affine, code=1)
    out.set_sform(img.affine, code=1)
    write_atomic(out, out_file)
    return out_file


def register_rigid(
    fixed_file: str,
    moving_file: str,
    out_file: str,
    out_transform: str,
    resolution_mm: float = 2.0,
) -> None:
    """Rigid (6-dof) registration of ``moving`` to ``fixed`` with Mattes mutual information;
    writes the moving image resampled onto the fixed grid (linear) and the ITK transform.

    The transform is estimated on copies resampled to ``resolution_mm`` (a 0.8 mm 320³ infant
    image would otherwise take many minutes per session); being physical, it then applies to
    the full-resolution images unchanged.
    """
    ants = _ants()
    fixed, moving = ants.image_read(fixed_file), ants.image_read(moving_file)
    reg = ants.registration(
        fixed=_coarse(ants, fixed, resolution_mm),
        moving=_coarse(ants, moving, resolution_mm),
        type_of_transform="Rigid",
        aff_metric="mattes",
        aff_sampling=32,
        aff_iterations=(200, 100, 50),
        aff_shrink_factors=(4, 2, 1),
        aff_smoothing_sigmas=(2, 1, 0),
    )
    warped = ants.apply_transforms(fixed, moving, reg["fwdtransforms"], interpolator="linear")
    ants.image_write(warped, out_file)
    Path(out_transform).write_bytes(Path(reg["fwdtransforms"][0]).read_bytes())


def _coarse(ants, image, resolution_mm: float):
    """``image`` resampled to ``resolution_mm`` if it is finer than that (linear)."""
    if min(image.spacing) >= resolution_mm * 0.99:
        return image
    return ants.resample_image(image, (resolution_mm,) * 3, use_voxels=False, interp_type=0)


def refine_mask(mask: np.ndarray) -> np.ndarray:
    """Largest connected component with its holes filled."""
    mask = np.asarray(mask, bool)
    labels, count = ndimage.label(mask)
    if count > 1:
        sizes = ndimage.sum(mask, labels, index=range(1, count + 1))
        mask = labels == (int(np.argmax(sizes)) + 1)
    return ndimage.binary_fill_holes(mask)


def mask_from_skull_stripped(t1w_file: str, out_file: str) -> str:
    """Brain mask of an already skull-stripped image: its non-zero voxels, refined."""
    img = nib.load(t1w_file)
    mask = refine_mask(np.asanyarray(img.dataobj) > 0)
    if not mask.any():
        raise ValueError(f"{t1w_file}: no non-zero voxel; is this really a skull-stripped T1w?")
    write_atomic(nib.Nifti1Image(mask.astype(np.uint8), img.affine), out_file)
    return out_file


def mask_from_file(mask_file: str, reference_file: str, out_file: str) -> str:
    """A precomputed mask (e.g. NiBabies ``desc-brain_mask``) on the reference grid."""
    ref = nib.load(reference_file)
    mask = load_image(mask_file, kind="brain mask")
    on_ref = resample_from_to(mask, ref, order=0)
    data = np.asanyarray(on_ref.dataobj) > 0.5
    if not data.any():
        raise ValueError(f"{mask_file}: the mask does not overlap the T1w {reference_file}")
    write_atomic(nib.Nifti1Image(data.astype(np.uint8), ref.affine), out_file)
    return out_file


def mask_from_template(
    t1w_file: str,
    template_file: str,
    template_mask_file: str,
    out_file: str,
    resolution_mm: float = 2.0,
) -> list[str]:
    """Brain mask by registering an infant template (affine + SyN at reduced resolution) to the
    subject's T1w, warping the template's brain mask, and refining it.

    Returns the template -> subject transform files (warp, then affine; ANTs order), saved next
    to ``out_file`` so later steps (the cerebellum removal) reuse this registration.
    """
    from .anat.cerebellum import _save_transforms

    ants = _ants()
    subject = ants.image_read(t1w_file)
    small = _coarse(ants, subject, resolution_mm)
    template = _coarse(ants, ants.image_read(template_file), resolution_mm)
    reg = ants.registration(
        fixed=small,
        moving=template,
        type_of_transform="SyN",
        aff_metric="mattes",
        syn_metric="mattes",
        reg_iterations=(40, 20, 0),
        aff_iterations=(200, 100, 20),
        aff_shrink_factors=(4, 2, 1),
        aff_smoothing_sigmas=(2, 1, 0),
    )
    warped = ants.apply_transforms(
        subject, ants.image_read(template_mask_file), reg["fwdtransforms"], interpolator="linear"
    )
    ants.image_write(warped, out_file + ".warped.nii.gz")
    img = nib.load(out_file + ".warped.nii.gz")
    mask = refine_mask(np.asanyarray(img.dataobj) > 0.5)
    if not mask.any():
        raise ValueError(f"{t1w_file}: the template brain mask did not land on the image")
    write_atomic(nib.Nifti1Image(mask.astype(np.uint8), img.affine), out_file)
    return _save_transforms(reg["fwdtransforms"], out_file + ".template_to_t1w_")


def n4_correct(in_file: str, mask_file: str, out_file: str, shrink_factor: int = 4) -> str:
    """N4 bias-field correction (ANTs): the field is fitted inside the brain mask, then the
    *whole* image is divided by it.

    ANTs' own output divides only inside the mask and leaves the rest raw, which breaks the
    image at the mask edge (the brain came out ~8x brighter than the head next to it). Outside
    the mask the fitted B-spline field is an extrapolation: it is clamped to the range it takes
    inside, which keeps it continuous and bounded. Inside the mask the result equals ANTs'
    corrected image exactly, so the skull-stripped segmentation input does not change.
    """
    ants = _ants()
    image = ants.image_read(in_file)
    mask = ants.image_read(mask_file)
    lower = float(np.percentile(image.numpy(), 0.5))
    if lower < 0:  # N4 works in log space: keep intensities positive
        image = image - lower
    field = ants.n4_bias_field_correction(
        image, mask=mask, shrink_factor=shrink_factor, return_bias_field=True
    ).numpy()
    inside = mask.numpy() > 0
    if inside.any():
        field = np.clip(field, field[inside].min(), field[inside].max())
    corrected = image.numpy() / np.maximum(field, 1e-6)
    ants.image_write(image.new_image_like(corrected.astype(np.float32)), out_file)
    return out_file


def resample_to_1mm(
    t1w_file: str,
    t2w_file: str,
    mask_file: str,
    out_t1w: str,
    out_t2w: str,
    out_mask: str,
    margin_mm: float = 8.0,
    voxel_mm: float = 1.0,
) -> None:
    """Resample T1w, T2w (already in T1w space) and mask to a ``voxel_mm`` RAS grid around the
    brain's bounding box plus ``margin_mm``; images are skull-stripped (0 outside the mask), as the
    network was trained on iSeg's skull-stripped images."""
    mask_img = nib.load(mask_file)
    mask = np.asanyarray(mask_img.dataobj) > 0
    idx = np.argwhere(mask)
    corners = np.array(
        [
            [i, j, k]
            for i in (idx[:, 0].min(), idx[:, 0].max())
            for j in (idx[:, 1].min(), idx[:, 1].max())
            for k in (idx[:, 2].min(), idx[:, 2].max())
        ]
    )
    world = nib.affines.apply_affine(mask_img.affine, corners)
    lo, hi = world.min(0) - margin_mm, world.max(0) + margin_mm
    shape = tuple(int(np.ceil((h - lw) / voxel_mm)) + 1 for lw, h in zip(lo, hi, strict=True))
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = lo
    target = (shape, affine)
    mask_1mm = np.asanyarray(resample_from_to(mask_img, target, order=1).dataobj) > 0.5
    for src, dst in ((t1w_file, out_t1w), (t2w_file, out_t2w)):
        data = np.asanyarray(resample_from_to(nib.load(src), target, order=1).dataobj)
        # the reference treats voxels > 0 as brain: keep every brain voxel strictly positive
        data = np.where(mask_1mm, np.maximum(data, 1e-3 * max(float(data.max()), 1e-6)), 0)
        write_atomic(nib.Nifti1Image(data.astype(np.float32), affine), dst)
    write_atomic(nib.Nifti1Image(mask_1mm.astype(np.uint8), affine), out_mask)
