"""QC measures on arrays with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from infant_tissue.qc import metrics as m


def _tissues(shape=(20, 20, 20)):
    labels = np.zeros(shape, np.uint8)
    labels[2:18, 2:18, 2:6] = 1
    labels[2:18, 2:18, 6:11] = 2
    labels[2:18, 2:18, 11:18] = 3
    return labels, labels > 0


def test_correlation_ratio_is_one_for_piecewise_constant_and_drops_with_shift():
    labels, brain = _tissues()
    image = np.choose(labels, [0.0, 900.0, 500.0, 700.0])
    assert m.correlation_ratio(image, labels, brain) == pytest.approx(1.0)
    moved = np.roll(image, 3, axis=2)
    assert m.correlation_ratio(moved, labels, brain) < 0.7
    rng = np.random.default_rng(0)
    noise = rng.normal(size=labels.shape)
    assert m.correlation_ratio(noise, labels, brain) < 0.05
    assert math.isnan(m.correlation_ratio(np.ones(labels.shape), labels, brain))


def test_correlation_ratio_matches_the_formula():
    labels = np.array([1, 1, 2, 2, 2, 3])
    x = np.array([1.0, 3.0, 4.0, 5.0, 6.0, 10.0])
    within = 2 * np.var([1, 3]) + 3 * np.var([4, 5, 6]) + 0
    expected = 1 - within / (6 * np.var(x))
    assert m.correlation_ratio(x, labels, np.ones(6, bool)) == pytest.approx(expected)


def test_intensity_correlation_of_a_genuine_pair_is_negative():
    labels, brain = _tissues()
    t1 = np.choose(labels, [0.0, 200.0, 500.0, 560.0])  # CSF dark
    t2 = np.choose(labels, [0.0, 1500.0, 800.0, 700.0])  # CSF bright
    assert m.intensity_correlation(t1, t2, brain) < -0.5
    assert m.intensity_correlation(t1, t1 * 1.1 + 5, brain) == pytest.approx(1.0)


def test_contrast_to_noise_uses_robust_scales():
    rng = np.random.default_rng(1)
    labels, brain = _tissues()
    image = np.choose(labels, [0.0, 300.0, 500.0, 600.0]) + rng.normal(0, 20, labels.shape)
    assert m.contrast_to_noise(image, labels, brain) == pytest.approx(5.0, rel=0.1)
    # a few partial-volume outliers do not count as noise
    image[labels == 2] = np.where(rng.random((labels == 2).sum()) < 0.03, 2000, image[labels == 2])
    assert m.contrast_to_noise(image, labels, brain) == pytest.approx(5.0, rel=0.15)
    assert math.isnan(m.contrast_to_noise(image, np.zeros_like(labels), brain))


def test_disagreement_summary_and_fractions():
    labels, brain = _tissues()
    d = np.zeros(labels.shape, np.float32)
    d[labels == 1] = 2 / 3
    out = m.disagreement_summary(d, brain)
    share = (labels == 1).sum() / brain.sum()
    assert out["disagreement_high_share"] == pytest.approx(share)
    assert out["disagreement_mean"] == pytest.approx(share * 2 / 3, rel=1e-5)
    assert m.disagreement_summary(None, brain) == {
        "disagreement_mean": None,
        "disagreement_high_share": None,
    }
    fractions = m.tissue_fractions(labels, brain)
    assert sum(fractions.values()) == pytest.approx(1.0)
