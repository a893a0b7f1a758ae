"""Anatomical preprocessing as pure functions on files: validation, registration, masks, N4.

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

from ..utils.atomic import write_atomic
from ..utils.images import load_image, to_canonical
from ._ants import coarse, load_ants, save_transforms

LOGGER = logging.getLogger(__name__)


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
    estimate: bool = True,
) -> None:
    """Rigid (6-dof) registration of ``moving`` to ``fixed`` with Mattes mutual information;
    writes the moving image resampled onto the fixed grid (linear) and the ITK transform.
    ``estimate=False`` takes the images as already aligned: the identity transform, the moving
    image resampled through the headers only.

    The transform is estimated on copies resampled to ``resolution_mm`` (a 0.8 mm 320³ infant
    image would otherwise take many minutes per session); being physical, it then applies to
    the full-resolution images unchanged.
    """
    ants = load_ants()
    fixed, moving = ants.image_read(fixed_file), ants.image_read(moving_file)
    if not estimate:
        identity = ants.new_ants_transform(dimension=3, transform_type="Euler3DTransform")
        ants.write_transform(identity, out_transform)
        warped = ants.apply_transforms(fixed, moving, [out_transform], interpolator="linear")
        ants.image_write(warped, out_file)
        return
    reg = ants.registration(
        fixed=coarse(ants, fixed, resolution_mm),
        moving=coarse(ants, moving, resolution_mm),
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
    ants = load_ants()
    subject = ants.image_read(t1w_file)
    small = coarse(ants, subject, resolution_mm)
    template = coarse(ants, ants.image_read(template_file), resolution_mm)
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
    return save_transforms(reg["fwdtransforms"], out_file + ".template_to_t1w_")


def n4_correct(in_file: str, mask_file: str, out_file: str, shrink_factor: int = 4) -> str:
    """N4 bias-field correction (ANTs): the field is fitted inside the brain mask, then the
    *whole* image is divided by it.

    ANTs' own output divides only inside the mask and leaves the rest raw, which breaks the
    image at the mask edge (the brain came out ~8x brighter than the head next to it). Outside
    the mask the fitted B-spline field is an extrapolation: it is clamped to the range it takes
    inside, which keeps it continuous and bounded. Inside the mask the result equals ANTs'
    corrected image exactly, so the skull-stripped segmentation input does not change.
    """
    ants = load_ants()
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
