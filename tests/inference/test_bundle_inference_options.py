"""What a bundle asks of the engine: window size, per-window normalisation (seed 001), its own
post-processing, and a first stage whose segmentation gives the context maps (seed 001)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from infant_tissue.bundle import BundleError, default_metadata, load_bundle, save_bundle
from infant_tissue.inference import Predictor, normalise, parse_mode
from infant_tissue.inference.context import context_maps
from infant_tissue.inference.normalisation import window_transform, zscore_windows
from infant_tissue.inference.postprocess import postprocess
from infant_tissue.nn import build_model
from infant_tissue.training import TrainingConfig
from infant_tissue.training.trainer import _input_transform

from ..backbone_fixtures import backbone_bundle

UNET = {"base_width": 4}


def unet_bundle(path, model, **meta):
    return save_bundle(
        path,
        [model],
        default_metadata(
            architecture={"name": "unet3d-baseline", "kwargs": UNET, "fused": False},
            patch_size=[16] * 3,
            **meta,
        ),
    )


def phantom(shape=(16, 16, 16), seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(10, 100, shape).astype(np.float32), rng.uniform(10, 100, shape).astype(
        np.float32
    )


def test_zscore_windows():
    x = torch.randn(3, 5, 4, 4, 4) * 7 + 3
    x[1, 0] = 2.0  # a constant channel becomes 0
    y = zscore_windows(x)
    assert torch.allclose(y[:, :2].mean(dim=(2, 3, 4))[[0, 2]], torch.zeros(2, 2), atol=1e-5)
    assert torch.allclose(y[[0, 2], :2].std(dim=(2, 3, 4), unbiased=False), torch.ones(2, 2))
    assert (y[1, 0] == 0).all() and torch.equal(y[:, 2:], x[:, 2:])  # context kept as is


def test_per_window_normalisation_is_honoured_for_that_bundle_only(tmp_path):
    torch.manual_seed(1)
    model = build_model("unet3d-baseline", **UNET).eval()
    plain = unet_bundle(tmp_path / "plain", model)
    method = {"method": "zscore-nonzero+patch", "description": "per window"}
    patched = unet_bundle(tmp_path / "patch", model, normalisation=method)
    t1, t2 = phantom((32, 16, 16))
    t1[16:] *= 3  # the two 16³ windows differ in brightness: per-window statistics matter
    image = torch.from_numpy(np.stack([normalise(t1), normalise(t2)]))[None]
    halves = (image[..., :16, :, :], image[..., 16:, :, :])
    with torch.no_grad():
        expected_plain = torch.cat([torch.softmax(model(h), 1) for h in halves], 2)[0].numpy()
        expected_patch = torch.cat([torch.softmax(model(zscore_windows(h)), 1) for h in halves], 2)[
            0
        ].numpy()
    got_plain = (
        Predictor(plain, device="cpu").predict(t1, t2, mode="stride16+mask:brain").probabilities
    )
    result = Predictor(patched, device="cpu").predict(t1, t2, mode="stride16+mask:brain")
    assert np.allclose(got_plain, expected_plain, atol=1e-5)
    assert np.allclose(result.probabilities, expected_patch, atol=1e-5)
    assert not np.allclose(expected_plain, expected_patch, atol=1e-3)
    assert result.info["normalisation"] == "zscore-nonzero+patch"
    # training applies the very same function
    config = TrainingConfig.for_architecture("msfcn")
    assert _input_transform(config) is window_transform("zscore-nonzero+patch") is zscore_windows


def test_bundle_postprocessing(tmp_path):
    torch.manual_seed(2)
    model = build_model("unet3d-baseline", **UNET).eval()
    options = {"largest_component": True, "min_island": 100, "holes": True, "connectivity": 3}
    raw = unet_bundle(tmp_path / "raw", model)
    clean = unet_bundle(tmp_path / "clean", model, postprocess=options)
    t1, t2 = phantom((24, 24, 24), seed=3)
    a = Predictor(raw, device="cpu").predict(t1, t2, mode="fast")
    b = Predictor(clean, device="cpu").predict(t1, t2, mode="fast")
    assert np.array_equal(b.labels, postprocess(a.labels, **options))
    assert b.info["postprocessed"] and not a.info["postprocessed"]
    with pytest.raises(BundleError, match="postprocess takes only"):
        unet_bundle(tmp_path / "bad", model, postprocess={"islands": 3})


def test_two_stage_bundle(tmp_path):
    path = backbone_bundle(tmp_path / "fcn2", "msfcn-context")
    bundle = load_bundle(path)
    assert bundle.metadata["first_stage"]["context"]["clip_mm"] == 20.0
    t1, t2 = phantom((16, 16, 16), seed=5)
    predictor = Predictor(bundle, device="cpu")
    maps, info = predictor.first_stage.context(t1, t2, parse_mode("faithful"), "hard")
    alone = Predictor(bundle.first_stage(), device="cpu").predict(t1, t2)
    assert np.array_equal(maps, context_maps(alone.labels))
    result = predictor.predict(t1, t2)
    assert result.info["first_stage"]["bundle"] == bundle.first_stage().name
    assert result.labels.shape == t1.shape
    # the first stage is checked as strictly as the bundle itself
    meta_file = path / "stage1" / "model.json"
    meta = json.loads(meta_file.read_text())
    meta["name"] = "swapped"
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="first_stage"):
        load_bundle(path)


def test_window_size_comes_from_the_bundle_and_fast_mode_for_64(tmp_path):
    kwargs = {"init_features": 16, "growth_rate": 4, "bn_size": 2}
    model = build_model("buinet-mixacb", deploy=True, **kwargs).eval()
    bundle = save_bundle(
        tmp_path / "bui",
        [model],
        default_metadata(
            architecture={"name": "buinet-mixacb", "kwargs": kwargs, "fused": True},
            patch_size=[64] * 3,
        ),
    )
    predictor = Predictor(bundle, device="cpu")
    t1 = np.zeros((72, 64, 64), np.float32)
    t1[4:68, 8:56, 10:50] = 1
    t1 *= 10 + np.arange(64, dtype=np.float32)[None, None, :]
    t1n = normalise(t1)
    faithful = predictor.plan(t1, t1n, parse_mode("faithful"), "normalised")
    fast = predictor.plan(t1, t1n, parse_mode("fast"), "brain")
    whole = predictor.plan(t1, t1n, parse_mode("whole"), "brain")
    assert faithful.patch == (64, 64, 64) and faithful.stride == (8, 8, 8)
    assert fast.patch == (64, 64, 64) and fast.stride == (32, 32, 32)
    assert all(p % 16 == 0 for p in whole.patch)  # BuiNet pools four times
    assert len(faithful.starts) == 2 and len(fast.starts) == 2
    result = predictor.predict(t1, t1 * 0.5, mode="fast")
    assert result.info["patch_size"] == [64, 64, 64] and result.info["stride"] == [32, 32, 32]
