"""Hard vote (ties to the lowest label, as the reference) and soft vote."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infant_tissue.inference import EnsembleAccumulator, majority_vote, soft_vote

from .reference_loop import vote as reference_vote


def test_majority_and_ties_to_the_lowest_label():
    maps = np.array(
        [
            [[[3, 1, 2, 0, 3]]],
            [[[3, 2, 1, 3, 2]]],
            [[[1, 2, 3, 3, 1]]],
            [[[1, 1, 3, 0, 0]]],
        ]
    )
    # voxel 0: 3,3,1,1 -> tie 1/3 -> 1; voxel 1: 1,2,2,1 -> tie -> 1; voxel 2: 2,1,3,3 -> 3;
    # voxel 3: 0,3,3,0 -> tie -> 0; voxel 4: 3,2,1,0 -> four-way tie -> 0
    assert majority_vote(maps).ravel().tolist() == [1, 1, 3, 0, 0]
    assert majority_vote(maps).dtype == np.uint8
    np.testing.assert_array_equal(majority_vote(maps), reference_vote(list(maps)))


def test_majority_vote_random_maps_match_reference():
    rng = np.random.default_rng(0)
    maps = rng.integers(0, 4, size=(4, 6, 7, 8))
    np.testing.assert_array_equal(majority_vote(maps), reference_vote(list(maps)))


def test_soft_vote_uses_mean_probability():
    p = np.zeros((2, 4, 1, 1, 2), np.float32)
    p[0, :, 0, 0, 0] = [0.0, 0.6, 0.4, 0.0]
    p[1, :, 0, 0, 0] = [0.0, 0.0, 0.45, 0.55]  # hard vote would tie (1 vs 3 -> 1); soft: 2
    p[0, :, 0, 0, 1] = [0.0, 0.5, 0.5, 0.0]  # exact tie -> lowest
    p[1, :, 0, 0, 1] = [0.0, 0.5, 0.5, 0.0]
    assert soft_vote(p).ravel().tolist() == [2, 1]


@pytest.mark.parametrize("vote", ["hard", "soft"])
def test_accumulator_matches_array_votes(vote):
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(4), size=(5, 3, 4, 5)).transpose(0, 4, 1, 2, 3).astype(np.float32)
    probs[:, :, 0, 0, 0] = 0  # a count-0 voxel in every member
    acc = EnsembleAccumulator(4, (3, 4, 5), torch.device("cpu"), vote)
    for member in probs:
        acc.add(torch.from_numpy(member))
    labels = acc.labels().numpy()
    if vote == "hard":
        expected = majority_vote(np.argmax(probs, axis=1))
    else:
        expected = soft_vote(probs)
    np.testing.assert_array_equal(labels, expected)
    assert labels[0, 0, 0] == 0
    np.testing.assert_allclose(acc.probabilities().numpy(), probs.mean(0), atol=1e-7)


def test_bad_vote_name():
    with pytest.raises(ValueError, match="hard"):
        EnsembleAccumulator(4, (2, 2, 2), torch.device("cpu"), "average")
