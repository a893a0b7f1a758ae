"""Disagreement and entropy maps of the ensemble: a hand-computed 3-member case, the streaming
accumulator against the direct computation, and what the predictor returns."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from infant_tissue.inference import EnsembleAccumulator, disagreement, normalised_entropy


def _member(labels_probs):
    """(K=4, 1, 1, N) probabilities from one row of per-voxel probability vectors."""
    return torch.tensor(np.array(labels_probs, np.float32).T[:, None, None, :])


# Three members, four voxels. Each member's own label is the argmax of its row.
M1 = [[0.0, 0.7, 0.2, 0.1], [0.1, 0.1, 0.7, 0.1], [0.0, 0.0, 0.4, 0.6], [0.0, 0.0, 0.0, 0.0]]
M2 = [[0.0, 0.6, 0.3, 0.1], [0.1, 0.1, 0.2, 0.6], [0.0, 0.0, 0.6, 0.4], [0.0, 0.0, 0.0, 0.0]]
M3 = [[0.0, 0.8, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.0, 0.3, 0.3, 0.4], [0.0, 0.0, 0.0, 0.0]]


@pytest.mark.parametrize("vote", ["hard", "soft"])
def test_three_members_by_hand(vote):
    acc = EnsembleAccumulator(4, (1, 1, 4), torch.device("cpu"), vote)
    for member in (M1, M2, M3):
        acc.add(_member(member))
    labels = acc.labels().numpy().ravel().tolist()
    d = acc.disagreement().numpy().ravel()
    # voxel 0: labels 1, 1, 1 -> all agree. voxel 1: 2, 3, 1 -> three-way tie; the hard vote
    # takes the lowest (1); the soft vote the mean (.1, .3, .333, .267) -> 2: either way 2 of 3
    # members disagree. voxel 2: 3, 2, 3 -> hard 3 (1 of 3 disagrees); soft mean
    # (0, .1, .433, .467) -> 3. voxel 3: never covered -> label 0, no disagreement.
    assert labels == [1, 1 if vote == "hard" else 2, 3, 0]
    np.testing.assert_allclose(d, [0.0, 2 / 3, 1 / 3, 0.0], atol=1e-6)
    # entropy of the mean probabilities over log 4
    mean0 = np.array([0.0, 0.7, 0.2, 0.1])
    expected0 = -(mean0[mean0 > 0] * np.log(mean0[mean0 > 0])).sum() / math.log(4)
    e = acc.entropy().numpy().ravel()
    assert e[0] == pytest.approx(expected0, abs=1e-6)
    mean1 = np.array([0.1, 0.3, 1 / 3, 0.8 / 3])
    assert e[1] == pytest.approx(-(mean1 * np.log(mean1)).sum() / math.log(4), abs=1e-6)
    assert e[3] == 0.0


def test_streaming_equals_direct_computation():
    rng = np.random.default_rng(12)
    members = rng.dirichlet(np.ones(4) * 0.7, size=(7, 5, 6, 4)).transpose(0, 4, 1, 2, 3)
    members = members.astype(np.float32)
    members[:, :, 0, 0, :] = 0  # a row never covered by a window
    acc = EnsembleAccumulator(4, (5, 6, 4), torch.device("cpu"), "hard")
    for member in members:
        acc.add(torch.from_numpy(member))
    labels = acc.labels().numpy()
    own = np.argmax(members, axis=1)  # every member's own label map, kept here only
    np.testing.assert_allclose(acc.disagreement().numpy(), disagreement(own, labels), atol=1e-6)
    np.testing.assert_allclose(
        acc.entropy().numpy(), normalised_entropy(members.mean(axis=0)), atol=1e-5
    )
    assert acc.disagreement().numpy()[0, 0].max() == 0.0


def test_disagreement_of_identical_members_is_zero_and_entropy_bounds():
    p = np.full((4, 2, 2, 2), 0.25, np.float32)
    acc = EnsembleAccumulator(4, (2, 2, 2), torch.device("cpu"), "soft")
    for _ in range(3):
        acc.add(torch.from_numpy(p))
    assert acc.disagreement().abs().max() == 0
    np.testing.assert_allclose(acc.entropy().numpy(), 1.0, atol=1e-6)  # uniform: maximal


def test_predictor_and_files_write_the_maps(tiny_bundle, tiny_bundle_1, tmp_path):
    import json

    import nibabel as nib

    from infant_tissue.inference import segment_with_info
    from infant_tissue.inference.files import run_segmentation

    from .conftest import synthetic_head

    t1, t2 = synthetic_head((24, 24, 24))
    result = segment_with_info(t1, t2, tiny_bundle, mode="stride16", device="cpu")
    assert result.disagreement is not None and result.entropy is not None
    assert result.disagreement.shape == t1.shape
    assert set(np.unique(np.round(result.disagreement * 3, 4))) <= {0.0, 1.0, 2.0}
    assert 0 <= result.entropy.min() and result.entropy.max() <= 1
    single = segment_with_info(t1, t2, tiny_bundle_1, mode="stride16", device="cpu")
    assert single.disagreement is None and single.entropy is not None

    affine = np.eye(4)
    for name, data in (("t1", t1), ("t2", t2), ("mask", (t1 > 0).astype(np.uint8))):
        nib.save(nib.Nifti1Image(data.astype(np.float32), affine), tmp_path / f"{name}.nii.gz")
    out = tmp_path / "probabilities.nii.gz"
    info = run_segmentation(
        str(tmp_path / "t1.nii.gz"), str(tmp_path / "t2.nii.gz"), str(tiny_bundle.path), str(out),
        str(tmp_path / "info.json"), mask_file=str(tmp_path / "mask.nii.gz"), mode="stride16",
        device="cpu",
    )  # fmt: skip
    maps = np.asanyarray(nib.load(tmp_path / "probabilities_uncertainty.nii.gz").dataobj)
    assert maps.shape == (*t1.shape, 2)
    outside = t1 == 0
    assert maps[outside].max() == 0  # nothing outside what was segmented
    assert info["window_coverage"] == pytest.approx(1.0)
    assert info["disagreement_available"] is True
    assert json.loads((tmp_path / "info.json").read_text())["window_coverage"] == 1.0
