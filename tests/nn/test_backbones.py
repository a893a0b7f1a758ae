"""Seed-000 backbones (BuiNet, 3D-UNet, CC-3D-FCN, NLU-Net) and seed 001's multi-stream FCN:
exact parameter counts of the spec table, MixACB placement and fusion, shapes, init, dropout."""

from __future__ import annotations

import math

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
from infant_tissue.nn.backbone_parts import xavier_bound
from infant_tissue.nn.fusion import randomise_batchnorm_ as randomise_batchnorm
from infant_tissue.nn.nlunet import GlobalAggregation

SEED000 = ("buinet", "unet3d", "cc3dfcn", "nlunet")

#: spec §1: trainable parameters (baseline, MixACB training, MixACB fused).
COUNTS = {
    "dunet": (2_492_795, 3_109_521, 2_341_141),
    "buinet": (1_552_256, 1_847_424, 1_478_848),
    "unet3d": (2_090_084, 3_117_572, 1_830_692),
    "cc3dfcn": (1_385_572, 2_038_852, 1_220_964),
    "nlunet": (1_760_452, 2_448_324, 1_589_060),
}
#: spec §1: "+ BN stats" (trainable + BatchNorm running mean/var).
TOTALS = {
    "buinet": (1_557_912, 1_855_640, 1_484_504),
    "unet3d": (2_091_492, 3_123_012, 1_830_756),
    "cc3dfcn": (1_386_532, 2_043_396, 1_221_156),
    "nlunet": (1_762_116, 2_455_108, 1_590_724),
}
#: Smallest input edge each network takes (its total down-sampling factor).
MULTIPLE = {"buinet": 16, "unet3d": 8, "cc3dfcn": 8, "nlunet": 4, "msfcn": 8}
#: Narrow variants for the forward tests (BuiNet's block widths must stay divisible by 4).
SMALL = {
    "buinet": dict(init_features=16, growth_rate=4, bn_size=2),
    "unet3d": dict(base_width=4),
    "cc3dfcn": dict(widths=(8, 8, 8, 4)),
    "nlunet": dict(base_width=4),
}
#: MixACB blocks per backbone under the spec §2 conversion rule.
#: NLU-Net: all ten residual-block 3³ convolutions (five blocks), as the pinned counts need.
MIXACB_BLOCKS = {"buinet": 2 + 16, "unet3d": 6, "cc3dfcn": 5 + 5, "nlunet": 10}


def _total(model: nn.Module) -> int:
    """Keras "Total params": floating-point state (parameters + BN running statistics)."""
    return sum(v.numel() for v in model.state_dict().values() if v.is_floating_point())


@pytest.mark.parametrize("family", list(COUNTS))
def test_parameter_counts_match_the_spec_table(family):
    baseline, training, fused = COUNTS[family]
    model = build_model(f"{family}-mixacb")
    assert count_parameters(build_model(f"{family}-baseline")) == baseline
    assert count_parameters(model) == training
    assert count_parameters(fuse_model(model)) == fused
    assert count_parameters(build_model(f"{family}-mixacb", deploy=True)) == fused


@pytest.mark.parametrize("family", SEED000)
def test_totals_with_batchnorm_statistics_match_the_spec_table(family):
    baseline, training, fused = TOTALS[family]
    assert _total(build_model(f"{family}-baseline")) == baseline
    assert _total(build_model(f"{family}-mixacb")) == training
    assert _total(build_model(f"{family}-mixacb", deploy=True)) == fused


def test_multi_stream_fcn_counts():
    assert count_parameters(build_model("msfcn")) == 9_983_116
    assert count_parameters(build_model("msfcn-context")) == 14_211_116
    assert _total(build_model("msfcn")) == 9_988_812
    assert _total(build_model("msfcn-context")) == 14_218_732


def test_registry_lists_every_entry():
    names = {f"{f}-{k}" for f in SEED000 for k in ("baseline", "mixacb")}
    assert names | {"msfcn", "msfcn-context"} <= set(available_models())
    with pytest.raises(ValueError, match="deploy"):
        build_model("unet3d-baseline", deploy=True)
    with pytest.raises(TypeError):
        build_model("buinet-baseline", conv="mixacb")
    with pytest.raises(TypeError):
        build_model("msfcn", stream_channels=(1, 1, 3))


@pytest.mark.parametrize("family", SEED000)
def test_mixacb_placement(family):
    model = build_model(f"{family}-mixacb")
    blocks = [m for m in model.modules() if isinstance(m, MixACB)]
    assert len(blocks) == MIXACB_BLOCKS[family]
    # The baseline has a plain 3³ convolution in each of those places.
    baseline = build_model(f"{family}-baseline")
    assert not any(isinstance(m, (MixACB, ACB3d)) for m in baseline.modules())
    inside = {id(m) for b in blocks for m in b.modules()}

    def cubes(net, skip=frozenset()):
        return sum(
            isinstance(m, nn.Conv3d) and m.kernel_size == (3, 3, 3) and id(m) not in skip
            for m in net.modules()
        )

    assert cubes(baseline) - cubes(model, inside) == MIXACB_BLOCKS[family]
    # The first convolution on the raw input stays plain in every backbone.
    first = next(m for m in model.modules() if isinstance(m, nn.Conv3d))
    assert first.in_channels == 2 and first.kernel_size == (3, 3, 3)


def test_mixacb_rule_details():
    bui = build_model("buinet-mixacb")
    layer = bui.dense_blocks[0][0]
    assert isinstance(layer.conv2, MixACB) and layer.conv2.out_split == (12, 4)
    assert layer.conv2.in_split == (48, 16)
    assert isinstance(bui.norm1, nn.BatchNorm3d)  # pre-activation: the stem BN stays
    assert isinstance(bui.conv1, MixACB) and isinstance(bui.conv2, MixACB)
    nlu = build_model("nlunet-mixacb")
    assert nlu.enc2.conv1.stride == 2 and isinstance(nlu.enc2.conv1, MixACB)
    assert isinstance(nlu.enc2.shortcut, nn.Conv3d)  # projections stay plain
    cc = build_model("cc3dfcn-mixacb")
    assert isinstance(cc.conv1a.conv.conv, nn.Conv3d)  # first conv plain (ConvBN3d)
    assert isinstance(cc.conv6_3, nn.Conv3d) and cc.conv6_3.kernel_size == (3, 3, 3)
    assert isinstance(cc.conv4.conv, MixACB)  # decoder conv replaced alone (no BN around)
    assert isinstance(cc.skip4.conv, nn.Conv3d) and cc.skip4.conv.kernel_size == (1, 1, 1)


@pytest.mark.parametrize("family", SEED000)
def test_full_width_fusion_error_float64(family):
    model = randomise_batchnorm(build_model(f"{family}-mixacb")).double().eval()
    m = MULTIPLE[family]
    x = torch.randn(1, 2, m, m, 2 * m, dtype=torch.float64)  # near the smallest size allowed
    fused = fuse_model(model)
    assert all(g.deployed for g in fused.modules() if isinstance(g, ACB3d))
    built = build_model(f"{family}-mixacb", deploy=True)
    assert {k: v.shape for k, v in built.state_dict().items()} == {
        k: v.shape for k, v in fused.state_dict().items()
    }
    with torch.no_grad():
        expected = model(x)
        err = (fused(x) - expected).abs().max().item()
    assert expected.abs().max().item() > 1.0  # a non-trivial output
    assert err <= 1e-9, err


@pytest.mark.parametrize("family", SEED000)
def test_switch_to_deploy_in_place_matches(family):
    model = randomise_batchnorm(build_model(f"{family}-mixacb", **SMALL[family])).double().eval()
    m = MULTIPLE[family]
    x = torch.randn(2, 2, m, 2 * m, m, dtype=torch.float64)
    with torch.no_grad():
        expected = model(x)
        model.switch_to_deploy()
        err = (model(x) - expected).abs().max().item()
    assert not any(
        isinstance(b, nn.BatchNorm3d)
        for g in model.modules()
        if isinstance(g, ACB3d)
        for b in g.modules()
    )
    assert err <= 1e-9, err


@pytest.mark.parametrize(
    ("family", "shape"),
    [
        ("buinet", (16, 32, 48)),
        ("unet3d", (32, 48, 64)),
        ("cc3dfcn", (32, 48, 64)),
        ("nlunet", (12, 16, 20)),
    ],
)
@pytest.mark.parametrize("kind", ["baseline", "mixacb"])
def test_output_shapes_non_cubic(family, shape, kind):
    model = build_model(f"{family}-{kind}", **SMALL[family])
    x = torch.randn(1, 2, *shape)
    with torch.no_grad():
        assert model.eval()(x).shape == (1, 4, *shape)
        assert model.train()(x).shape == (1, 4, *shape)


@pytest.mark.parametrize("family", [*SEED000, "msfcn"])
def test_rejects_sizes_the_network_cannot_take(family):
    name = family if family == "msfcn" else f"{family}-baseline"
    kwargs = dict(base_width=4) if family == "msfcn" else SMALL[family]
    model = build_model(name, **kwargs).eval()
    m = MULTIPLE[family]
    with pytest.raises(ValueError, match=f"multiple of {m}"):
        model(torch.randn(1, 2, m, m + m // 2, m))
    with pytest.raises(ValueError, match="multiple"):
        model(torch.randn(1, 2, m // 2, m // 2, m // 2))
    with pytest.raises(ValueError, match="input channels"):
        model(torch.randn(1, 3, m, m, m))
    with pytest.raises(ValueError, match="5-D"):
        model(torch.randn(2, m, m, m))


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("unet3d-baseline", dict(base_width=0), "base_width"),
        ("buinet-baseline", dict(dropout=1.0), "dropout"),
        ("buinet-baseline", dict(growth_rate=3, init_features=9), "divisible"),
        ("buinet-baseline", dict(block_config=(4, 4, 4)), "four dense blocks"),
        ("cc3dfcn-baseline", dict(widths=(96, 64, 64)), "widths"),
        ("nlunet-baseline", dict(attention_dropout=-0.1), "attention_dropout"),
        ("nlunet-baseline", dict(num_heads_bottom=3), "divisible"),
        ("msfcn", dict(levels=2), "levels"),
    ],
)
def test_constructor_validation(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_model(name, **kwargs)


def test_unknown_conv_kind_is_rejected():
    from infant_tissue.nn.unet3d import UNet3D

    with pytest.raises(ValueError, match="convolution kind"):
        UNet3D(conv="acnet")


def test_unet3d_skips_are_summed():
    model = build_model("unet3d-baseline")
    assert model.widths == [32, 64, 128, 256]
    for i, w in enumerate(model.widths[:-1]):
        assert model.decoders[i].conv.conv.in_channels == w  # not 2w: sum, not concatenation
        assert model.ups[i].out_channels == w


def test_buinet_reference_widths():
    model = build_model("buinet-baseline")
    assert model.block_widths == [96, 112, 120, 124]
    assert [t.out_channels for t in model.transit_blocks] == [48, 56, 60]
    kernels = [u.kernel_size[0] for u in model.upsampling_blocks]
    assert kernels == [4, 6, 10, 18]
    assert model.conv_class.in_channels == 48 and model.conv_class.bias is not None
    assert all(t.pool.bias is not None for t in model.transit_blocks)


def test_cc3dfcn_xavier_uniform_initialisation():
    model = build_model("cc3dfcn-baseline")
    w = model.conv1b.conv.conv.weight  # 96 -> 96, 3³: fan_in = fan_out = 2592
    bound = math.sqrt(6 / (2 * 96 * 27))
    assert xavier_bound(w) == pytest.approx(bound)
    assert w.abs().max().item() <= bound
    assert w.abs().max().item() > 0.99 * bound
    # U(-a, a) has std a/sqrt(3); He-normal would give sqrt(2/2592) = 1.42x that.
    assert abs(w.std().item() / (bound / math.sqrt(3)) - 1) < 0.02
    assert torch.all(model.conv1b.conv.conv.bias == 0)
    up = model.up4.conv.weight
    assert up.abs().max().item() <= xavier_bound(up)


@pytest.mark.parametrize("name", ["unet3d-baseline", "nlunet-baseline", "msfcn"])
def test_he_initialisation(name):
    model = build_model(name)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv3d) and m.weight.numel() > 10**5]
    w = convs[0].weight
    fan_in = w[0].numel()
    assert abs(w.std().item() / math.sqrt(2 / fan_in) - 1) < 0.05


@pytest.mark.parametrize("size", [16, 32])
def test_nlunet_aggregation_has_no_fixed_size(size):
    model = build_model("nlunet-mixacb", base_width=4).eval()
    with torch.no_grad():
        y = model(torch.randn(1, 2, size, size, size))
    assert y.shape == (1, 4, size, size, size)
    assert torch.isfinite(y).all()


def test_global_aggregation_matches_a_hand_computation():
    torch.manual_seed(1)
    block = GlobalAggregation(6, 4, 4, 5, num_heads=2, dropout=0.5).double().eval()
    x = torch.randn(1, 6, 2, 3, 2, dtype=torch.float64)
    flat = x.reshape(6, -1)  # (C, P)

    def proj(conv):
        return conv.weight.reshape(conv.out_channels, -1) @ flat + conv.bias[:, None]

    q, k, v = proj(block.query), proj(block.key), proj(block.value)
    heads = []
    for h in range(2):
        qh, kh, vh = q[2 * h : 2 * h + 2], k[2 * h : 2 * h + 2], v[2 * h : 2 * h + 2]
        att = torch.softmax(qh.T @ kh / math.sqrt(2), dim=1)  # (Pq, Pk), rows sum to 1
        heads.append((att @ vh.T).T)
    o = block.output.weight.reshape(5, 4) @ torch.cat(heads) + block.output.bias[:, None]
    with torch.no_grad():
        y = block(x)
    assert y.shape == (1, 5, 2, 3, 2)
    assert torch.allclose(y.reshape(5, -1), o, atol=1e-12)


@pytest.mark.parametrize("name", ["buinet-mixacb", "nlunet-mixacb"])
def test_dropout_only_in_training(name):
    family = name.split("-")[0]
    model = build_model(name, **SMALL[family])
    m = MULTIPLE[family]
    x = torch.randn(2, 2, m, m, m)  # batch 2: train-mode BN sees one voxel at the bottom
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(x), model(x))
        model.train()
        assert not torch.equal(model(x), model(x))


def test_msfcn_outputs_and_streams():
    model = build_model("msfcn", base_width=4)
    x = torch.randn(2, 2, 16, 24, 32)
    outs = model.forward_with_aux(x)
    assert [tuple(o.shape) for o in outs] == [
        (2, 4, 16, 24, 32),
        (2, 4, 8, 12, 16),
        (2, 4, 4, 6, 8),
    ]
    assert model.train()(x).shape == (2, 4, 16, 24, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model.forward_with_aux(x)[0])
    assert len(model.streams) == 2
    # Decoder level l takes w_l (up-sampled) + S·w_l (every stream's skip) channels.
    for i, w in enumerate((4, 8, 16)):
        assert model.decoders[i].block[0][0].in_channels == 3 * w
        assert model.classifiers[i].in_channels == w


def test_msfcn_context_takes_five_channels():
    model = build_model("msfcn-context", base_width=4).eval()
    assert model.in_channels == 5 and model.stream_channels == (1, 1, 3)
    assert model.streams[2].levels[0].block[0][0].in_channels == 3
    x = torch.randn(1, 5, 8, 8, 16)
    with torch.no_grad():
        y = model(x)
        x2 = x.clone()
        x2[:, 2:] += 1.0  # the context stream reaches the output
        assert not torch.allclose(model(x2), y)
    assert y.shape == (1, 4, 8, 8, 16)
    with pytest.raises(ValueError, match="5 input channels"):
        model(torch.randn(1, 2, 8, 8, 8))
