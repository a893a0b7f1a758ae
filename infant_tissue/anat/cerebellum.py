"""Cerebellum and brain-stem removal, as pure functions on files (no nipype).

Why: the published 3D-MASNet ensemble was trained on iSeg images whose organisers removed the
cerebellum and the brain stem (seed 001 §2; iSeg-2019 uses the same protocol), as iBEAT does
before tissue segmentation. A network fed whole brains gives every cerebellar and brain-stem voxel
a cerebral tissue label it never learnt. The removal recreates that input domain.

How, iBEAT-like and template-based:

* **Build time** (:func:`derive_template_mask`): each ``tpl-MNIInfant`` cohort gets a binary
  cerebellum + brain-stem mask on its ``res-1`` grid, from an adult FreeSurfer label map
  (FreeSurfer labels :data:`FREESURFER_LABELS`) carried into the cohort either through transforms
  (TemplateFlow's ``tpl-MNIInfant_cohort-N_from-MNI152NLin6Asym_mode-image_xfm.h5``) or, where
  none is available, by registering an image synthesised from the labels to the cohort's T2w
  template (affine + SyN, mutual information).
* **Run time** (:func:`warp_to_subject`, :func:`split_brain`): that mask is warped to the subject
  with the template registration that brain extraction already computed, or with a registration
  of its own (:func:`register_template`) for skull-stripped inputs and precomputed brain masks;
  within the brain mask it becomes the removed region, the rest of the brain the cerebrum.
* **Checks** (:func:`check_removed_region`): the region must lie inferior and posterior to the
  cerebrum, hold no voxel of the upper half of the brain and be 7-14 % of the brain
  (:data:`PLAUSIBLE_SHARE`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.processing import resample_from_to
from scipy import ndimage

from ..utils.atomic import write_atomic
from ._ants import coarse, load_ants, save_transforms

LOGGER = logging.getLogger(__name__)

#: FreeSurfer labels of the removed region: left/right cerebellum white matter (7, 46) and
#: cortex (8, 47), brain stem (16), and the fourth ventricle (15), which lies between brain stem
#: and cerebellum and is removed with them (it belongs to neither cerebral hemisphere, and iSeg's
#: cerebral CSF label never includes it).
FREESURFER_LABELS = (7, 8, 15, 16, 46, 47)

#: Adult FreeSurfer label map in MNI152NLin6Asym shipped with the package (from NiBabies,
#: Apache-2.0; see ``data/templates/README.md``): the default source of the template masks.
ADULT_LABELS = (
    Path(__file__).resolve().parent.parent
    / "data"
    / "templates"
    / ("tpl-MNI152NLin6Asym_res-01_desc-avgwmparc_dseg.nii.gz")
)

#: Plausible share of the brain held by the removed region. Cerebellum + brain stem are roughly
#: 8-14 % of a 6-month brain *with* its whole brain stem; skull-stripped images and templates
#: often cut the brain stem at the pons, which leaves about one point less (the real 6-month
#: template pair in ``shared/real-infant``: 7.6 %), hence 7 % as the lower bound.
PLAUSIBLE_SHARE = (0.07, 0.14)

#: Voxel size (mm) at which templates are registered to subjects for this mask: enough for a
#: region whose boundary (the tentorium) is several mm from any cerebral tissue label.
REGISTRATION_MM = 2.0

# Adult T2w-like intensity of FreeSurfer labels, for registering a label map to an infant T2w
# template by mutual information (only the ordering CSF > GM > WM matters).
_CSF_LABELS = (4, 5, 14, 15, 24, 31, 43, 44, 63, 72)
_SUBCORTICAL_GM = (10, 11, 12, 13, 17, 18, 26, 28, 49, 50, 51, 52, 53, 54, 58, 60)
_CORTEX = (3, 8, 42, 47)


def synthetic_t2w(labels: np.ndarray) -> np.ndarray:
    """An adult T2w-like image of a FreeSurfer label map (aseg, aparc+aseg or wmparc codes):
    CSF 1.0, cortex 0.62, subcortical GM 0.55, brain stem 0.45, white matter 0.40, background 0."""
    labels = np.asarray(labels).astype(np.int64)
    image = np.where(labels > 0, 0.40, 0.0).astype(np.float32)
    cortex = np.isin(labels, _CORTEX) | ((labels >= 1000) & (labels < 3000))
    image[cortex] = 0.62
    image[np.isin(labels, _SUBCORTICAL_GM)] = 0.55
    image[labels == 16] = 0.45
    image[np.isin(labels, _CSF_LABELS)] = 1.0
    return ndimage.gaussian_filter(image, 0.6)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Largest connected component (26-connectivity) of a binary mask."""
    mask = np.asarray(mask, bool)
    labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    if count > 1:
        sizes = ndimage.sum(mask, labels, index=range(1, count + 1))
        mask = labels == (int(np.argmax(sizes)) + 1)
    return mask


def register_template(
    subject_file: str,
    subject_mask_file: str,
    template_file: str,
    template_mask_file: str,
    out_prefix: str,
    resolution_mm: float = REGISTRATION_MM,
) -> list[str]:
    """Affine + SyN registration of a brain-extracted template to a brain-extracted subject.

    Both images are multiplied by their brain masks (so a skull-stripped subject meets a
    skull-stripped template) and resampled to ``resolution_mm``. Returns the transform files
    (template -> subject, ANTs order: warp, then affine) written as ``out_prefix{0,1}...``.
    """
    ants = load_ants()
    subject = ants.image_read(subject_file) * ants.image_read(subject_mask_file)
    template = ants.image_read(template_file) * ants.image_read(template_mask_file)
    reg = ants.registration(
        fixed=coarse(ants, subject, resolution_mm),
        moving=coarse(ants, template, resolution_mm),
        type_of_transform="SyN",
        aff_metric="mattes",
        syn_metric="mattes",
        reg_iterations=(60, 30, 0),
        aff_iterations=(200, 100, 20),
        aff_shrink_factors=(4, 2, 1),
        aff_smoothing_sigmas=(2, 1, 0),
    )
    return save_transforms(reg["fwdtransforms"], out_prefix)


def warp_to_subject(
    template_mask_file: str, reference_file: str, transforms: Sequence[str], out_file: str
) -> str:
    """Warp a template-space binary mask onto the subject's grid (linear, kept as a fraction)."""
    ants = load_ants()
    warped = ants.apply_transforms(
        ants.image_read(reference_file),
        ants.image_read(template_mask_file),
        list(transforms),
        interpolator="linear",
    )
    ants.image_write(warped, out_file)
    return out_file


def split_brain(
    brain_mask_file: str, warped_file: str, out_removed: str, out_cerebrum: str
) -> tuple[str, str]:
    """Split the brain mask into the removed region and the cerebrum.

    The removed region is the brain within the warped template mask (fraction ≥ 0.5); the
    cerebrum is the largest connected rest, so the two partition the brain mask and a sliver
    left between cerebellum and brain stem goes with them, not with the cerebrum. (No hole
    filling: a brain mask with extra-cerebral CSF wraps the cerebellum, which would make the whole
    removed region a "hole" of the cerebrum.)
    """
    brain_img = nib.load(brain_mask_file)
    brain = np.asanyarray(brain_img.dataobj) > 0
    warped_img = nib.load(warped_file)
    if warped_img.shape[:3] != brain.shape or not np.allclose(
        warped_img.affine, brain_img.affine, atol=1e-3
    ):
        warped_img = resample_from_to(warped_img, brain_img, order=1)
    removed = brain & (np.asanyarray(warped_img.dataobj) >= 0.5)
    cerebrum = largest_component(brain & ~removed)
    removed = brain & ~cerebrum
    for data, path in ((removed, out_removed), (cerebrum, out_cerebrum)):
        write_atomic(nib.Nifti1Image(data.astype(np.uint8), brain_img.affine), path)
    return out_removed, out_cerebrum


def check_removed_region(
    removed: np.ndarray,
    brain: np.ndarray,
    affine: np.ndarray,
    share: tuple[float, float] = PLAUSIBLE_SHARE,
) -> list[str]:
    """Anatomical plausibility of a removed cerebellum + brain-stem region; [] when plausible.

    Checked in world coordinates (RAS+ mm): the region holds 7-14 % of the brain's voxels, no
    voxel above the middle of the brain's superior-inferior extent, and its centroid lies below
    (inferior) and behind (posterior) the cerebrum's.
    """
    removed, brain = np.asarray(removed, bool), np.asarray(brain, bool)
    if not removed.any():
        return ["no voxel removed"]
    problems = []
    fraction = removed.sum() / max(int(brain.sum()), 1)
    if not share[0] <= fraction <= share[1]:
        problems.append(
            f"{100 * fraction:.1f}% of the brain (expected {100 * share[0]:.0f}-"
            f"{100 * share[1]:.0f}%)"
        )
    brain_xyz = nib.affines.apply_affine(affine, np.argwhere(brain))
    removed_xyz = nib.affines.apply_affine(affine, np.argwhere(removed))
    middle = 0.5 * (brain_xyz[:, 2].min() + brain_xyz[:, 2].max())
    above = int((removed_xyz[:, 2] > middle).sum())
    if above:
        problems.append(f"{above} voxels in the upper half of the brain")
    cerebrum = brain & ~removed
    if cerebrum.any():
        centre = nib.affines.apply_affine(affine, np.argwhere(cerebrum)).mean(axis=0)
        centroid = removed_xyz.mean(axis=0)
        if centroid[2] >= centre[2]:
            problems.append("not inferior to the cerebrum")
        if centroid[1] >= centre[1]:
            problems.append("not posterior to the cerebrum")
    return problems


def derive_template_mask(
    template_file: str,
    template_mask_file: str,
    out_file: str,
    labels_file: str | os.PathLike[str] = ADULT_LABELS,
    transforms: Sequence[str] | None = None,
    labels: Sequence[int] = FREESURFER_LABELS,
    work_dir: str | None = None,
    resolution_mm: float = REGISTRATION_MM,
) -> list[str]:
    """Build-time cerebellum + brain-stem mask of one infant template cohort.

    Parameters
    ----------
    template_file, template_mask_file
        The cohort's template (T2w for the registration route) and brain mask; the output is on
        this grid.
    out_file
        The mask to write (uint8, 1 inside).
    labels_file
        Adult FreeSurfer label map (default :data:`ADULT_LABELS`, in MNI152NLin6Asym).
    transforms
        ANTs transforms from the label map's space to the template (TemplateFlow's
        ``..._from-MNI152NLin6Asym_mode-image_xfm.h5``); ``None`` registers
        :func:`synthetic_t2w` of the labels to the brain-extracted template instead.
    labels
        FreeSurfer labels of the region.
    work_dir
        Where registration files go (default: next to ``out_file``).
    resolution_mm
        Voxel size the registration route works at.

    Returns
    -------
    list of str
        The plausibility problems of the result (see :func:`check_removed_region`); empty when
        the mask is plausible. The mask is written either way, so a build can show it.
    """
    ants = load_ants()
    label_img = nib.load(labels_file)
    label_data = np.asanyarray(label_img.dataobj).astype(np.int64).reshape(label_img.shape[:3])
    region = nib.Nifti1Image(np.isin(label_data, labels).astype(np.float32), label_img.affine)
    work = Path(work_dir or Path(out_file).parent)
    work.mkdir(parents=True, exist_ok=True)
    region_file = str(work / "adult_region.nii.gz")
    nib.save(region, region_file)
    if transforms is None:
        adult = nib.Nifti1Image(synthetic_t2w(label_data), label_img.affine)
        adult_file = str(work / "adult_synthetic_T2w.nii.gz")
        nib.save(adult, adult_file)
        template = ants.image_read(template_file) * ants.image_read(template_mask_file)
        reg = ants.registration(
            fixed=coarse(ants, template, resolution_mm),
            moving=coarse(ants, ants.image_read(adult_file), resolution_mm),
            type_of_transform="SyN",
            aff_metric="mattes",
            syn_metric="mattes",
            reg_iterations=(100, 70, 30),
            aff_iterations=(500, 250, 100),
            aff_shrink_factors=(4, 2, 1),
            aff_smoothing_sigmas=(2, 1, 0),
        )
        transforms = save_transforms(reg["fwdtransforms"], str(work / "adult_to_template_"))
    warped_file = str(work / "region_in_template.nii.gz")
    warp_to_subject(region_file, template_file, transforms, warped_file)
    template_mask = nib.load(template_mask_file)
    brain = np.asanyarray(template_mask.dataobj) > 0
    warped = np.asanyarray(resample_from_to(nib.load(warped_file), template_mask, order=1).dataobj)
    mask = largest_component(brain & (warped >= 0.5))
    write_atomic(nib.Nifti1Image(mask.astype(np.uint8), template_mask.affine), out_file)
    return check_removed_region(mask, brain, template_mask.affine)
