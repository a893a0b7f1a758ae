"""2-D slice inference: views, padding and cropping, view aggregation weights, member groups."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from infant_tissue.bundle import BundleError, default_metadata, save_bundle
from infant_tissue.inference import Predictor, normalise
from infant_tissue.inference.slices import (
    VIEW_AXIS,
    SliceInferer,
    from_view_slices,
    normalised_view_weights,
    view_slices,
)
from infant_tissue.nn import build_model, register
from infant_tissue.nn.registry import available_models

VIEWS = ["axial", "coronal", "sagittal"]


class _SliceNet(nn.Module):
    dimensions = 2
    size_multiple = 8

    def __init__(self, kind: str = "constant") -> None:
        super().__init__()
        self.kind = kind
        self.in_channels = 2
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        if h % self.size_multiple or w % self.size_multiple:
            raise ValueError("slices must be padded to the size multiple")
        if self.kind == "echo":  # logits = (T1w, T2w, 0, 0): checks slicing, padding, cropping
            return torch.cat([x, torch.zeros_like(x)], dim=1) * self.scale
        if self.kind == "view-id":  # the slice's area tells the view apart on an 8x16x24 grid
            cls = {128: 1, 192: 2, 384: 3}[h * w]
            logits = torch.zeros(n, 4, h, w)
            logits[:, cls] = 100.0
            return logits * self.scale
        return torch.tensor([0.0, 1.0, 3.0, 2.0]).view(1, 4, 1, 1).expand(n, 4, h, w) * self.scale


for _kind in ("constant", "echo", "view-id"):
    if f"test-slices-{_kind}" not in available_models():
        register(f"test-slices-{_kind}", lambda kind=_kind: _SliceNet(kind))


def slice_bundle(path, kind: str, weights=None, groups: int = 1):
    models = [build_model(f"test-slices-{kind}") for _ in range(3 * groups)]
    meta = default_metadata(
        name=f"slices-{kind}",
        architecture={"name": f"test-slices-{kind}", "kwargs": {}, "fused": False},
        dimensions=2,
        views=VIEWS,
        view_weights=weights or {},
        patch_size=None,
        stride=None,
    )
    info = [{"view": v} for _ in range(groups) for v in VIEWS]
    return save_bundle(path, models, meta, member_info=info)


def volumes(shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(1, 100, shape).astype(np.float32), rng.uniform(1, 100, shape).astype(
        np.float32
    )


def test_view_slices_round_trip_and_axes():
    volume = torch.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    for view, axis in VIEW_AXIS.items():
        slices = view_slices(volume, view)
        assert slices.shape[0] == volume.shape[1 + axis] and slices.shape[1] == 2
        assert torch.equal(from_view_slices(slices, view), volume)
        assert np.array_equal(view_slices(volume.numpy(), view), slices.numpy())
    assert VIEW_AXIS == {"sagittal": 0, "coronal": 1, "axial": 2}  # RAS+: x, y, z held fixed


def test_constant_network_gives_the_same_labels_from_every_view(tmp_path):
    bundle = slice_bundle(tmp_path / "b", "constant")
    t1, t2 = volumes((10, 13, 7))
    predictor = Predictor(bundle, device="cpu")
    image = torch.from_numpy(np.stack([t1, t2]))
    per_view = [predictor.inferer.view_probabilities(image, v) for v in VIEWS]
    for probs in per_view:
        assert probs.shape == (4, 10, 13, 7)
        assert torch.allclose(probs, per_view[0])
        assert (probs.argmax(0) == 2).all()
    result = predictor.predict(t1, t2)
    assert (result.labels == 2).all() and result.labels.shape == t1.shape
    assert np.allclose(result.probabilities, per_view[0].numpy(), atol=1e-6)
    assert result.info["dimensions"] == 2 and result.info["views"] == VIEWS


@pytest.mark.parametrize(
    ("weights", "shares"),
    [({}, (1 / 3, 1 / 3, 1 / 3)), ({"axial": 4}, (4 / 6, 1 / 6, 1 / 6))],
    ids=["infinet-average", "mixnet-1-1-4"],
)
def test_aggregation_weights(tmp_path, weights, shares):
    bundle = slice_bundle(tmp_path / "b", "view-id", weights)
    t1, t2 = volumes((8, 16, 24))
    result = Predictor(bundle, device="cpu").predict(t1, t2, vote="soft")
    axial, coronal, sagittal = shares  # the view-id network answers 1, 2, 3 for them
    for cls, share in ((1, axial), (2, coronal), (3, sagittal)):
        assert np.allclose(result.probabilities[cls], share, atol=1e-6)
    assert np.allclose(result.probabilities[0], 0, atol=1e-6)
    assert (result.labels == 1).all()  # axial's class, or the lowest label of a 1:1:1 tie
    assert result.info["view_weights"] == [bundle.view_weights[v] for v in VIEWS]
    assert normalised_view_weights(VIEWS, {"axial": 4, "coronal": 1, "sagittal": 1}) == {
        "axial": 4 / 6,
        "coronal": 1 / 6,
        "sagittal": 1 / 6,
    }


def test_slices_are_padded_and_cropped_back_exactly(tmp_path):
    bundle = slice_bundle(tmp_path / "b", "echo")
    t1, t2 = volumes((10, 13, 7), seed=4)
    predictor = Predictor(bundle, device="cpu", batch_size=3)
    result = predictor.predict(t1, t2, vote="soft")
    logits = torch.from_numpy(np.stack([normalise(t1), normalise(t2), 0 * t1, 0 * t1]))
    assert np.allclose(result.probabilities, torch.softmax(logits, 0).numpy(), atol=1e-6)


def test_member_groups_vote_and_members_mode(tmp_path):
    bundle = slice_bundle(tmp_path / "b", "constant", groups=3)
    assert len(bundle) == 9 and len(bundle.member_groups()) == 3
    t1, t2 = volumes((8, 8, 8))
    predictor = Predictor(bundle, device="cpu")
    assert predictor.predict(t1, t2).info["members_used"] == 3
    info = predictor.predict(t1, t2, mode="members:1").info
    assert info["members_used"] == 1 and info["faithful"] is False
    assert info["slices_evaluated"] == 24


def test_slice_inferer_refuses_3d_networks():
    with pytest.raises(ValueError, match="not a 2-D network"):
        SliceInferer(build_model("unet3d-baseline", base_width=4), torch.device("cpu"))


def test_2d_bundle_validation(tmp_path):
    models = [build_model("test-slices-constant") for _ in range(3)]
    base = dict(
        architecture={"name": "test-slices-constant", "kwargs": {}, "fused": False},
        dimensions=2,
        views=VIEWS,
    )
    with pytest.raises(BundleError, match="same number of members"):
        save_bundle(
            tmp_path / "a",
            models,
            default_metadata(**base),
            member_info=[{"view": "axial"}] * 2 + [{"view": "coronal"}],
        )
    with pytest.raises(BundleError, match="positive"):
        save_bundle(
            tmp_path / "b",
            models,
            default_metadata(**base, view_weights={"axial": 0}),
            member_info=[{"view": v} for v in VIEWS],
        )
    with pytest.raises(BundleError, match="3-D network"):
        save_bundle(
            tmp_path / "c",
            [build_model("unet3d-baseline", base_width=4)],
            default_metadata(
                architecture={"name": "unet3d-baseline", "kwargs": {"base_width": 4}},
                dimensions=2,
                views=["axial"],
            ),
            member_info=[{"view": "axial"}],
        )


@pytest.mark.parametrize("bad", [0, -2, 1.5])
def test_both_engines_refuse_a_bad_batch_size(bad):
    from infant_tissue.inference.engine import SlidingWindowInferer
    from infant_tissue.inference.slices import SliceInferer

    net = torch.nn.Conv3d(2, 4, 1)
    for engine in (SlidingWindowInferer, SliceInferer):
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            engine(net, torch.device("cpu"), batch_size=bad)
