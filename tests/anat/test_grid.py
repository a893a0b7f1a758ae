"""The model grid: one definition for training and inference, and the way back to the T1w grid."""

from __future__ import annotations

import nibabel as nib
import numpy as np
from nibabel.processing import resample_from_to

from infant_tissue.anat.grid import model_grid, resample_to_model_grid, to_native_grid
from infant_tissue.phantoms.geometry import rotation_matrix


def _oblique_t1w(tmp_path):
    """A 0.8 mm oblique T1w grid with an ellipsoid 'brain' well inside its field of view."""
    affine = np.eye(4)
    affine[:3, :3] = rotation_matrix((1, 2, 3), 17) * 0.8
    affine[:3, 3] = [-30.0, -35.0, -28.0]
    idx = np.indices((80, 90, 76)).astype(float)
    centre = np.array([40, 45, 38])[:, None, None, None]
    brain = (((idx - centre) / np.array([22, 28, 20])[:, None, None, None]) ** 2).sum(0) < 1
    t1w = nib.Nifti1Image(np.where(brain, 500.0, 0).astype(np.float32), affine)
    nib.save(t1w, tmp_path / "t1w.nii.gz")
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), affine), tmp_path / "mask.nii.gz")
    return t1w, brain


def test_training_and_inference_use_the_same_grid(tmp_path):
    from infant_tissue.training import bids_data

    t1w, brain = _oblique_t1w(tmp_path)
    mask = nib.load(tmp_path / "mask.nii.gz")
    shape, affine = model_grid(mask)
    resample_to_model_grid(
        str(tmp_path / "t1w.nii.gz"), str(tmp_path / "t1w.nii.gz"), str(tmp_path / "mask.nii.gz"),
        str(tmp_path / "a.nii.gz"), str(tmp_path / "b.nii.gz"), str(tmp_path / "m.nii.gz"),
    )  # fmt: skip
    inference = nib.load(tmp_path / "m.nii.gz")
    assert inference.shape == shape and np.allclose(inference.affine, affine)
    assert bids_data.model_grid is model_grid  # training brings its sessions onto this grid
    assert np.allclose(np.diag(affine)[:3], 1.0) and shape[0] > 30


def test_to_native_grid_resamples_only_what_the_model_grid_reaches(tmp_path):
    t1w, brain = _oblique_t1w(tmp_path)
    shape, affine = model_grid(nib.load(tmp_path / "mask.nii.gz"))
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=shape).astype(np.float32)
    labels = probs.argmax(-1).astype(np.uint8)
    nib.save(nib.Nifti1Image(probs, affine), tmp_path / "p.nii.gz")
    nib.save(nib.Nifti1Image(labels, affine), tmp_path / "l.nii.gz")
    to_native_grid(
        str(tmp_path / "p.nii.gz"), str(tmp_path / "l.nii.gz"), str(tmp_path / "t1w.nii.gz"),
        str(tmp_path / "np.nii.gz"), str(tmp_path / "nl.nii.gz"),
    )  # fmt: skip
    # the direct computation over the whole native grid
    target = (t1w.shape, t1w.affine)
    full = np.stack(
        [
            np.asanyarray(
                resample_from_to(nib.Nifti1Image(probs[..., c], affine), target, order=1).dataobj
            )
            for c in range(4)
        ],
        axis=-1,
    )
    onehot = np.stack(
        [
            np.asanyarray(
                resample_from_to(
                    nib.Nifti1Image((labels == c).astype(np.float32), affine), target, order=1
                ).dataobj
            )
            for c in range(4)
        ]
    )
    direct = np.argmax(onehot, 0)
    direct[onehot.max(0) <= 0] = 0
    got_p = nib.load(tmp_path / "np.nii.gz").get_fdata()
    got_l = np.asanyarray(nib.load(tmp_path / "nl.nii.gz").dataobj)
    np.testing.assert_allclose(got_p, full, atol=1e-5)  # coordinates computed per sub-grid
    np.testing.assert_array_equal(got_l, direct)
    assert (got_l > 0).sum() > 0.9 * brain.sum()
