"""Synthetic infant phantoms: determinism, anatomy, contrast, and both on-disk forms."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from infant_tissue import phantoms as P
from infant_tissue.anat.cerebellum import check_removed_region
from infant_tissue.labels import to_model
from infant_tissue.phantoms.geometry import rotation_matrix

SHAPE = (40, 44, 40)
SEED = 7
N_SUBJECTS = 3  # one of each orientation: ras, las, oblique


@pytest.fixture(scope="module")
def subjects():
    return P.sample_subjects(N_SUBJECTS, SEED, SHAPE)


@pytest.fixture(scope="module")
def iseg(subjects):
    return [P.make_iseg_subject(s) for s in subjects]


@pytest.fixture(scope="module")
def bids_root(tmp_path_factory, subjects):
    root = tmp_path_factory.mktemp("bids")
    P.write_bids_dataset(root, subjects)
    return root


def six_neighbours(mask: np.ndarray) -> np.ndarray:
    return ndimage.binary_dilation(mask, structure=ndimage.generate_binary_structure(3, 1))


# ---------------------------------------------------------------------------- determinism


def test_same_seed_same_subject(iseg):
    again = P.make_iseg_subject(P.sample_subject(SEED, 0, SHAPE))
    for name in ("t1", "t2", "labels", "affine"):
        np.testing.assert_array_equal(getattr(again, name), getattr(iseg[0], name))


def test_rendering_order_does_not_matter(subjects):
    # every rendering step has its own random stream: raw first or iSeg first gives the same
    fresh = P.sample_subject(SEED, 1, SHAPE)
    P.make_bids_subject(fresh)
    np.testing.assert_array_equal(
        P.make_iseg_subject(fresh).t1, P.make_iseg_subject(subjects[1]).t1
    )


def test_subjects_differ_by_index_and_seed(iseg):
    other_seed = P.make_iseg_subject(P.sample_subject(SEED + 1, 0, SHAPE))
    for a, b in [(iseg[0], iseg[1]), (iseg[0], other_seed)]:
        assert np.mean(a.labels != b.labels) > 0.05
        assert not np.array_equal(a.t1, b.t1)


def test_demographics(subjects):
    for s in subjects:
        assert 5.0 <= s.age_months <= 7.0
        assert s.sex in ("F", "M")
    assert [s.acquisition.orientation for s in subjects] == ["ras", "las", "oblique"]


def test_invalid_requests_raise():
    with pytest.raises(ValueError, match="at least"):
        P.sample_subject(0, 0, (16, 40, 40))
    with pytest.raises(ValueError, match="n_subjects"):
        P.sample_subjects(0, 0, SHAPE)


# ---------------------------------------------------------------------------- anatomy


def test_all_tissues_present_with_plausible_fractions(iseg):
    for volumes in iseg:
        labels = volumes.labels
        assert set(np.unique(labels)) == {0, 1, 2, 3}
        brain = labels > 0
        fractions = [np.mean(labels[brain] == k) for k in (1, 2, 3)]
        csf, gm, wm = fractions
        # a 2-3 mm ribbon on a ~15 mm brain: more GM, less WM than at full size (see below)
        assert 0.05 < csf < 0.4 and 0.2 < gm < 0.6 and 0.15 < wm < 0.7, fractions
        # the brain fills the grid without touching its border
        assert brain.mean() > 0.25
        for axis in range(3):
            assert not np.take(brain, [0, -1], axis=axis).any()


def test_full_size_fractions_are_infant_like():
    volumes = P.make_iseg_subject(P.sample_subject(SEED, 0, P.DEFAULT_SHAPE))
    brain = volumes.labels > 0
    csf, gm, wm = (np.mean(volumes.labels[brain] == k) for k in (1, 2, 3))
    assert 0.1 < csf < 0.3 and 0.25 < gm < 0.55 and 0.3 < wm < 0.6, (csf, gm, wm)
    assert 250e3 < brain.sum() < 600e3  # mm^3: a small 6-month brain (smaller than real)


def test_gm_is_a_ribbon_around_wm(iseg):
    for volumes in iseg:
        labels = volumes.labels
        wm = labels == 3
        outside_or_csf = (labels == 0) | (labels == 1)
        # WM touches CSF only at the ventricles: GM separates it from the outside
        touching = wm & six_neighbours(outside_or_csf)
        assert touching.sum() < 0.05 * wm.sum()
        # ... and touches the background only where the brain stem (removed) meets it
        assert not (wm & six_neighbours((labels == 0) & ~volumes.hindbrain)).any()
        # cortical GM is thin: almost all GM lies within a few mm of CSF or background
        gm = labels == 2
        depth = ndimage.distance_transform_edt(labels > 1)  # distance to CSF/background
        assert np.mean(depth[gm] <= 3.5) > 0.8


def test_folding_puts_csf_inside_the_brain_hull(iseg):
    # sulci: CSF voxels enclosed by the brain (not reachable from outside through CSF alone
    # would be ventricles); check CSF exists in the outer shell well below the hull surface
    labels = iseg[0].labels
    brain_hull = ndimage.binary_fill_holes(ndimage.binary_closing(labels > 0, iterations=3))
    depth_in_hull = ndimage.distance_transform_edt(brain_hull)
    sulcal = (labels == 1) & (depth_in_hull > 3) & (depth_in_hull < 8)
    assert sulcal.sum() > 50


# ---------------------------------------------------------------------------- contrast


def tissue_means(image, labels):
    return [float(image[labels == k].mean()) for k in (1, 2, 3)]


def test_isointense_contrast_iseg(iseg):
    for volumes in iseg:
        csf1, gm1, wm1 = tissue_means(volumes.t1, volumes.labels)
        csf2, gm2, wm2 = tissue_means(volumes.t2, volumes.labels)
        assert abs(wm1 - gm1) / gm1 < 0.10  # isointense T1w
        assert csf1 < 0.75 * gm1  # CSF dark in T1w
        assert csf2 > 1.1 * gm2  # and bright in T2w
        assert wm2 < gm2  # WM slightly darker than GM in T2w
        assert wm2 > 0.75 * gm2


def test_contrast_and_tissues_hold_for_many_seeds_at_the_smallest_size():
    for seed in range(12):
        volumes = P.make_iseg_subject(P.sample_subject(seed, seed % 3, (P.MIN_SIDE,) * 3))
        labels = volumes.labels
        assert set(np.unique(labels)) == {0, 1, 2, 3}, seed
        csf1, gm1, wm1 = tissue_means(volumes.t1, labels)
        csf2, gm2, wm2 = tissue_means(volumes.t2, labels)
        assert abs(wm1 - gm1) / gm1 < 0.10 and csf1 < gm1 and csf2 > gm2 > wm2, seed
        for axis in range(3):
            assert not np.take(labels > 0, [0, -1], axis=axis).any(), seed


def test_iseg_form_is_skull_stripped(iseg):
    for volumes in iseg:
        outside = volumes.labels == 0
        assert (volumes.t1[outside] == 0).all() and (volumes.t2[outside] == 0).all()
        assert (volumes.t1[~outside] > 0).mean() > 0.99
        assert volumes.t1.dtype == np.int16 and volumes.labels.dtype == np.uint8


def test_bias_field_and_noise_are_present(subjects):
    volumes = P.make_iseg_subject(subjects[0])
    wm = ndimage.binary_erosion(volumes.labels == 3, iterations=2)
    values = volumes.t1[wm].astype(float)
    assert values.std() > 0.01 * values.mean()  # not piecewise constant


# ---------------------------------------------------------------------------- iSeg files


@pytest.mark.parametrize(("analyze", "nifti"), [(True, False), (False, True)])
def test_iseg_files_round_trip(tmp_path, iseg, analyze, nifti):
    written = P.write_iseg_subject(tmp_path, 5, iseg[0], analyze=analyze, nifti=nifti)
    suffix = ".hdr" if analyze else ".nii.gz"
    assert sorted(p.name for p in written) == sorted(
        f"subject-5-{k}{suffix}" for k in ("T1", "T2", "label")
    )
    if analyze:
        assert (tmp_path / "subject-5-label.img").is_file()
    label_image = nib.load(tmp_path / f"subject-5-label{suffix}")
    raw = np.asanyarray(label_image.dataobj)
    assert set(np.unique(raw)) == {0, 10, 150, 250}
    np.testing.assert_array_equal(to_model(raw, "iseg"), iseg[0].labels)
    np.testing.assert_allclose(label_image.affine, iseg[0].affine)
    np.testing.assert_array_equal(
        np.asanyarray(nib.load(tmp_path / f"subject-5-T1{suffix}").dataobj), iseg[0].t1
    )
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_iseg_dataset_writer(tmp_path, subjects):
    written = P.write_iseg_dataset(tmp_path, subjects[:1], nifti=True)
    assert {p.name for p in written} == {
        f"subject-1-{k}{s}" for k in ("T1", "T2", "label") for s in (".hdr", ".nii.gz")
    }


# ---------------------------------------------------------------------------- BIDS tree


def read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def test_bids_tree_layout_and_metadata(bids_root, subjects):
    description = json.loads((bids_root / "dataset_description.json").read_text())
    assert description["DatasetType"] == "raw" and description["BIDSVersion"]
    assert (bids_root / "README").is_file()
    participants = read_tsv(bids_root / "participants.tsv")
    assert [row["participant_id"] for row in participants] == ["sub-01", "sub-02", "sub-03"]
    assert all(5.0 <= float(row["age"]) <= 7.0 for row in participants)
    assert json.loads((bids_root / "participants.json").read_text())["age"]["Units"] == "months"
    for s in subjects:
        sub = f"sub-{s.participant}"
        sessions = read_tsv(bids_root / sub / f"{sub}_sessions.tsv")
        assert sessions == [{"session_id": "ses-01", "age": f"{s.age_months:.1f}"}]
        anat = bids_root / sub / "ses-01" / "anat"
        assert sorted(p.name for p in anat.iterdir()) == sorted(
            f"{sub}_ses-01_{suffix}"
            for suffix in ("T1w.nii.gz", "T1w.json", "T2w.nii.gz", "T2w.json")
        )
    derivatives = bids_root / "derivatives" / "manual"
    assert (
        json.loads((derivatives / "dataset_description.json").read_text())["DatasetType"]
        == "derivative"
    )
    assert read_tsv(derivatives / "desc-manual_dseg.tsv") == [
        {"index": "1", "name": "GM"},
        {"index": "2", "name": "WM"},
        {"index": "3", "name": "CSF"},
    ]
    assert not list(bids_root.rglob("*.tmp-*"))


def test_bids_images_grids_and_orientations(bids_root, subjects):
    for s in subjects:
        sub = f"sub-{s.participant}"
        anat = bids_root / sub / "ses-01" / "anat"
        t1w = nib.load(anat / f"{sub}_ses-01_T1w.nii.gz")
        t2w = nib.load(anat / f"{sub}_ses-01_T2w.nii.gz")
        dseg = nib.load(
            bids_root
            / "derivatives"
            / "manual"
            / sub
            / "ses-01"
            / "anat"
            / f"{sub}_ses-01_desc-manual_dseg.nii.gz"
        )
        zooms1, zooms2 = t1w.header.get_zooms(), t2w.header.get_zooms()
        assert all(0.8 - 1e-6 <= z <= 1.0 + 1e-6 for z in zooms1)
        assert not np.allclose(zooms1, zooms2)  # T2w on another grid
        assert t1w.shape != t2w.shape
        assert dseg.shape == t1w.shape and np.allclose(dseg.affine, t1w.affine)
        assert int(t1w.header["sform_code"]) == 1 and int(t1w.header["qform_code"]) == 1
        codes = nib.aff2axcodes(t1w.affine)
        direction = t1w.affine[:3, :3] / np.asarray(zooms1)
        orientation = s.acquisition.orientation
        if orientation == "ras":
            assert codes == ("R", "A", "S") and np.allclose(direction, np.eye(3))
        elif orientation == "las":
            assert codes == ("L", "A", "S")
        else:
            assert not np.allclose(np.abs(direction), np.eye(3), atol=0.05)  # oblique
        labels = to_model(np.asanyarray(dseg.dataobj), "nipreps")
        assert set(np.unique(labels)) == {0, 1, 2, 3}
        # the head with its skull and scalp is in the T1w image: bright voxels outside the brain
        t1 = np.asanyarray(t1w.dataobj)
        assert (t1[(labels == 0)] > 300).sum() > 0.2 * (labels > 0).sum()
        csf1, gm1, wm1 = tissue_means(t1, labels)
        assert abs(wm1 - gm1) / gm1 < 0.10 and csf1 < 0.75 * gm1


def world_points(image: nib.Nifti1Image, mask: np.ndarray) -> np.ndarray:
    ijk = np.argwhere(mask).T
    return image.affine[:3, :3] @ ijk + image.affine[:3, 3:4]


def t2w_label_correlation(t1w, t2w, labels, t1w_to_t2w) -> float:
    """Correlation of the T2w image, sampled at the T1w voxels through ``t1w_to_t2w`` (world
    mm), with a T2w-like rendering of the T1w-space labels, over the brain."""
    expected = np.choose(labels, [0.0, 1.0, 0.6, 0.5])  # bg, CSF, GM, WM
    brain = labels > 0
    vox = np.linalg.inv(t2w.affine) @ t1w_to_t2w @ t1w.affine
    ijk = np.argwhere(brain).T
    coords = vox[:3, :3] @ ijk + vox[:3, 3:4]
    sampled = ndimage.map_coordinates(np.asanyarray(t2w.dataobj).astype(float), coords, order=1)
    return float(np.corrcoef(sampled, expected[brain])[0, 1])


def test_t2w_maps_onto_t1w_through_recorded_transform(bids_root, subjects):
    for s in subjects:
        sub = f"sub-{s.participant}"
        anat = bids_root / sub / "ses-01" / "anat"
        t1w = nib.load(anat / f"{sub}_ses-01_T1w.nii.gz")
        t2w = nib.load(anat / f"{sub}_ses-01_T2w.nii.gz")
        sidecar = json.loads((anat / f"{sub}_ses-01_T2w.json").read_text())
        t2w_to_t1w = np.asarray(sidecar["PhantomT2wToT1w"])
        assert t2w_to_t1w.shape == (4, 4)
        rotation = t2w_to_t1w[:3, :3]
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-9)  # rigid
        assert not np.allclose(t2w_to_t1w, np.eye(4), atol=0.5)  # the head did move

        # landmark 1: centroid of the whole head (everything above the noise floor)
        head1 = world_points(t1w, np.asanyarray(t1w.dataobj) > 60).mean(axis=1)
        head2 = world_points(t2w, np.asanyarray(t2w.dataobj) > 60)
        head2_in_t1 = (rotation @ head2 + t2w_to_t1w[:3, 3:4]).mean(axis=1)
        assert np.linalg.norm(head2_in_t1 - head1) < 0.5
        assert np.linalg.norm(head2.mean(axis=1) - head1) > 1.0  # without the transform: off

        # landmark 2 (tests the rotation too): T2w resampled through the transform onto the
        # T1w grid reproduces the tissue contrast of the T1w-space labels voxel by voxel
        dseg = nib.load(
            bids_root
            / "derivatives"
            / "manual"
            / sub
            / "ses-01"
            / "anat"
            / f"{sub}_ses-01_desc-manual_dseg.nii.gz"
        )
        labels = to_model(np.asanyarray(dseg.dataobj), "nipreps")
        good = t2w_label_correlation(t1w, t2w, labels, np.linalg.inv(t2w_to_t1w))
        bad = t2w_label_correlation(t1w, t2w, labels, np.eye(4))
        assert good > 0.5 and good > bad + 0.3, (good, bad)


def test_render_classes_is_grid_independent(subjects):
    # the same anatomy rendered on a 1 mm and a rotated 0.8 mm grid gives the same volumes
    anatomy = subjects[0].anatomy
    fine = np.eye(4)
    fine[:3, :3] = rotation_matrix((1, 2, 3), 20) * 0.8
    shape_fine = (60, 66, 60)
    fine[:3, 3] = -fine[:3, :3] @ ((np.asarray(shape_fine) - 1) / 2)
    coarse = P.tissue_labels(P.render_classes(anatomy, SHAPE, P.iseg_affine(SHAPE)))
    rotated = P.tissue_labels(P.render_classes(anatomy, shape_fine, fine))
    for k in (1, 2, 3):
        v_coarse = (coarse == k).sum() * 1.0
        v_fine = (rotated == k).sum() * 0.8**3
        assert v_fine == pytest.approx(v_coarse, rel=0.15)


def test_hindbrain_is_a_plausible_share_below_and_behind_the_cerebrum():
    for index in range(3):
        vols = P.make_bids_subject(P.sample_subject(SEED, index, SHAPE))
        cerebrum, hindbrain = vols.dseg > 0, vols.hindbrain
        assert not (cerebrum & hindbrain).any()
        share = hindbrain.sum() / (cerebrum.sum() + hindbrain.sum())
        assert 0.08 <= share <= 0.14, share  # cerebellum + brain stem at 6 months
        brain = cerebrum | hindbrain
        assert check_removed_region(hindbrain, brain, vols.t1w_affine) == []


def test_iseg_form_removes_the_hindbrain_unless_kept():
    subject = P.sample_subject(SEED, 0, SHAPE)
    removed, kept = P.make_iseg_subject(subject), P.make_iseg_subject(subject, keep_hindbrain=True)
    assert removed.hindbrain.sum() > 500
    assert (removed.t1[removed.hindbrain] == 0).all() and (removed.t2[removed.hindbrain] == 0).all()
    assert (kept.t1[kept.hindbrain] > 0).mean() > 0.99
    assert (removed.labels[removed.hindbrain] == 0).all()
    np.testing.assert_array_equal(removed.labels, kept.labels)


def test_skull_stripped_bids_form_keeps_the_hindbrain():
    vols = P.make_bids_subject(P.sample_subject(SEED, 1, SHAPE), skull_stripped=True)
    assert (vols.t1w[vols.hindbrain] > 0).mean() > 0.99
    assert (vols.t1w[(vols.dseg == 0) & ~vols.hindbrain] > 0).mean() < 0.05
