"""Metrics against hand-computed cases, brute force, MONAI and SimpleITK."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
from scipy import ndimage

from infant_tissue.evaluation import metrics as M
from infant_tissue.evaluation.mhd_vec import vectorised_mhd

# MONAI >= 1.5 warns about one of its own internal arguments on every surface-distance call
pytestmark = pytest.mark.filterwarnings("ignore:.*always_return_as_numpy:FutureWarning")


def blobs(shape, seed, level=0.5, sigma=2.0):
    """Smooth random binary mask (a few connected blobs)."""
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.random(shape), sigma) > level


def cube(shape, lo, hi):
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] = True
    return mask


# ---------------------------------------------------------------------------- overlap metrics


def test_dice_and_vs_hand_computed():
    a = np.zeros((4, 4, 4), bool)
    b = np.zeros((4, 4, 4), bool)
    a[0, 0, :4] = True  # 4 voxels
    b[0, 0, 2:4] = True  # 2 voxels, both inside a
    assert M.dice(a, b) == pytest.approx(2 * 2 / 6)
    assert M.volumetric_similarity(a, b) == pytest.approx(1 - 2 / 6)
    assert M.dice(a, a) == 1.0 and M.volumetric_similarity(a, a) == 1.0
    # VS ignores position: same volume elsewhere is still 1
    assert M.volumetric_similarity(a, np.roll(a, 2, axis=0)) == 1.0
    assert M.dice(a, np.roll(a, 2, axis=0)) == 0.0


def test_dice_matches_monai():
    import torch
    from monai.metrics import compute_dice

    a, b = blobs((20, 22, 18), 1), blobs((20, 22, 18), 2)
    expected = compute_dice(
        torch.from_numpy(b[None, None].astype(np.float32)),
        torch.from_numpy(a[None, None].astype(np.float32)),
        include_background=True,
    )
    assert M.dice(b, a) == pytest.approx(float(expected), abs=1e-6)


def test_overlap_metrics_empty_masks():
    empty = np.zeros((3, 3, 3), bool)
    one = empty.copy()
    one[1, 1, 1] = True
    with pytest.warns(RuntimeWarning, match="both masks are empty"):
        assert math.isnan(M.dice(empty, empty))
    with pytest.warns(RuntimeWarning, match="both masks are empty"):
        assert math.isnan(M.volumetric_similarity(empty, empty))
    assert M.dice(one, empty) == 0.0
    assert M.volumetric_similarity(empty, one) == 0.0


def test_shape_mismatch_and_bad_spacing_raise():
    with pytest.raises(ValueError, match="same shape"):
        M.dice(np.zeros((2, 2, 2)), np.zeros((2, 2, 3)))
    a = cube((5, 5, 5), (1, 1, 1), (3, 3, 3))
    with pytest.raises(ValueError, match="spacing must have 3 values"):
        M.surface_metrics(a, a, spacing=(1.0, 1.0))
    with pytest.raises(ValueError, match="positive"):
        M.surface_metrics(a, a, spacing=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="backend"):
        M.surface_metrics(a, a, backend="itk")


# ---------------------------------------------------------------------------- boundary metrics


def test_boundary_of_a_cube_is_its_shell():
    a = cube((5, 5, 5), (1, 1, 1), (4, 4, 4))
    edge = M.boundary(a)
    assert edge.sum() == 26 and not edge[2, 2, 2]
    # voxels on the image border are boundary voxels (outside counts as background)
    full = np.ones((3, 3, 3), bool)
    assert M.boundary(full).sum() == 26


@pytest.mark.parametrize(
    ("spacing", "mean", "hd95", "hd"),
    [((1.0, 1.0, 1.0), 10 / 26, 1.0, 1.0), ((2.0, 1.0, 1.0), 19 / 26, 2.0, 2.0)],
)
def test_shifted_cube_hand_computed(spacing, mean, hd95, hd):
    # A 3x3x3 cube and the same cube one voxel further along x. Of A's 26 boundary voxels the 9
    # on its x=1 face are one x-step from B's boundary, 16 lie on B's boundary, and the centre
    # of its x=3 face is one in-plane step (1 mm) from B's boundary; the same holds from B to A.
    a = cube((6, 6, 6), (1, 1, 1), (4, 4, 4))
    b = cube((6, 6, 6), (2, 1, 1), (5, 4, 4))
    result = M.surface_metrics(a, b, spacing)
    assert result["mhd"] == pytest.approx(mean)
    assert result["asd"] == pytest.approx(mean)
    assert result["hd95"] == pytest.approx(hd95)
    assert result["hd"] == pytest.approx(hd)
    assert M.modified_hausdorff(a, b, spacing) == pytest.approx(mean)
    assert M.average_surface_distance(a, b, spacing) == pytest.approx(mean)
    assert M.hausdorff95(a, b, spacing) == pytest.approx(hd95)


def test_asymmetric_case_eq10_versus_monai_pooled_asd():
    # A: 3x3x3 cube (26 boundary voxels); B: its centre voxel (1 boundary voxel).
    from monai.metrics import compute_average_surface_distance

    a = cube((5, 5, 5), (1, 1, 1), (4, 4, 4))
    b = np.zeros_like(a)
    b[2, 2, 2] = True
    sum_ab = 6 * 1 + 12 * math.sqrt(2) + 8 * math.sqrt(3)  # faces, edges, corners -> centre
    h_ab, h_ba = sum_ab / 26, 1.0
    result = M.surface_metrics(a, b)
    assert result["mhd"] == pytest.approx(max(h_ab, h_ba))
    assert result["asd"] == pytest.approx((h_ab + h_ba) / 2)  # paper Eq. 10
    assert result["hd"] == pytest.approx(math.sqrt(3))

    def monai_asd(x, y, symmetric):
        value = compute_average_surface_distance(
            x[None, None].astype(np.float32),
            y[None, None].astype(np.float32),
            include_background=True,
            symmetric=symmetric,
        )
        return float(value)

    # MONAI's symmetric ASD pools both directions' distances: not Eq. 10 when counts differ
    pooled = (sum_ab + 1.0) / 27
    assert monai_asd(a, b, True) == pytest.approx(pooled, abs=1e-5)
    assert abs(pooled - result["asd"]) > 0.1
    # its directed (symmetric=False) values are Eq. 9/10's h(C, D) and h(D, C)
    assert monai_asd(a, b, False) == pytest.approx(h_ab, abs=1e-5)
    assert monai_asd(b, a, False) == pytest.approx(h_ba, abs=1e-5)


def test_surface_metrics_empty_masks_are_nan_with_warning():
    a = cube((5, 5, 5), (1, 1, 1), (3, 3, 3))
    empty = np.zeros_like(a)
    for pred, truth, what in [
        (empty, a, "prediction is empty"),
        (a, empty, "truth is empty"),
        (empty, empty, "both"),
    ]:
        with pytest.warns(RuntimeWarning, match=what):
            result = M.surface_metrics(pred, truth, context="GM")
        assert all(math.isnan(v) for v in result.values())
    with pytest.raises(ValueError, match="non-empty"):
        M.surface_distances(a, empty)


SPACINGS = [(1.0, 1.0, 1.0), (0.8, 1.1, 1.6)]


@pytest.mark.parametrize("spacing", SPACINGS)
def test_scipy_and_monai_backends_agree(spacing):
    a, b = blobs((22, 24, 20), 3), blobs((22, 24, 20), 4, level=0.52)
    for x, y in [(a, b), (a, np.roll(a, 1, axis=1))]:
        ours = M.surface_distances(x, y, spacing)
        theirs = M.surface_distances(x, y, spacing, backend="monai")
        for d_ours, d_theirs in zip(ours, theirs, strict=True):
            assert d_ours.shape == d_theirs.shape
            np.testing.assert_allclose(np.sort(d_ours), np.sort(d_theirs), atol=1e-5)


@pytest.mark.parametrize("spacing", SPACINGS)
def test_hd95_and_asd_match_monai(spacing):
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    a, b = blobs((22, 24, 20), 5), blobs((22, 24, 20), 6, level=0.51)
    pa, pb = a[None, None].astype(np.float32), b[None, None].astype(np.float32)
    kwargs = {"include_background": True, "spacing": list(spacing)}
    result = M.surface_metrics(a, b, spacing)
    hd95 = float(compute_hausdorff_distance(pa, pb, percentile=95, **kwargs))
    hd = float(compute_hausdorff_distance(pa, pb, **kwargs))
    h_ab = float(compute_average_surface_distance(pa, pb, symmetric=False, **kwargs))
    h_ba = float(compute_average_surface_distance(pb, pa, symmetric=False, **kwargs))
    assert result["hd95"] == pytest.approx(hd95, abs=1e-4)
    assert result["hd"] == pytest.approx(hd, abs=1e-4)
    assert result["asd"] == pytest.approx((h_ab + h_ba) / 2, abs=1e-5)
    assert result["mhd"] == pytest.approx(max(h_ab, h_ba), abs=1e-5)


@pytest.mark.parametrize("spacing", SPACINGS)
def test_hd_and_asd_match_simpleitk(spacing):
    sitk = pytest.importorskip("SimpleITK")

    def boundary_image(mask):
        image = sitk.GetImageFromArray(M.boundary(mask).astype(np.uint8).transpose(2, 1, 0))
        image.SetSpacing(spacing)
        return image

    a, b = blobs((22, 24, 20), 7), blobs((22, 24, 20), 8, level=0.51)
    hd_filter = sitk.HausdorffDistanceImageFilter()
    hd_filter.Execute(boundary_image(a), boundary_image(b))
    result = M.surface_metrics(a, b, spacing)
    assert result["hd"] == pytest.approx(hd_filter.GetHausdorffDistance(), abs=1e-5)
    # ITK's "average Hausdorff distance" is the mean of the two directed means: Eq. 10
    assert result["asd"] == pytest.approx(hd_filter.GetAverageHausdorffDistance(), abs=1e-5)


# ---------------------------------------------------------------------------- vectorised MHD


def brute_force_vmhd(pred, truth):
    """The reference definition with explicit N x N distance matrices."""
    values = []
    for axis in range(pred.ndim):
        a = np.moveaxis(pred, axis, -1).reshape(-1, pred.shape[axis]).astype(float)
        b = np.moveaxis(truth, axis, -1).reshape(-1, truth.shape[axis]).astype(float)
        d = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1))
        values.append(max(d.min(axis=1).mean(), d.min(axis=0).mean()))
    return float(np.mean(values))


def reference_formula_vmhd(pred, truth):
    """RicardoZiTseng/3D-MASNet util/metrics.py MHD, restated (inner-product distances)."""
    depth, height, width = truth.shape
    p, t = pred.astype(float), truth.astype(float)

    def lines(x):
        return (
            np.array([x[:, i, j] for i in range(height) for j in range(width)]),
            np.array([x[i, :, j] for i in range(depth) for j in range(width)]),
            np.array([x[i, j, :] for i in range(depth) for j in range(height)]),
        )

    out = []
    for a, b in zip(lines(p), lines(t), strict=True):
        sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
        d = np.sqrt(np.maximum(sq, 0))
        out.append(max(d.min(axis=1).mean(), d.min(axis=0).mean()))
    return float(np.mean(out))


def test_vectorised_mhd_hand_computed():
    truth = np.zeros((2, 2, 2), bool)
    truth[0, 0, 0] = True
    # empty prediction: along each axis one truth line [1, 0] is 1 away from the all-zero lines,
    # the other three lines coincide: per axis max(0, 1/4) = 1/4
    assert vectorised_mhd(np.zeros_like(truth), truth) == pytest.approx(0.25, abs=1e-15)
    # the voxel moved along axis 0: axis-0 lines [1,0] vs [0,1] give 1/4 each way, while along
    # axes 1 and 2 the sets of lines are identical (only their positions differ): mean 1/12
    pred = np.zeros_like(truth)
    pred[1, 0, 0] = True
    assert vectorised_mhd(pred, truth) == pytest.approx(1 / 12, abs=1e-15)
    assert vectorised_mhd(truth, truth) == 0.0
    assert vectorised_mhd(np.zeros_like(truth), np.zeros_like(truth)) == 0.0


def random_mask_pairs(count, seed):
    rng = np.random.default_rng(seed)
    for k in range(count):
        shape = tuple(int(s) for s in rng.integers(1, 10, size=3))
        pred = rng.random(shape) < rng.uniform(0.05, 0.95)
        truth = rng.random(shape) < rng.uniform(0.05, 0.95)
        if k % 4 == 1:  # near-identical: the fast paths (bounds, shared lines)
            truth = pred.copy()
            flips = rng.random(shape) < 0.05
            truth ^= flips
        elif k % 4 == 2:  # sparse masks inside a larger empty field: the cropping path
            pred = np.zeros(shape, bool)
            truth = np.zeros(shape, bool)
            pred.flat[rng.integers(0, pred.size, 2)] = True
            truth.flat[rng.integers(0, truth.size, 3)] = True
        yield pred, truth


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_mhd_equals_brute_force(seed):
    rng = np.random.default_rng(100 + seed)
    for pred, truth in random_mask_pairs(60, seed):
        block = int(rng.integers(1, 4096))  # tiny tiles exercise the tiling
        expected = brute_force_vmhd(pred, truth)
        assert abs(vectorised_mhd(pred, truth, block_bytes=block) - expected) <= 1e-12
        assert abs(vectorised_mhd(pred, truth) - expected) <= 1e-12


def test_vectorised_mhd_equals_reference_formula_on_blobs():
    for seed in range(3):
        truth = blobs((12, 14, 10), seed, sigma=1.5)
        pred = (
            blobs((12, 14, 10), seed + 10, sigma=1.5) if seed == 2 else np.roll(truth, 1, axis=seed)
        )
        expected = reference_formula_vmhd(pred, truth)
        assert abs(vectorised_mhd(pred, truth) - expected) <= 1e-12
        assert abs(brute_force_vmhd(pred, truth) - expected) <= 1e-12


def test_vectorised_mhd_memory_is_bounded():
    # 64^3: 4096 lines per axis; one N x N float64 distance matrix alone would be 128 MiB.
    # Unrelated masks defeat the shortcuts, so the tiled search really runs.
    pred, truth = blobs((64, 64, 64), 11, sigma=2.0), blobs((64, 64, 64), 12, sigma=2.0)
    tracemalloc.start()
    try:
        value = vectorised_mhd(pred, truth, block_bytes=2 * 2**20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert value > 0
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_vectorised_mhd_ignores_far_empty_space():
    # padding with empty space adds all-zero lines: identical contributions are 0, but the
    # means are over more lines, exactly as in the reference
    truth = blobs((8, 9, 7), 21)
    pred = blobs((8, 9, 7), 22)
    padded = [np.pad(x, 3) for x in (pred, truth)]
    assert vectorised_mhd(*padded) == pytest.approx(brute_force_vmhd(*padded), abs=1e-12)


# ---------------------------------------------------------------------------- per tissue


def test_evaluate_tissues_matches_single_metrics():
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 4, size=(14, 16, 12))
    truth = ndimage.median_filter(truth, size=3)
    pred = truth.copy()
    pred[rng.random(pred.shape) < 0.05] = 2
    spacing = (1.0, 0.9, 1.2)
    result = M.evaluate_tissues(pred, truth, spacing)
    assert list(result) == ["CSF", "GM", "WM"]
    assert list(result["GM"]) == list(M.METRICS)
    for label, name in {1: "CSF", 2: "GM", 3: "WM"}.items():
        p, t = pred == label, truth == label
        surface = M.surface_metrics(p, t, spacing)
        assert result[name]["dice"] == M.dice(p, t)
        assert result[name]["vs"] == M.volumetric_similarity(p, t)
        assert result[name]["mhd_vec"] == vectorised_mhd(p, t)
        for key in ("mhd", "asd", "hd95"):
            assert result[name][key] == surface[key]
    subset = M.evaluate_tissues(pred, truth, metrics=["dice"], tissues={3: "WM"})
    assert subset == {"WM": {"dice": M.dice(pred == 3, truth == 3)}}
    with pytest.raises(ValueError, match="unknown metrics"):
        M.evaluate_tissues(pred, truth, metrics=["jaccard"])


def test_evaluate_tissues_missing_tissue_gives_nan_not_crash():
    truth = np.zeros((6, 6, 6), int)
    truth[1:5, 1:5, 1:5] = 3
    truth[2:4, 2:4, 2:4] = 2
    pred = truth.copy()
    with pytest.warns(RuntimeWarning, match="CSF"):
        result = M.evaluate_tissues(pred, truth)
    assert math.isnan(result["CSF"]["dice"]) and math.isnan(result["CSF"]["mhd"])
    assert result["CSF"]["mhd_vec"] == 0.0
    assert result["WM"]["dice"] == 1.0
