"""Seed 001 context maps: clipped, normalised Euclidean distance to CSF, GM and WM."""

from __future__ import annotations

import math

import numpy as np
import pytest

from infant_tissue.inference.context import context_maps


def _slab_labels() -> np.ndarray:
    """A 1-D-like toy (2, 3, 12): along the last axis CSF at x=0, GM at x=1-2, WM at x=3-4,
    background beyond; identical in every (z, y) row."""
    row = np.array([1, 2, 2, 3, 3, 0, 0, 0, 0, 0, 0, 0])
    return np.broadcast_to(row, (2, 3, 12)).copy()


def test_slab_distances_by_hand():
    maps = context_maps(_slab_labels(), voxel_mm=3.0, clip_mm=20.0)
    assert maps.shape == (3, 2, 3, 12) and maps.dtype == np.float32
    x = np.arange(12)
    # Distance in voxels to the nearest voxel of each tissue, times 3 mm, clipped at 20 mm.
    voxels = {
        0: x - 0,  # CSF at 0
        1: np.select([x < 1, x > 2], [1 - x, x - 2], 0),  # GM at 1..2
        2: np.select([x < 3, x > 4], [3 - x, x - 4], 0),  # WM at 3..4
    }
    for channel, d in voxels.items():
        expected = np.minimum(3.0 * d, 20.0) / 20.0
        np.testing.assert_allclose(maps[channel, 1, 2], expected, rtol=0, atol=1e-7)
        np.testing.assert_array_equal(
            maps[channel], np.broadcast_to(maps[channel, 0, 0], (2, 3, 12))
        )
    # Spot values: CSF at x=5 is 15 mm -> 0.75; at x=7, 21 mm clips to 1.
    assert maps[0, 0, 0, 5] == pytest.approx(0.75)
    assert maps[0, 0, 0, 7] == 1.0 and maps[0, 0, 0, 11] == 1.0
    assert maps[2, 0, 0, 0] == pytest.approx(9 / 20)


def test_zero_inside_the_tissue_and_clip_parameter():
    labels = _slab_labels()
    maps = context_maps(labels, voxel_mm=1.0, clip_mm=4.0)
    for channel, tissue in enumerate((1, 2, 3)):
        assert np.all(maps[channel][labels == tissue] == 0)
    assert maps[0, 0, 0, 3] == pytest.approx(3 / 4)  # 3 mm of 4
    assert maps[0, 0, 0, 4] == 1.0 and maps[0, 0, 0, 9] == 1.0


def test_euclidean_not_city_block_and_anisotropic_voxels():
    labels = np.zeros((5, 5, 5), dtype=np.int16)
    labels[2, 2, 2] = 2  # one GM voxel
    maps = context_maps(labels, voxel_mm=(2.0, 1.0, 1.0), clip_mm=20.0)
    assert maps[1, 3, 3, 2] == pytest.approx(math.sqrt(2.0**2 + 1.0**2) / 20)
    assert maps[1, 2, 4, 4] == pytest.approx(math.sqrt(8.0) / 20)
    assert maps[1, 0, 2, 2] == pytest.approx(4.0 / 20)
    # Absent tissues are "farther than the clip" everywhere.
    assert np.all(maps[0] == 1.0) and np.all(maps[2] == 1.0)


def test_probabilities_are_reduced_by_argmax():
    labels = _slab_labels()
    probs = np.eye(4, dtype=np.float32)[labels].transpose(3, 0, 1, 2) * 0.7 + 0.075
    np.testing.assert_array_equal(context_maps(probs), context_maps(labels))


@pytest.mark.parametrize(
    ("arg", "kwargs", "message"),
    [
        (np.zeros((4, 4)), {}, "label volume"),
        (np.zeros((3, 4, 4, 4)), {}, r"\(4, D, H, W\)"),
        (np.full((4, 4, 4), 4), {}, "0..3"),
        (np.full((4, 4, 4), 0.5), {}, "integer"),
        (np.zeros((4, 4, 4), dtype=int), dict(voxel_mm=0.0), "voxel_mm"),
        (np.zeros((4, 4, 4), dtype=int), dict(clip_mm=-1.0), "clip_mm"),
    ],
)
def test_rejects_bad_input(arg, kwargs, message):
    with pytest.raises(ValueError, match=message):
        context_maps(arg, **kwargs)
