"""Config, schedule, loss terms, data loading, folds and patch sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from infant_tissue.nn import build_model
from infant_tissue.training import (
    TrainingConfig,
    find_iseg_subjects,
    load_iseg_subject,
    split_folds,
)
from infant_tissue.training.data import map_iseg_labels, zscore_nonzero
from infant_tissue.training.losses import cosine_annealing_lr, keras_l2_penalty, regularised_kernels
from infant_tissue.training.sampling import PatchSampler, augment_patch, valid_starts

from .synthetic import shell_subject, write_iseg_folder


def test_defaults_are_the_paper_schedule():
    c = TrainingConfig()
    assert (c.patch_size, c.batch_size, c.epochs, c.patches_per_epoch) == (32, 16, 500, 1000)
    assert (c.lr_max, c.lr_min, c.weight_decay, c.architecture) == (
        3e-4,
        1e-6,
        1e-4,
        "dunet-mixacb",
    )


def test_config_files_and_validation(tmp_path):
    (tmp_path / "c.yaml").write_text("epochs: 3\nbatch_size: 2\n")
    assert TrainingConfig.from_file(tmp_path / "c.yaml").epochs == 3
    (tmp_path / "c.json").write_text('{"epoch": 3}')
    with pytest.raises(ValueError, match="unknown training option"):
        TrainingConfig.from_file(tmp_path / "c.json")
    with pytest.raises(ValueError, match="multiple of 8"):
        TrainingConfig(patch_size=20)
    with pytest.raises(ValueError, match="fold"):
        TrainingConfig(folds=2, fold=2)


def test_reference_cosine_schedule():
    lr = lambda e: cosine_annealing_lr(e, 3e-4, 1e-6)  # noqa: E731
    assert lr(1) == pytest.approx(3e-4)
    assert lr(51) == pytest.approx(3e-4)  # warm restart every 50 epochs
    assert lr(26) == pytest.approx((3e-4 + 1e-6) / 2)
    # the reference's (epoch - 1) puts epoch 0 at the end of a cycle
    assert lr(0) == pytest.approx((3e-4 - 1e-6) / 2 * (math.cos(math.pi * 49 / 50) + 1) + 1e-6)


def test_l2_penalty_covers_the_reference_kernels():
    model = build_model("dunet-mixacb", init_features=8, growth_rate=4)
    kernels = regularised_kernels(model)
    ids = {id(k) for k in kernels}
    assert id(model.seg_conv.weight) not in ids
    assert id(model.trans4.deconv.convtrans.weight) in ids
    assert id(model.dense1.denselayer0.aconv.conv.groups[1].branches["nx1xn"].conv.weight) in ids
    assert not any(p.dim() == 1 for p in kernels)  # no biases, no BatchNorm
    expected = 1e-4 * sum(float((k.detach() ** 2).sum()) for k in kernels)
    assert keras_l2_penalty(kernels, 1e-4).item() == pytest.approx(expected, rel=1e-6)


def test_iseg_folder_round_trip(tmp_path):
    write_iseg_folder(tmp_path, seeds=[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], size=20)
    files = find_iseg_subjects(tmp_path)
    assert [f.name for f in files][:3] == [
        "subject-1-T1.hdr",
        "subject-2-T1.hdr",
        "subject-3-T1.hdr",
    ]
    assert files[-1].name == "subject-10-T1.hdr"
    s = load_iseg_subject(files[0])
    assert s.image.shape == (2, 20, 20, 20) and s.image.dtype == np.float32
    assert set(np.unique(s.label)) == {0, 1, 2, 3}
    brain = s.image[0][s.brain]
    assert abs(brain.mean()) < 1e-5 and abs(brain.std() - 1) < 1e-4


def test_iseg_errors(tmp_path):
    write_iseg_folder(tmp_path, seeds=[1], size=12, fmt="nifti")
    (tmp_path / "subject-1-T2.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match="subject-1-T2.nii.gz"):
        load_iseg_subject(tmp_path / "subject-1-T1.nii.gz")
    with pytest.raises(ValueError, match="not in the 'iseg' coding"):
        map_iseg_labels(np.array([0, 10, 77]))
    with pytest.raises(ValueError, match="no voxel > 0"):
        zscore_nonzero(np.zeros((3, 3, 3)))


def test_two_fold_split_by_subject():
    names = [f"subject-{i}" for i in range(1, 11)]
    a_train, a_val = split_folds(names, 2, 0, seed=7)
    b_train, b_val = split_folds(names, 2, 1, seed=7)
    assert len(a_val) == len(b_val) == 5
    assert set(a_val) | set(b_val) == set(names) and not set(a_val) & set(b_val)
    assert sorted(a_train) == sorted(b_val)
    assert split_folds(names, 2, 0, seed=7) == (a_train, a_val)
    assert split_folds(names, 1, 0, seed=7) == (names, [])


def test_valid_starts_equal_the_reference_rejection_rule():
    rng = np.random.default_rng(0)
    brain = np.zeros((20, 19, 18), bool)
    brain[tuple(rng.integers(0, 18, (3, 4)))] = True
    size = 8
    expected = {
        (x, y, z)
        for x in range(20 - size)
        for y in range(19 - size)
        for z in range(18 - size)
        if brain[x : x + size, y : y + size, z : z + size].any()
    }
    assert {tuple(s) for s in valid_starts(brain, size)} == expected


@pytest.mark.parametrize("mode", ["brain", "balanced"])
def test_sampler_patches(mode):
    subject = shell_subject(3, size=28)
    sampler = PatchSampler([subject], 16, np.random.default_rng(0), mode=mode)
    images, labels = sampler.sample(12)
    assert images.shape == (12, 2, 16, 16, 16) and labels.shape == (12, 16, 16, 16)
    assert images.dtype == np.float32 and labels.dtype == np.int64
    assert all((lab > 0).any() for lab in labels)
    again = PatchSampler([subject], 16, np.random.default_rng(0), mode=mode).sample(12)
    assert np.array_equal(again[0], images)


def test_augmentation_moves_image_and_label_together():
    rng = np.random.default_rng(1)
    label = rng.integers(0, 4, (8, 8, 8))
    image = np.stack([label.astype(np.float32), -label.astype(np.float32)])
    for _ in range(20):
        img, lab = augment_patch(image, label, rng)
        assert np.array_equal(img[0], lab) and np.array_equal(img[1], -lab)


def test_zscore_matches_reference_formula():
    img = np.random.default_rng(2).uniform(0, 100, (6, 6, 6))
    img[:2] = 0
    mask = img > 0
    expected = (img - img[mask].mean()) / img[mask].std() * mask
    assert np.allclose(zscore_nonzero(img), expected, atol=1e-5)
    assert torch.from_numpy(zscore_nonzero(img)).dtype == torch.float32
