"""Seed 001's α-weighted multi-scale cross-entropy against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from infant_tissue.nn import build_model
from infant_tissue.training.deep_supervision import (
    DEEP_SUPERVISION_WEIGHTS,
    deep_supervision_loss,
    downsample_labels,
)


def _hand_mean_ce(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean over voxels of -log softmax(logits)[label], one voxel at a time."""
    c = logits.shape[1]
    flat = logits.transpose(0, 2, 3, 4, 1).reshape(-1, c)
    total = 0.0
    for row, y in zip(flat, labels.reshape(-1), strict=True):
        total += math.log(sum(math.exp(v) for v in row)) - row[y]
    return total / len(flat)


def test_weights_are_the_papers():
    assert DEEP_SUPERVISION_WEIGHTS == (1.0, 0.67, 0.33)


def test_uniform_logits_give_log_classes_times_sum_of_weights():
    labels = torch.randint(0, 2, (1, 8, 8, 8))
    logits = [torch.zeros(1, 2, 8 >> m, 8 >> m, 8 >> m) for m in range(3)]
    loss = deep_supervision_loss(logits, labels)
    assert loss.item() == pytest.approx((1.0 + 0.67 + 0.33) * math.log(2))


def test_matches_a_hand_computation_on_a_16_cube_toy():
    g = torch.Generator().manual_seed(5)
    labels = torch.randint(0, 2, (2, 16, 16, 16), generator=g)  # two classes of labels
    logits = [torch.randn(2, 4, 16 >> m, 16 >> m, 16 >> m, generator=g) * 2 for m in range(3)]
    expected = 0.0
    for m, alpha in enumerate((1.0, 0.67, 0.33)):
        step = 2**m
        sub = labels.numpy()[:, ::step, ::step, ::step]
        expected += alpha * _hand_mean_ce(logits[m].double().numpy(), sub)
    loss = deep_supervision_loss(logits, labels)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_labels_are_sampled_at_even_positions_only():
    labels = torch.zeros(1, 4, 4, 4, dtype=torch.long)
    labels[:, 1::2] = 1  # odd slices: class 1 (invisible to scales 1 and 2)
    assert torch.equal(downsample_labels(labels, 1), torch.zeros(1, 2, 2, 2, dtype=torch.long))
    confident = torch.zeros(1, 2, 2, 2, 2)
    confident[:, 0] = 30.0  # predicts class 0 everywhere at 1/2
    full = torch.zeros(1, 2, 4, 4, 4)
    quarter = torch.zeros(1, 2, 1, 1, 1)
    loss = deep_supervision_loss([full, confident, quarter], labels)
    assert loss.item() == pytest.approx(math.log(2) + 0.33 * math.log(2), rel=1e-6)


def test_single_scale_weights():
    labels = torch.tensor([[[[0, 1]]]])
    logits = torch.tensor([[[[[0.0, 0.0]]], [[[math.log(3), 0.0]]]]])  # (1, 2, 1, 1, 2)
    # voxel 0 (label 0): -log(1/4); voxel 1 (label 1): -log(1/2)
    loss = deep_supervision_loss([logits], labels, weights=(0.5,))
    assert loss.item() == pytest.approx(0.5 * (math.log(4) + math.log(2)) / 2)


@pytest.mark.parametrize(
    ("n_logits", "shape", "label_dtype", "message"),
    [
        (2, (1, 2, 8, 8, 8), torch.long, "weights"),
        (3, (1, 2, 8, 8, 8), torch.long, "scale 1"),
        (3, None, torch.float32, "integer"),
    ],
)
def test_rejects_mismatches(n_logits, shape, label_dtype, message):
    labels = torch.zeros(1, 8, 8, 8, dtype=label_dtype)
    if shape is None:
        logits = [torch.zeros(1, 2, 8 >> m, 8 >> m, 8 >> m) for m in range(n_logits)]
    else:
        logits = [torch.zeros(shape) for _ in range(n_logits)]
    with pytest.raises(ValueError, match=message):
        deep_supervision_loss(logits, labels)


def test_trains_the_multi_stream_fcn_at_every_scale():
    model = build_model("msfcn", base_width=2)
    x = torch.randn(2, 2, 8, 8, 8)
    labels = torch.randint(0, 4, (2, 8, 8, 8))
    loss = deep_supervision_loss(model.forward_with_aux(x), labels)
    loss.backward()
    for classifier in model.classifiers:
        assert classifier.weight.grad is not None and classifier.weight.grad.abs().sum() > 0
