"""Region losses of seeds 002-004 against hand computations and independent numpy formulas."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from infant_tissue.training.losses import cross_entropy
from infant_tissue.training.region_losses import (
    attention_loss,
    attention_weights,
    class_surface,
    damal_loss,
    gdl_class_weights,
    generalized_dice_loss,
    mixnet_loss,
    soft_dice_loss,
)


def logits_of(p: np.ndarray) -> torch.Tensor:
    """Logits whose softmax over axis 1 is exactly ``p`` (up to float64 rounding)."""
    return torch.log(torch.as_tensor(p, dtype=torch.float64))


# The 2-class, 4-voxel case: labels [0, 1, 1, 1], p(class 1) = [0.2, 0.7, 0.6, 0.9].
P1 = np.array([0.2, 0.7, 0.6, 0.9])
TOY_P = np.stack([1 - P1, P1])[None]  # (N=1, C=2, 4)
TOY_LABELS = torch.tensor([[0, 1, 1, 1]])


def test_gdl_class_weights_inverse_square_frequency():
    w = gdl_class_weights([np.array([0, 1, 1, 1])], num_classes=2)
    np.testing.assert_allclose(w, [16.0, 16.0 / 9.0])  # f = 1/4, 3/4
    arrays = [np.array([[0, 1], [2, 2]]), np.array([3, 3, 3, 0, 2, 2, 2, 2])]
    # counts 2, 1, 6, 3 of 12 voxels
    np.testing.assert_allclose(gdl_class_weights(arrays), [36.0, 144.0, 4.0, 16.0])
    with pytest.raises(ValueError, match=r"classes \[1\]"):
        gdl_class_weights([np.array([0, 2, 3])])
    with pytest.raises(ValueError, match="lie in"):
        gdl_class_weights([np.array([0, 4])])


def test_gdl_hand_computed_two_class_case():
    # num = 16·0.8 + 16/9·2.2, den = 16·2.6 + 16/9·5.4 = 51.2 → GDL = 1 − 47/72 = 25/72
    w = torch.tensor(gdl_class_weights([TOY_LABELS.numpy()], num_classes=2))
    loss = generalized_dice_loss(logits_of(TOY_P), TOY_LABELS, w)
    assert loss.item() == pytest.approx(25 / 72, abs=1e-12)
    # Sudre's per-batch weights 1/count² = (1, 1/9) are proportional: same value.
    per_batch = generalized_dice_loss(logits_of(TOY_P), TOY_LABELS)
    assert per_batch.item() == pytest.approx(25 / 72, abs=1e-12)
    # Equal weights: 1 − 2·(0.8 + 2.2)/(2.6 + 5.4) = 0.25.
    equal = generalized_dice_loss(logits_of(TOY_P), TOY_LABELS, torch.ones(2))
    assert equal.item() == pytest.approx(0.25, abs=1e-12)


def numpy_gdl(p: np.ndarray, labels: np.ndarray, w: np.ndarray) -> float:
    c = p.shape[1]
    g = np.stack([(labels == k) for k in range(c)], axis=1).astype(float)
    axes = (0, *range(2, p.ndim))
    num = (w * (p * g).sum(axis=axes)).sum()
    den = (w * (p + g).sum(axis=axes)).sum()
    return 1 - 2 * num / den


def test_gdl_matches_numpy_formula_on_random_3d_batch():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, size=(2, 3, 4, 5))
    logits = torch.as_tensor(rng.normal(size=(2, 4, 3, 4, 5)))
    p = torch.softmax(logits, 1).numpy()
    w = gdl_class_weights(list(labels), num_classes=4)
    got = generalized_dice_loss(logits, torch.as_tensor(labels), torch.as_tensor(w))
    assert got.item() == pytest.approx(numpy_gdl(p, labels, w), abs=1e-12)
    counts = np.bincount(labels.ravel(), minlength=4)
    got_batch = generalized_dice_loss(logits, torch.as_tensor(labels))
    assert got_batch.item() == pytest.approx(numpy_gdl(p, labels, 1 / counts**2.0), abs=1e-12)


def test_gdl_per_batch_absent_class_gets_largest_finite_weight():
    labels = torch.tensor([[1, 1, 1, 1]])
    got = generalized_dice_loss(logits_of(TOY_P), labels)
    expected = numpy_gdl(TOY_P, labels.numpy(), np.array([1 / 16, 1 / 16]))
    assert math.isfinite(got.item()) and got.item() == pytest.approx(expected, abs=1e-12)


def test_soft_dice_hand_computed():
    # dice0 = 1.6/2.6 = 8/13, dice1 = 4.4/5.4 = 22/27 → loss = 1 − 251/351 = 100/351
    loss = soft_dice_loss(logits_of(TOY_P), TOY_LABELS, smooth=0.0)
    assert loss.item() == pytest.approx(100 / 351, abs=1e-12)
    assert soft_dice_loss(logits_of(TOY_P), TOY_LABELS).item() == pytest.approx(100 / 351, abs=1e-5)


def test_surface_uses_face_neighbours_only():
    labels = np.zeros((7, 7, 7), dtype=np.int64)
    labels[1:6, 1:6, 1:6] = 1
    shell = class_surface(labels == 1)
    assert shell.sum() == 5**3 - 3**3 and not shell[2:5, 2:5, 2:5].any()
    outer = class_surface(labels == 0)
    assert outer[0, 3, 3] and outer[0, 1, 1] and not outer[0, 0, 0]  # diagonal ≠ neighbour
    w = attention_weights(labels, num_classes=4)
    assert w.shape == (4, 7, 7, 7) and w.dtype == np.float32
    assert w[1, 3, 3, 3] == pytest.approx(1 / 3)  # centre, 2 voxels from the shell
    assert w[1, 0, 0, 0] == pytest.approx(1 / (math.sqrt(3) + 1))  # to (1, 1, 1)
    assert w[0, 0, 0, 0] == pytest.approx(1 / (math.sqrt(2) + 1))  # to (0, 1, 1)
    assert (w[1][shell] == 1).all() and (w[0][outer] == 1).all()
    assert not w[2].any() and not w[3].any()  # absent classes: no surface, W = 0


def test_attention_weights_on_a_line():
    labels = np.array([[[0, 0, 0, 0, 1, 1, 1, 2, 2]]])
    w = attention_weights(labels, num_classes=4)[:, 0, 0]
    np.testing.assert_allclose(w[0], 1 / (np.abs(np.arange(9) - 3) + 1))  # surface {3}
    np.testing.assert_allclose(w[1], 1 / (np.array([4, 3, 2, 1, 0, 1, 0, 1, 2]) + 1))  # {4, 6}
    np.testing.assert_allclose(w[2], 1 / (np.array([7, 6, 5, 4, 3, 2, 1, 0, 1]) + 1))  # {7}
    np.testing.assert_array_equal(w[3], 0)
    spaced = attention_weights(labels, num_classes=4, spacing=(1.0, 1.0, 2.0))[0, 0, 0]
    np.testing.assert_allclose(spaced, 1 / (2 * np.abs(np.arange(9) - 3) + 1))


def test_attention_weights_match_brute_force():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 3, size=(4, 5, 3))
    w = attention_weights(labels, num_classes=3)
    coords = list(itertools.product(*map(range, labels.shape)))
    for c in range(3):
        surface = []
        for i in coords:
            if labels[i] != c:
                continue
            for axis, step in itertools.product(range(3), (-1, 1)):
                j = list(i)
                j[axis] += step
                if 0 <= j[axis] < labels.shape[axis] and labels[tuple(j)] != c:
                    surface.append(i)
                    break
        pts = np.array(surface, dtype=float)
        for i in coords:
            d = np.sqrt(((pts - np.array(i)) ** 2).sum(axis=1)).min()
            assert w[(c, *i)] == pytest.approx(1 / (d + 1), rel=1e-6)


def test_attention_loss_hand_computed():
    # labels [0, 1]; p1 = [0.3, 0.6]; W0 = [1, 0.5], W1 = [0.25, 1]
    # voxel 0: 1·0.3² + 0.25·0.3² = 0.1125; voxel 1: 0.5·0.4² + 1·0.4² = 0.24 → mean 0.17625
    p1 = np.array([0.3, 0.6])
    logits = logits_of(np.stack([1 - p1, p1])[None])
    labels = torch.tensor([[0, 1]])
    weights = torch.tensor([[[1.0, 0.5], [0.25, 1.0]]], dtype=torch.float64)
    assert attention_loss(logits, labels, weights).item() == pytest.approx(0.17625, abs=1e-12)
    # + soft Dice: dice0 = 1.4/2.1 = 2/3, dice1 = 1.2/1.9 = 12/19 → 1 − 37/57 = 20/57
    total = damal_loss(logits, labels, weights, smooth=0.0)
    assert total.item() == pytest.approx(0.17625 + 20 / 57, abs=1e-12)
    with pytest.raises(ValueError, match="weights"):
        attention_loss(logits, labels, weights[:, :1])


def test_attention_loss_with_weights_from_labels():
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 4, size=(2, 6, 5, 4))
    w = np.stack([attention_weights(v) for v in labels])
    logits = torch.as_tensor(rng.normal(size=(2, 4, 6, 5, 4)))
    p = torch.softmax(logits, 1).numpy()
    g = np.stack([(labels == k) for k in range(4)], axis=1)
    expected = np.where(g, w * (1 - p) ** 2, w * p**2).sum(axis=1).mean()
    got = attention_loss(logits, torch.as_tensor(labels), torch.as_tensor(w))
    assert got.item() == pytest.approx(expected, abs=1e-12)


def test_mixnet_loss_is_mean_pixelwise_cross_entropy():
    assert mixnet_loss is cross_entropy
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]]]], dtype=torch.float64)  # (1, 2, 1, 2)
    labels = torch.tensor([[[0, 0]]])
    expected = (-math.log(math.e**2 / (math.e**2 + 1)) - math.log(1 / (1 + math.e))) / 2
    assert mixnet_loss(logits, labels).item() == pytest.approx(expected, abs=1e-12)


def _loss_cases():
    labels = np.random.default_rng(5).integers(0, 4, size=(2, 6, 6, 6))
    weights = torch.as_tensor(np.stack([attention_weights(v) for v in labels]))
    fixed = torch.as_tensor(gdl_class_weights(list(labels)))
    return torch.as_tensor(labels), {
        "gdl-fixed": lambda x, y: generalized_dice_loss(x, y, fixed),
        "gdl-batch": generalized_dice_loss,
        "soft-dice": soft_dice_loss,
        "attention": lambda x, y: attention_loss(x, y, weights),
        "damal": lambda x, y: damal_loss(x, y, weights),
        "mixnet-ce": mixnet_loss,
    }


@pytest.mark.parametrize(
    "name", ["gdl-fixed", "gdl-batch", "soft-dice", "attention", "damal", "mixnet-ce"]
)
def test_one_gradient_step_reduces_the_loss(name):
    labels, losses = _loss_cases()
    loss_fn = losses[name]
    logits = torch.zeros(2, 4, 6, 6, 6, dtype=torch.float64)
    logits += 0.1 * torch.randn_like(logits)
    logits.requires_grad_(True)
    before = loss_fn(logits, labels)
    before.backward()
    grad = logits.grad
    true_logit_grad = grad.gather(1, labels[:, None])
    assert (true_logit_grad < 0).all()  # raising the true class lowers the loss
    with torch.no_grad():
        after = loss_fn(logits - 0.5 * grad / grad.abs().max(), labels)
    assert after.item() < before.item() - 1e-3
