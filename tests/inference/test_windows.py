"""Window positions, padding, the skip rule's window test, Gaussian weights, normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from infant_tissue.inference import (
    gaussian_importance,
    normalise,
    pad_amounts,
    window_grid,
    window_starts,
    windows_with_foreground,
)
from infant_tissue.inference.windows import foreground_bbox, pad_end


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (32, [0]),
        (40, [0, 8]),
        (44, [0, 8, 12]),  # (44-32) % 8 = 4: last start 12 appended
        (33, [0, 1]),
        (48, [0, 8, 16]),
        (144, list(range(0, 113, 8))),
    ],
)
def test_window_starts_follow_the_reference(length, expected):
    assert window_starts(length, 32, 8).tolist() == expected


def test_window_starts_stride16_and_count_of_a_full_subject():
    assert window_starts(50, 32, 16).tolist() == [0, 16, 18]
    # issue 3: a 144×192×256 volume has 9,135 stride-8 windows
    assert len(window_grid((144, 192, 256), 32, 8)) == 15 * 21 * 29 == 9135


def test_window_starts_rejects_short_axes_and_bad_values():
    with pytest.raises(ValueError, match="pad the volume"):
        window_starts(31, 32, 8)
    with pytest.raises(ValueError, match="stride"):
        window_starts(40, 32, 0)


def test_grid_order_is_x_major():
    grid = window_grid((40, 40, 44), 32, 8)
    assert grid.shape == (2 * 2 * 3, 3)
    assert grid[:4].tolist() == [[0, 0, 0], [0, 0, 8], [0, 0, 12], [0, 8, 0]]
    assert grid[-1].tolist() == [8, 8, 12]


def test_padding_reaches_one_window_and_only_at_the_end():
    assert pad_amounts((20, 40, 32), 32) == (12, 0, 0)
    volume = np.ones((2, 20, 40, 31))
    padded = pad_end(volume, pad_amounts(volume.shape[1:], 32))
    assert padded.shape == (2, 32, 40, 32)
    assert padded[:, :20, :, :31].all() and not padded[:, 20:].any() and not padded[..., 31:].any()


def test_foreground_test_matches_per_window_sums():
    mask = np.zeros((45, 40, 37), bool)
    mask[0, 0, 0] = mask[44, 39, 36] = mask[2, 39, 1] = True
    starts = window_grid(mask.shape, 32, 8)
    expected = [mask[x : x + 32, y : y + 32, z : z + 32].sum() != 0 for x, y, z in starts]
    assert windows_with_foreground(mask, starts, 32).tolist() == expected
    assert 0 < sum(expected) < len(expected)


def test_foreground_bbox_with_margin():
    mask = np.zeros((20, 20, 20), bool)
    mask[5:8, 10, 18] = True
    assert foreground_bbox(mask, 3) == (slice(2, 11), slice(7, 14), slice(15, 20))
    assert foreground_bbox(np.zeros((3, 3, 3), bool)) is None


def test_gaussian_importance_peak_and_positivity():
    weights = gaussian_importance((16, 16, 8))
    assert tuple(weights.shape) == (16, 16, 8)
    assert float(weights.max()) == pytest.approx(1.0, abs=1e-6)
    assert float(weights.min()) > 0
    assert float(weights[7, 7, 3]) == pytest.approx(float(weights[8, 8, 4]))  # symmetric


def test_normalise_is_the_reference_z_score():
    rng = np.random.default_rng(1)
    image = np.where(rng.random((10, 11, 12)) > 0.5, rng.gamma(3, 40, (10, 11, 12)), 0)
    mask = image > 0
    expected = (image - image[mask].mean()) / image[mask].std() * mask
    out = normalise(image)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
    assert (out[~mask] == 0).all()
    ints = np.round(image).astype(np.int16)  # integer input (Analyze/NIfTI int16)
    mask = ints > 0
    expected = (ints - ints[mask].mean()) / ints[mask].std() * mask
    np.testing.assert_allclose(normalise(ints), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((4, 4, 4)), "no voxel > 0"),
        (np.full((4, 4, 4), 3.0), "single intensity"),
        (np.ones((4, 4)), "3-D"),
        (np.full((4, 4, 4), np.nan), "NaN"),
    ],
)
def test_normalise_errors(image, message):
    with pytest.raises(ValueError, match=message):
        normalise(image)
