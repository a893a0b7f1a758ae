"""DU-Net: exact parameter counts of the paper, structure, and whole-network fusion error."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from infant_tissue.nn import (
    ACB3d,
    MixACB,
    available_models,
    build_model,
    count_parameters,
    fuse_model,
)
from infant_tissue.nn.dunet import KerasSameConvTranspose3d
from infant_tissue.nn.fusion import randomise_batchnorm_ as randomise_batchnorm


def test_parameter_counts_match_the_paper():
    train = build_model("dunet-mixacb")
    assert count_parameters(train) == 3_109_521
    assert count_parameters(fuse_model(train)) == 2_341_141
    assert count_parameters(build_model("dunet-mixacb", deploy=True)) == 2_341_141
    assert count_parameters(build_model("dunet-baseline")) == 2_492_795


def test_reference_widths():
    model = build_model("dunet-mixacb")
    widths = {f"dense{i}": getattr(model, f"dense{i}").out_channels for i in range(1, 8)}
    assert widths == {
        "dense1": 80,
        "dense2": 88,
        "dense3": 92,
        "dense4": 94,
        "dense5": 187,
        "dense6": 229,
        "dense7": 242,
    }
    assert [getattr(model, f"trans{i}").out_channels for i in range(1, 7)] == [
        40,
        44,
        46,
        47,
        93,
        114,
    ]
    assert model.seg_conv.weight.shape == (4, 242, 1, 1, 1) and model.seg_conv.bias is None
    assert model.feature_conv.bias is not None
    assert model.dense1.denselayer0.aconv.conv.out_split == (12, 4)
    assert model.dense1.denselayer0.drop.p == 0.1
    for m in model.modules():
        if isinstance(m, nn.BatchNorm3d):
            assert (m.eps, m.momentum) == (1e-3, 0.01)


def test_baseline_uses_plain_convolutions():
    model = build_model("dunet-baseline")
    assert not any(isinstance(m, (MixACB, ACB3d)) for m in model.modules())
    unit = model.trans1.conv1.conv
    assert unit.conv.kernel_size == (3, 3, 3) and unit.conv.stride == (2, 2, 2)
    assert unit.conv.bias is not None
    with pytest.raises(ValueError, match="deploy"):
        build_model("dunet-baseline", deploy=True)


def test_registry_rejects_unknown_names():
    assert {"dunet-mixacb", "dunet-baseline"} <= set(available_models())
    with pytest.raises(ValueError, match="available"):
        build_model("unet-9000")


@pytest.mark.parametrize("name", ["dunet-mixacb", "dunet-baseline"])
def test_forward_returns_logits_of_input_size(name):
    model = build_model(name, init_features=8, growth_rate=4).eval()
    x = torch.randn(2, 2, 16, 24, 8)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 4, 16, 24, 8)
    assert not torch.allclose(y.sum(1), torch.ones(()))  # logits, not probabilities


def test_whole_network_fusion_error_float64():
    model = randomise_batchnorm(build_model("dunet-mixacb")).double().eval()
    x = torch.randn(1, 2, 16, 16, 16, dtype=torch.float64)
    fused = fuse_model(model)
    with torch.no_grad():
        err = (fused(x) - model(x)).abs().max().item()
    assert err <= 1e-9, err


def test_fuse_model_returns_a_copy_and_keeps_the_input():
    model = build_model("dunet-mixacb", init_features=8, growth_rate=4).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = fuse_model(model)
    assert model.training and not fused.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(m.deployed for m in fused.modules() if isinstance(m, ACB3d))
    assert not any(m.deployed for m in model.modules() if isinstance(m, ACB3d))


def test_transposed_convolution_drops_the_last_slice():
    torch.manual_seed(3)
    layer = KerasSameConvTranspose3d(3, 2).double()
    x = torch.randn(1, 3, 4, 5, 6, dtype=torch.float64)
    full = torch.nn.functional.conv_transpose3d(x, layer.weight, layer.bias, stride=2)
    y = layer(x)
    assert y.shape == (1, 2, 8, 10, 12)
    assert torch.equal(y, full[..., :-1, :-1, :-1])
    # PyTorch's usual "same" (padding=1, output_padding=1) drops the first slice instead.
    shifted = torch.nn.functional.conv_transpose3d(
        x, layer.weight, layer.bias, stride=2, padding=1, output_padding=1
    )
    assert not torch.allclose(y, shifted)


def test_he_initialisation_scale():
    model = build_model("dunet-mixacb")
    w = model.dense7.denselayer0.bottle.conv0.weight  # fan_in 194
    assert abs(w.std().item() / (2 / 194) ** 0.5 - 1) < 0.05
    assert w.abs().max().item() <= 2 * (2 / 194) ** 0.5 / 0.8796 + 1e-6
