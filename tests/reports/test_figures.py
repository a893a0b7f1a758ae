"""Display images: cropped and subsampled for speed, world coordinates unchanged."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from infant_tissue.reports import figures


def test_display_images_crop_and_subsample(tmp_path, monkeypatch):
    affine = np.diag([0.8, 0.8, 0.8, 1.0])
    affine[:3, 3] = [-40, -50, -30]
    mask = np.zeros((100, 110, 90), np.uint8)
    mask[20:80, 30:90, 10:70] = 1
    t1w = np.random.default_rng(0).normal(100, 5, mask.shape).astype(np.float32)
    files = {}
    for key, data in (("mask", mask), ("t1w", t1w)):
        files[key] = tmp_path / f"{key}.nii.gz"
        nib.save(nib.Nifti1Image(data, affine), files[key])
    files["volumes"] = tmp_path / "volumes.tsv"  # not an image: ignored
    monkeypatch.setattr(figures, "MAX_DISPLAY_VOXELS", 30_000)
    shown = figures.display_images(files, margin=2)
    assert set(shown) == {"mask", "t1w"}
    step = int(round(shown["t1w"].header.get_zooms()[0] / 0.8))
    assert step > 1 and np.prod(shown["t1w"].shape) <= 30_000 * 1.5
    assert shown["mask"].dataobj.dtype == np.uint8
    # the first displayed voxel is original voxel (18, 28, 8): same place in the world
    first = nib.affines.apply_affine(shown["t1w"].affine, [0, 0, 0])
    assert np.allclose(first, nib.affines.apply_affine(affine, [18, 28, 8]))
    assert np.isclose(shown["t1w"].get_fdata()[0, 0, 0], t1w[18, 28, 8])
    # cuts spread over the brain, in world millimetres
    cuts = figures.brain_cuts(shown["mask"], 2, 5)
    assert -30 + 0.8 * 10 <= cuts[0] < cuts[-1] <= -30 + 0.8 * 70


def test_brain_window_ignores_bright_outliers():
    data = np.full((20, 20, 20), 100.0, np.float32)
    data[5:15, 5:15, 5:15] = np.linspace(200, 300, 1000).reshape(10, 10, 10)
    data[10, 10, 10] = 5000.0  # one vessel-bright voxel
    mask = np.zeros(data.shape, np.uint8)
    mask[5:15, 5:15, 5:15] = 1
    low, high = figures.brain_window(
        nib.Nifti1Image(data, np.eye(4)), nib.Nifti1Image(mask, np.eye(4))
    )
    assert 200 <= low < 205 and 295 < high < 310
