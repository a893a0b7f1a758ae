"""Cerebellum + brain-stem removal functions: checks, split, template-mask derivation."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from infant_tissue.anat import cerebellum as cb
from infant_tissue.phantoms import make_bids_subject, sample_subject
from infant_tissue.phantoms.anatomy import CB_GM, CB_WM, CSF, DEEP_GM, GM, HB_CSF, STEM, WM
from infant_tissue.phantoms.render import render_classes
from infant_tissue.phantoms.templates import template_stem, write_templateflow

SHAPE = (48, 56, 48)

#: FreeSurfer code of each phantom class: a phantom can stand in for an adult label map.
FREESURFER = {CSF: 24, GM: 3, WM: 2, DEEP_GM: 10, CB_GM: 8, CB_WM: 7, STEM: 16, HB_CSF: 15}


def freesurfer_labels(classes: np.ndarray) -> np.ndarray:
    out = np.zeros(classes.shape, np.int16)
    for cls, code in FREESURFER.items():
        out[classes == cls] = code
    return out


def dice(a, b) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_synthetic_t2w_orders_csf_cortex_white_matter():
    codes = [0, 24, 3, 1001, 10, 16, 2, 3005, 8, 7]
    labels = np.kron(np.array(codes)[None, None, :], np.ones((5, 5, 5), int))
    image = cb.synthetic_t2w(labels)[2, 2, 2::5]  # the centre of each 5³ block
    bg, csf, ctx, ctx_parc, sub, stem, wm, wm_parc, cb_ctx, cb_wm = image
    assert csf > ctx > sub > stem > wm > bg == pytest.approx(0, abs=0.05)
    assert ctx_parc == pytest.approx(ctx, abs=0.05) and cb_ctx == pytest.approx(ctx, abs=0.05)
    assert wm_parc == pytest.approx(wm, abs=0.05) and cb_wm == pytest.approx(wm, abs=0.05)


def test_check_removed_region_accepts_the_truth_and_names_each_problem():
    vols = make_bids_subject(sample_subject(3, 0, SHAPE))
    brain, region, affine = (vols.dseg > 0) | vols.hindbrain, vols.hindbrain, vols.t1w_affine
    assert cb.check_removed_region(region, brain, affine) == []
    upside_down = region[:, :, ::-1] & brain
    problems = " ".join(cb.check_removed_region(upside_down, brain, affine))
    assert "upper half" in problems and "not inferior" in problems
    front = region[:, ::-1] & brain
    assert "not posterior" in " ".join(cb.check_removed_region(front, brain, affine))
    small = region.copy()
    small[:, :, : int(np.argwhere(region)[:, 2].max()) - 3] = False
    assert "% of the brain" in cb.check_removed_region(small, brain, affine)[0]
    assert cb.check_removed_region(np.zeros_like(region), brain, affine) == ["no voxel removed"]


def test_split_brain_partitions_a_brain_whose_csf_wraps_the_region(tmp_path):
    # a ball of brain with a CSF shell (part of the mask) all around: the removed region at its
    # bottom is then enclosed by the rest, which must not "fill" it back
    idx = np.indices((40, 40, 40)) - 19.5
    r = np.sqrt((idx**2).sum(0))
    brain = r < 17
    region = (np.sqrt(idx[0] ** 2 + idx[1] ** 2 + (idx[2] + 10) ** 2) < 6) & (r < 15)
    warped = region.astype(np.float32) * 0.8
    affine = np.eye(4)
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), affine), tmp_path / "brain.nii.gz")
    nib.save(nib.Nifti1Image(warped, affine), tmp_path / "warped.nii.gz")
    removed, cerebrum = cb.split_brain(
        str(tmp_path / "brain.nii.gz"),
        str(tmp_path / "warped.nii.gz"),
        str(tmp_path / "removed.nii.gz"),
        str(tmp_path / "cerebrum.nii.gz"),
    )
    removed = np.asanyarray(nib.load(removed).dataobj) > 0
    cerebrum = np.asanyarray(nib.load(cerebrum).dataobj) > 0
    np.testing.assert_array_equal(removed, region)
    assert not (removed & cerebrum).any() and ((removed | cerebrum) == brain).all()


def _adult_labels(tmp_path, seed: int, shift_mm=(0.0, 0.0, 0.0)):
    """A phantom's FreeSurfer-coded label map on its own 1 mm grid, stored ``shift_mm`` away
    from its head frame (world = head + shift)."""
    subject = sample_subject(seed, 0, SHAPE)
    shape = tuple(int(s) + 16 for s in SHAPE)
    vox2head = np.eye(4)
    vox2head[:3, 3] = -(np.asarray(shape) - 1) / 2
    labels = freesurfer_labels(render_classes(subject.anatomy, shape, vox2head))
    affine = vox2head.copy()
    affine[:3, 3] += shift_mm
    path = tmp_path / f"adult-{seed}.nii.gz"
    nib.save(nib.Nifti1Image(labels, affine), path)
    return path


def test_derive_template_mask_through_given_transforms(tmp_path):
    import ants

    home = tmp_path / "tf"
    write_templateflow(home, [3], seed=40, shape=SHAPE)
    stem = template_stem(home, 3)
    # the "adult" map is the template's own anatomy, shifted by a known translation: the ITK
    # transform (template physical point -> adult physical point, LPS) undoes it exactly
    shift = np.array([6.0, -4.0, 3.0])
    labels = _adult_labels(tmp_path, 43, shift)  # seed 40 + cohort 3: the template's subject
    transform = ants.create_ants_transform(
        transform_type="AffineTransform", dimension=3, translation=list(shift * [-1, -1, 1])
    )
    ants.write_transform(transform, str(tmp_path / "shift.mat"))
    out = tmp_path / "region.nii.gz"
    problems = cb.derive_template_mask(
        f"{stem}_T2w.nii.gz",
        f"{stem}_desc-brain_mask.nii.gz",
        str(out),
        labels_file=labels,
        transforms=[str(tmp_path / "shift.mat")],
    )
    assert problems == []
    derived = np.asanyarray(nib.load(out).dataobj) > 0
    truth = np.asanyarray(nib.load(f"{stem}_desc-cerebellumbrainstem_mask.nii.gz").dataobj) > 0
    assert dice(derived, truth) > 0.97, dice(derived, truth)


@pytest.mark.slow
def test_derive_template_mask_by_registration(tmp_path):
    """Another head's labels registered to the template (the route without transforms)."""
    home = tmp_path / "tf"
    write_templateflow(home, [3], seed=40, shape=SHAPE)
    stem = template_stem(home, 3)
    out = tmp_path / "region.nii.gz"
    problems = cb.derive_template_mask(
        f"{stem}_T2w.nii.gz",
        f"{stem}_desc-brain_mask.nii.gz",
        str(out),
        labels_file=_adult_labels(tmp_path, 12),
        work_dir=str(tmp_path / "work"),
    )
    derived = np.asanyarray(nib.load(out).dataobj) > 0
    truth = np.asanyarray(nib.load(f"{stem}_desc-cerebellumbrainstem_mask.nii.gz").dataobj) > 0
    assert dice(derived, truth) > 0.8, dice(derived, truth)
    assert problems == []


def test_packaged_adult_labels_hold_the_region():
    img = nib.load(cb.ADULT_LABELS)
    labels = np.asanyarray(img.dataobj).astype(int).reshape(img.shape[:3])
    region = np.isin(labels, cb.FREESURFER_LABELS)
    share = region.sum() / (labels > 0).sum()
    assert 0.12 < share < 0.14  # cerebellum + brain stem of an adult brain: 12.9 %
    assert cb.check_removed_region(region, labels > 0, img.affine) == []
