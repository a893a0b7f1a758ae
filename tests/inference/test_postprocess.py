"""Optional post-processing on hand-built label maps."""

from __future__ import annotations

import numpy as np
import pytest

from infant_tissue.inference import (
    fill_holes,
    keep_largest_component,
    postprocess,
    relabel_small_islands,
)


def _brain():
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[4:16, 4:16, 4:16] = 3  # WM core
    labels[4:16, 4:16, 4] = 2  # a GM face
    return labels


def test_largest_component_removes_detached_scraps():
    labels = _brain()
    labels[0:2, 0:2, 0:2] = 1  # scrap of CSF far away
    labels[18, 18, 18] = 2
    out = keep_largest_component(labels)
    assert out[0:2, 0:2, 0:2].max() == 0 and out[18, 18, 18] == 0
    np.testing.assert_array_equal(out[4:16, 4:16, 4:16], labels[4:16, 4:16, 4:16])
    assert labels[18, 18, 18] == 2  # input untouched


def test_small_island_takes_the_surrounding_majority():
    labels = _brain()
    labels[9:11, 9:11, 9:11] = 1  # 8 CSF voxels inside WM
    labels[7, 7, 7] = 2  # one GM voxel inside WM
    out = relabel_small_islands(labels, min_size=10)
    assert (out[9:11, 9:11, 9:11] == 3).all() and out[7, 7, 7] == 3
    kept = relabel_small_islands(labels, min_size=8)  # 8 voxels is not below 8
    assert (kept[9:11, 9:11, 9:11] == 1).all() and kept[7, 7, 7] == 3


def test_island_majority_ties_go_to_the_lowest_label():
    labels = np.zeros((5, 5, 5), np.uint8)
    labels[2, 2, 2] = 1
    labels[1, 2, 2] = labels[3, 2, 2] = labels[2, 1, 2] = 2
    labels[2, 3, 2] = labels[2, 2, 1] = labels[2, 2, 3] = 3
    out = relabel_small_islands(labels, min_size=2, classes=(1,))
    assert out[2, 2, 2] == 2  # neighbours: three 2s, three 3s -> 2


def test_holes_are_filled_with_the_surrounding_label():
    labels = _brain()
    labels[8:11, 8:11, 8:11] = 0  # background cavity inside WM
    out = fill_holes(labels)
    assert (out[8:11, 8:11, 8:11] == 3).all()
    assert out[0, 0, 0] == 0  # outside background stays
    open_labels = _brain()
    open_labels[8:11, 8:11, 0:11] = 0  # tunnel to the border: not a hole
    np.testing.assert_array_equal(fill_holes(open_labels), open_labels)


def test_postprocess_runs_all_steps_and_can_skip_them():
    labels = _brain()
    labels[0, 0, 0] = 1
    labels[8:10, 8:10, 8:10] = 0
    labels[12, 12, 12] = 1
    out = postprocess(labels)
    assert out[0, 0, 0] == 0 and (out[8:10, 8:10, 8:10] == 3).all() and out[12, 12, 12] == 3
    same = postprocess(labels, largest_component=False, min_island=None, holes=False)
    np.testing.assert_array_equal(same, labels)
    assert same is not labels


def test_postprocess_rejects_bad_input():
    with pytest.raises(ValueError, match="integer"):
        postprocess(np.zeros((3, 3, 3), np.float32))
    with pytest.raises(ValueError, match="connectivity"):
        postprocess(np.zeros((3, 3, 3), np.uint8), connectivity=4)
