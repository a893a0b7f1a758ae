"""End-to-end semantics of ``segment``: faithful equals the reference loop, skip rule, count-0
voxels, padding, votes, fast modes, post-processing and devices."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from infant_tissue.inference import (
    FAST_ALIAS,
    Predictor,
    majority_vote,
    segment,
    segment_with_info,
)

from . import reference_loop as ref
from .conftest import synthetic_head

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def head():
    return synthetic_head((40, 48, 36))


@pytest.fixture(scope="module")
def faithful(head, tiny_bundle):
    torch.set_num_threads(1)
    t1, t2 = head
    return segment_with_info(t1, t2, tiny_bundle, device="cpu", progress=False)


@pytest.fixture(scope="module")
def reference_members(head, tiny_models):
    torch.set_num_threads(1)
    t1, t2 = head
    return [ref.predict_member(m, t1, t2) for m in tiny_models]


def test_faithful_equals_the_reference_loop(faithful, reference_members):
    expected = np.mean(reference_members, axis=0).transpose(3, 0, 1, 2)
    assert faithful.probabilities.shape == (4, 40, 48, 36)
    assert faithful.probabilities.dtype == np.float32
    assert np.abs(faithful.probabilities - expected).max() <= 1e-5
    member_labels = [np.argmax(p, axis=-1) for p in reference_members]
    voted = ref.vote(member_labels)
    # Ignore voxels where a member's top two probabilities are within float noise.
    tops = [np.sort(p, axis=-1) for p in reference_members]
    clear = np.all([t[..., -1] - t[..., -2] > 1e-5 for t in tops], axis=0)
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(faithful.labels[clear], voted[clear])
    assert faithful.labels.dtype == np.uint8


def test_result_records_how_it_was_made(faithful):
    info = faithful.info
    assert info["mode"] == "faithful" and info["faithful"] is True
    assert info["vote"] == "hard" and info["window_mask"] == "normalised"
    assert info["members_used"] == info["members_total"] == 3
    # 40 -> [0, 8], 48 -> [0, 8, 16], 36 -> [0, 4]
    assert info["windows_total"] == 12 and info["windows_evaluated"] <= 12
    assert faithful.mode == "faithful" and faithful.vote == "hard"


def test_segment_returns_labels_and_probabilities_and_accepts_a_path(head, tiny_bundle_1):
    t1, t2 = head
    labels, probs = segment(t1, t2, str(tiny_bundle_1.path), device="cpu", progress=False)
    expected = ref.predict_member(tiny_bundle_1.build_member(0), t1, t2)
    assert labels.shape == (40, 48, 36) and probs.shape == (4, 40, 48, 36)
    assert np.abs(probs - expected.transpose(3, 0, 1, 2)).max() <= 1e-5


def _skip_rule_volume():
    # Brain everywhere on a 32×32×48 grid; bright (z > 0) only in z < 8. The windows starting
    # at z = 8 and z = 16 hold only brain voxels with z-score <= 0: the reference skips them.
    t1 = np.full((32, 32, 48), 10.0)
    t1[:, :, :8] = 100.0
    t2 = np.full((32, 32, 48), 50.0)
    t2[::2] = 60.0
    return t1, t2


def test_skip_rule_and_count_zero_voxels(tiny_bundle_1):
    t1, t2 = _skip_rule_volume()
    model = tiny_bundle_1.build_member(0)
    result = segment_with_info(t1, t2, tiny_bundle_1, device="cpu", progress=False)
    assert (result.info["windows_total"], result.info["windows_evaluated"]) == (3, 1)
    # Voxels z >= 32 are brain but no evaluated window covers them: probability 0, label 0.
    assert result.probabilities[:, :, :, 32:].max() == 0
    assert (result.labels[:, :, 32:] == 0).all()
    covered = result.probabilities[:, :, :, :32].sum(0)
    np.testing.assert_allclose(covered, 1.0, atol=1e-5)
    expected = ref.predict_member(model, t1, t2)
    assert np.abs(result.probabilities - expected.transpose(3, 0, 1, 2)).max() <= 1e-5

    brain = segment_with_info(
        t1, t2, tiny_bundle_1, device="cpu", window_mask="brain", progress=False
    )
    assert brain.info["windows_evaluated"] == 3 and brain.info["window_mask"] == "brain"
    np.testing.assert_allclose(brain.probabilities.sum(0), 1.0, atol=1e-5)
    expected = ref.predict_member(model, t1, t2, skip_rule="brain")
    assert np.abs(brain.probabilities - expected.transpose(3, 0, 1, 2)).max() <= 1e-5


def test_axes_shorter_than_a_window_are_padded_and_cropped(tiny_bundle_1):
    t1, t2 = synthetic_head((20, 36, 29), seed=4)
    result = segment_with_info(t1, t2, tiny_bundle_1, device="cpu", progress=False)
    assert result.labels.shape == (20, 36, 29)
    assert result.info["windows_total"] == 1 * 2 * 1
    expected = ref.predict_member(tiny_bundle_1.build_member(0), t1, t2)
    assert np.abs(result.probabilities - expected.transpose(3, 0, 1, 2)).max() <= 1e-5


def test_soft_vote_is_argmax_of_mean_probability(head, tiny_bundle):
    t1, t2 = head
    predictor = Predictor(tiny_bundle, device="cpu", batch_size=4)
    result = predictor.predict(t1, t2, vote="soft", progress=False)
    assert result.info["vote"] == "soft"
    np.testing.assert_array_equal(result.labels, np.argmax(result.probabilities, axis=0))


def test_hard_vote_is_the_majority_of_member_labels(head, tiny_bundle, reference_members):
    t1, t2 = head
    result = Predictor(tiny_bundle, device="cpu").predict(t1, t2, vote="hard", progress=False)
    members = [np.argmax(p, axis=-1) for p in reference_members]
    agree = (result.labels == majority_vote(members)).mean()
    assert agree > 0.999


def test_batch_size_does_not_change_results(head, tiny_bundle_1):
    t1, t2 = head
    one = segment_with_info(t1, t2, tiny_bundle_1, device="cpu", batch_size=1, progress=False)
    many = segment_with_info(t1, t2, tiny_bundle_1, device="cpu", batch_size=5, progress=False)
    assert np.abs(one.probabilities - many.probabilities).max() <= 5e-6


@pytest.mark.parametrize(
    "mode", ["stride16", "tile48", "tile48:40+constant", "whole", "members:2", "fast"]
)
def test_fast_modes_run_and_return_the_right_shapes(head, tiny_bundle, mode):
    t1, t2 = head
    result = segment_with_info(t1, t2, tiny_bundle, device="cpu", mode=mode, progress=False)
    assert result.labels.shape == (40, 48, 36) and result.labels.dtype == np.uint8
    assert result.probabilities.shape == (4, 40, 48, 36)
    assert result.probabilities.dtype == np.float32
    sums = result.probabilities.sum(0)
    assert np.all((np.abs(sums - 1) < 1e-4) | (sums == 0))
    assert (sums[t1 > 0] > 0).all()  # every brain voxel is covered
    assert result.info["faithful"] is False
    assert result.info["mode"] == (FAST_ALIAS if mode == "fast" else mode)


def test_stride_larger_than_the_window_is_clamped(head, tiny_bundle_1):
    t1, t2 = head
    result = segment_with_info(t1, t2, tiny_bundle_1, device="cpu", mode="fast", progress=False)
    assert result.info["stride"] == [32, 32, 32] and result.info["window_mask"] == "brain"
    # 40 -> [0, 8], 48 -> [0, 16], 36 -> [0, 4]: the appended last start still covers the end
    assert result.info["windows_total"] == 8


def test_members_subset_uses_only_the_first_members(head, tiny_bundle, reference_members):
    t1, t2 = head
    result = segment_with_info(t1, t2, tiny_bundle, device="cpu", mode="members:2", progress=False)
    assert result.info["members_used"] == 2
    expected = np.mean(reference_members[:2], axis=0).transpose(3, 0, 1, 2)
    assert np.abs(result.probabilities - expected).max() <= 1e-5


def test_postprocess_option(head, tiny_bundle_1):
    t1, t2 = head
    result = segment_with_info(
        t1, t2, tiny_bundle_1, device="cpu", mode="whole", postprocess=True, progress=False
    )
    assert result.info["postprocessed"] is True and result.labels.shape == (40, 48, 36)


def test_progress_logs_when_not_a_terminal(head, tiny_bundle_1, caplog):
    t1, t2 = head
    with caplog.at_level(logging.DEBUG, logger="infant_tissue.inference"):
        segment(t1, t2, tiny_bundle_1, device="cpu", mode="whole", progress=False)
    assert any("100%" in r.getMessage() for r in caplog.records)


def test_input_errors(head, tiny_bundle_1):
    t1, t2 = head
    with pytest.raises(ValueError, match="differ in shape"):
        segment(t1, t2[:-1], tiny_bundle_1, device="cpu")
    with pytest.raises(ValueError, match="vote"):
        segment(t1, t2, tiny_bundle_1, device="cpu", vote="mean")
    with pytest.raises(ValueError, match="window_mask"):
        segment(t1, t2, tiny_bundle_1, device="cpu", window_mask="z")
    with pytest.raises(ValueError, match="unknown mode"):
        segment(t1, t2, tiny_bundle_1, device="cpu", mode="quick")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_request_without_cuda_fails_before_work(head, tiny_bundle_1):
    t1, t2 = head
    with pytest.raises(ValueError, match="CUDA is not available"):
        segment(t1, t2, tiny_bundle_1, device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_faithful_matches_cpu(head, tiny_bundle, faithful):
    t1, t2 = head
    cuda = segment_with_info(t1, t2, tiny_bundle, device="cuda", progress=False)
    assert np.abs(cuda.probabilities - faithful.probabilities).max() <= 1e-5
    assert (cuda.labels == faithful.labels).mean() > 0.999
    bf16 = segment_with_info(t1, t2, tiny_bundle, device="cuda", precision="bf16", progress=False)
    assert (bf16.labels == faithful.labels).mean() > 0.95


def test_cpu_refuses_windows_that_would_break_the_memory_budget(tiny_bundle_1):
    rng = np.random.default_rng(0)
    t1 = rng.uniform(1, 2, (120, 120, 120)).astype(np.float32)
    with pytest.raises(ValueError, match="use tile96 or a GPU"):
        segment(t1, t1, tiny_bundle_1, device="cpu", mode="whole")
