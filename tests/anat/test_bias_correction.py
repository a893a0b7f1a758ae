"""N4: the field is fitted in the brain, the whole image is divided by it (continuity)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from infant_tissue.anat._ants import load_ants as _ants
from infant_tissue.anat.preprocessing import n4_correct
from infant_tissue.phantoms import make_bids_subject, sample_subject

SHAPE = (48, 56, 48)


def edge_ratio(image: np.ndarray, mask: np.ndarray, width: int = 2) -> float:
    """Median just inside the mask edge over the median just outside it."""
    inner = mask & ~ndimage.binary_erosion(mask, iterations=width)
    outer = ndimage.binary_dilation(mask, iterations=width) & ~mask
    return float(np.median(image[inner]) / np.median(image[outer]))


@pytest.fixture(scope="module")
def raw_head(tmp_path_factory):
    """A raw phantom with skull and scalp (T1w, and its T2w rendered on the T1w grid)."""
    tmp = tmp_path_factory.mktemp("n4")
    vols = make_bids_subject(sample_subject(5, 1, SHAPE))
    brain = (vols.dseg > 0) | vols.hindbrain
    nib.save(nib.Nifti1Image(vols.t1w.astype(np.float32), vols.t1w_affine), tmp / "t1w.nii.gz")
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), vols.t1w_affine), tmp / "mask.nii.gz")
    return tmp, vols.t1w.astype(np.float32), brain


def test_preproc_t1w_keeps_the_raw_brain_to_head_contrast(raw_head):
    tmp, raw, brain = raw_head
    n4_correct(str(tmp / "t1w.nii.gz"), str(tmp / "mask.nii.gz"), str(tmp / "n4.nii.gz"))
    corrected = np.asanyarray(nib.load(tmp / "n4.nii.gz").dataobj)
    before, after = edge_ratio(raw, brain), edge_ratio(corrected, brain)
    assert after == pytest.approx(before, rel=0.25), (before, after)
    # ANTs' own output (corrected inside, raw outside) jumps at the mask edge: the check bites
    ants = _ants()
    own = ants.n4_bias_field_correction(
        ants.image_read(str(tmp / "t1w.nii.gz")),
        mask=ants.image_read(str(tmp / "mask.nii.gz")),
        shrink_factor=4,
    ).numpy()
    assert edge_ratio(own, brain) > 2 * before
    # inside the brain the result is ANTs' corrected image: the segmentation input is unchanged
    np.testing.assert_allclose(corrected[brain], own[brain], rtol=1e-5)


def test_preproc_t2w_keeps_the_raw_contrast_too(raw_head, tmp_path):
    tmp, _, brain = raw_head
    vols = make_bids_subject(sample_subject(5, 1, SHAPE))
    # the T2w rendered on the T1w grid, as after registration
    from infant_tissue.phantoms.render import render_classes, render_image, to_int16

    subject = sample_subject(5, 1, SHAPE)
    classes = render_classes(subject.anatomy, vols.t1w.shape, vols.t1w_affine)
    t2w = to_int16(
        render_image(classes, subject.contrast, "T2w", subject.acquisition.t1w_voxel,
                     np.random.default_rng(0))
    ).astype(np.float32)  # fmt: skip
    nib.save(nib.Nifti1Image(t2w, vols.t1w_affine), tmp_path / "t2w.nii.gz")
    n4_correct(str(tmp_path / "t2w.nii.gz"), str(tmp / "mask.nii.gz"), str(tmp_path / "n4.nii.gz"))
    corrected = np.asanyarray(nib.load(tmp_path / "n4.nii.gz").dataobj)
    assert edge_ratio(corrected, brain) == pytest.approx(edge_ratio(t2w, brain), rel=0.25)
    assert np.isfinite(corrected).all() and corrected.min() >= 0


def test_skull_stripped_input_is_corrected_as_before(tmp_path):
    """For a skull-stripped image nothing outside the mask exists: the output equals ANTs' own
    N4 output to float precision (the model input does not change)."""
    vols = make_bids_subject(sample_subject(5, 0, SHAPE), skull_stripped=True)
    brain = (vols.dseg > 0) | vols.hindbrain
    data = vols.t1w.astype(np.float32)
    nib.save(nib.Nifti1Image(data, vols.t1w_affine), tmp_path / "t1w.nii.gz")
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), vols.t1w_affine), tmp_path / "mask.nii.gz")
    n4_correct(
        str(tmp_path / "t1w.nii.gz"), str(tmp_path / "mask.nii.gz"), str(tmp_path / "a.nii.gz")
    )
    ants = _ants()
    own = ants.n4_bias_field_correction(
        ants.image_read(str(tmp_path / "t1w.nii.gz")),
        mask=ants.image_read(str(tmp_path / "mask.nii.gz")),
        shrink_factor=4,
    ).numpy()
    ours = np.asanyarray(nib.load(tmp_path / "a.nii.gz").dataobj)
    np.testing.assert_allclose(ours[brain], own[brain], rtol=1e-5)
    assert (ours[~brain] == 0).all()  # zero stays zero outside
