"""InfiNet (seed 002), MixNet (seed 004) and DAM-AL (seed 003): pinned parameter counts, the
structure the spec fixes, unpooling indices, shapes and input validation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from infant_tissue.nn import available_models, build_model, count_parameters
from infant_tissue.nn.damal import (
    DAMAL,
    AtrousBlock,
    ChannelAttention,
    SpatialAttention,
)
from infant_tissue.nn.infinet import InfiNet
from infant_tissue.nn.mixnet import DilateResUnit, MixNet


def bn_statistics(model: nn.Module) -> int:
    """BatchNorm running mean + variance entries (Keras "Total params" minus trainable)."""
    return sum(
        b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var"))
    )


# --- registry and counts ---------------------------------------------------------------------


def test_registered_names():
    assert {"infinet", "mixnet-v1", "mixnet-v2", "mixnet-v3", "damal"} <= set(available_models())
    assert build_model("infinet").variant == "code"
    assert build_model("mixnet-v2").version == "v2"
    with pytest.raises(TypeError):
        build_model("mixnet-v1", version="v2")


@pytest.mark.parametrize(
    ("kwargs", "trainable", "total"),
    [({}, 731_784, 736_012), ({"variant": "paper"}, 508_292, 510_596)],
)
def test_infinet_parameter_counts(kwargs, trainable, total):
    model = build_model("infinet", **kwargs)
    assert count_parameters(model) == trainable
    assert count_parameters(model) + bn_statistics(model) == total


@pytest.mark.parametrize(
    ("name", "in_channels", "trainable", "total"),
    [
        ("mixnet-v1", 3, 142_132, 143_572),
        ("mixnet-v2", 3, 77_188, 78_628),
        ("mixnet-v3", 3, 91_876, 93_316),
        ("mixnet-v1", 2, 140_332, 141_772),
        ("mixnet-v2", 2, 57_412, 58_420),
        ("mixnet-v3", 2, 62_404, 63_364),
    ],
)
def test_mixnet_parameter_counts(name, in_channels, trainable, total):
    model = build_model(name, in_channels=in_channels)
    assert count_parameters(model) == trainable
    assert count_parameters(model) + bn_statistics(model) == total


def test_mixnet_default_is_two_modalities():
    assert count_parameters(build_model("mixnet-v2")) == 57_412


def test_damal_parameter_count():
    model = build_model("damal")
    assert count_parameters(model) == 8_259_882
    assert bn_statistics(model) == 0  # instance normalisation keeps no running statistics
    assert model.widths == (16, 32, 64, 128, 256)


def test_dimensions_attribute():
    assert InfiNet.dimensions == 2 and MixNet.dimensions == 2 and DAMAL.dimensions == 3


# --- InfiNet ---------------------------------------------------------------------------------


def test_infinet_code_and_paper_structure():
    code, paper = InfiNet("code"), InfiNet("paper")
    assert [len(block.convs) for block in code.arms[0]] == [2, 2, 2]
    assert [len(block.convs) for block in paper.arms[0]] == [1, 1, 1]
    assert code.input_bn is not None and paper.input_bn is None
    assert all(d.skip_bn is not None for d in code.decoders)
    assert all(d.skip_bn is None for d in paper.decoders)
    assert code.decoders[0].skip_bn.num_features == 192
    assert code.decoders[0].reduce.conv.weight.shape == (64, 128, 1, 1)
    assert code.decoders[0].fuse.conv.weight.shape == (64, 192, 3, 3)
    assert code.classifier.weight.shape == (4, 64, 1, 1)
    # ReLU before BatchNorm (Keras Conv2D(activation='relu') then BatchNormalization).
    assert [type(m) for m in code.arms[0][0].convs[0]] == [nn.Conv2d, nn.ReLU, nn.BatchNorm2d]
    for m in code.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert (m.eps, m.momentum) == (1e-3, 0.01)
    with pytest.raises(ValueError, match="variant"):
        InfiNet("keras")


def _hook_outputs(module: nn.Module, store: list) -> None:
    module.register_forward_hook(lambda m, args, out: store.append((args, out)))


def test_infinet_unpools_with_each_arms_own_indices_and_exact_zeros():
    model = InfiNet(features=4).eval()
    pools = [[[] for _ in arm] for arm in model.arms]
    for a, arm in enumerate(model.arms):
        for b, block in enumerate(arm):
            _hook_outputs(block.pool, pools[a][b])
    unpools = [[] for _ in model.decoders]
    concat_inputs = [[] for _ in model.decoders]
    for d, decoder in enumerate(model.decoders):
        _hook_outputs(decoder.unpool, unpools[d])
        _hook_outputs(decoder.unpooled_bn, concat_inputs[d])
    x = torch.randn(2, 2, 16, 24)
    with torch.no_grad():
        model(x)
    for d in range(3):
        level = 2 - d
        calls = unpools[d]
        assert len(calls) == 2
        masks = []
        for a, ((inp, idx, size), out) in enumerate(calls):
            (pooled, arm_idx) = pools[a][level][0][1]
            assert torch.equal(idx, arm_idx)  # the matching arm's indices
            if d == 0:
                assert torch.equal(inp, pooled)  # bottleneck: that arm's own deepest map
            assert out.shape[-2:] == (16 // 2**level, 24 // 2**level) == tuple(size)
            flat_mask = torch.zeros_like(out, dtype=torch.bool).flatten(2)
            flat_mask.scatter_(2, idx.flatten(2), True)
            mask = flat_mask.view_as(out)
            assert torch.count_nonzero(out[~mask]) == 0  # exact zeros off the arg-max
            assert torch.equal(out.flatten(2).gather(2, idx.flatten(2)), inp.flatten(2))
            n, c, h, w = out.shape
            per_window = mask.view(n, c, h // 2, 2, w // 2, 2).sum(dim=(3, 5))
            assert torch.equal(per_window, torch.ones_like(per_window))
            masks.append(mask)
        assert not torch.equal(masks[0], masks[1])  # T1 and T2 arms pool differently
        if d > 0:
            assert torch.equal(calls[0][0][0], calls[1][0][0])  # one input, unpooled twice
        (concat,), _ = concat_inputs[d][0]
        assert torch.equal(concat, torch.cat([calls[0][1], calls[1][1]], dim=1))


def test_infinet_arm_sees_only_its_modality():
    model = InfiNet(features=4).eval()
    first_arm: list = []
    _hook_outputs(model.arms[0][2].pool, first_arm)
    x = torch.randn(1, 2, 16, 16)
    y = x.clone()
    y[:, 1] += torch.randn(16, 16)
    with torch.no_grad():
        model(x)
        model(y)
    assert torch.equal(first_arm[0][1][0], first_arm[1][1][0])


@pytest.mark.parametrize("variant", ["code", "paper"])
def test_infinet_shapes_and_validation(variant):
    model = InfiNet(variant, features=8)
    x = torch.randn(2, 2, 64, 96)
    assert model.train()(x).shape == (2, 4, 64, 96)
    with torch.no_grad():
        y = model.eval()(x)
    assert y.shape == (2, 4, 64, 96)
    assert not torch.allclose(y.sum(1), torch.ones(()))  # logits
    with pytest.raises(ValueError, match="divisible by 8"):
        model(torch.randn(1, 2, 60, 96))
    with pytest.raises(ValueError, match="divisible by 8"):
        model(torch.randn(1, 2, 64, 92))
    with pytest.raises(ValueError, match="slices"):
        model(torch.randn(1, 3, 64, 96))


# --- MixNet ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("in_channels", "widths"), [(3, (72, 48, 72, 48, 72)), (2, (48, 48, 48, 48, 48))]
)
def test_mixnet_v2_level_inputs(in_channels, widths):
    model = MixNet("v2", in_channels=in_channels)
    assert model.level_in_channels == widths
    assert len(model.inits) == in_channels
    assert all(isinstance(model.levels[i], nn.ModuleList) for i in (1, 3))
    assert all(len(model.levels[i]) == in_channels for i in (1, 3))
    assert all(u.shortcut is not None for u in model.modules() if isinstance(u, DilateResUnit))
    assert model.output.classifier.in_channels == in_channels * 72 + 72 + 4 * 24


def test_mixnet_v2_wiring():
    """L2_s = U2_s([L1, init_s]) and L4_s = U4_s([L3, L2_s])."""
    model = MixNet("v2", in_channels=3).eval()
    inits, levels = [], [[] for _ in range(5)]
    for init in model.inits:
        _hook_outputs(init, inits)
    for i, level in enumerate(model.levels):
        for unit in level if isinstance(level, nn.ModuleList) else [level]:
            _hook_outputs(unit, levels[i])
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    l1, l3 = levels[0][0][1], levels[2][0][1]
    for s in range(3):
        (inp2,), out2 = levels[1][s]
        assert torch.equal(inp2, torch.cat([l1, inits[s][1]], dim=1))
        (inp4,), _ = levels[3][s]
        assert torch.equal(inp4, torch.cat([l3, out2], dim=1))
    (inp3,), _ = levels[2][0]
    assert torch.equal(inp3, torch.cat([levels[1][s][1] for s in range(3)], dim=1))


def test_mixnet_units_follow_table_1():
    v1, v3 = MixNet("v1"), MixNet("v3", in_channels=3)
    assert [u.conv2.dilation[0] for u in v1.levels] == [2, 1, 4, 1, 8]
    assert [u.conv2.padding[0] for u in v1.levels] == [2, 1, 4, 1, 8]
    assert v1.level_in_channels == (72,) * 5 and v1.inits[0].conv.weight.shape == (72, 2, 5, 5)
    unit = v1.levels[0]
    assert unit.shortcut is None and unit.conv1.weight.shape == (36, 72, 1, 1)
    assert unit.conv2.bias is None and unit.conv3.weight.shape == (72, 36, 1, 1)
    assert v3.level_in_channels == (24,) * 5 and len(v3.levels[0]) == 3
    assert v3.output.classifier.in_channels == 3 * 6 * 24 + 4 * 24
    assert v3.output.bins == (2, 4, 6, 12)


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_mixnet_shapes_and_validation(version):
    model = MixNet(version, features=8)
    x = torch.randn(2, 2, 64, 96)
    assert model.train()(x).shape == (2, 4, 64, 96)
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 4, 64, 96)
    with pytest.raises(ValueError, match="even"):
        model(torch.randn(1, 2, 63, 96))
    with pytest.raises(ValueError, match="slices"):
        model(torch.randn(1, 3, 64, 96))
    with pytest.raises(ValueError, match="even"):
        MixNet(version, features=7)
    with pytest.raises(ValueError, match="version"):
        MixNet("v4")


# --- DAM-AL ----------------------------------------------------------------------------------


def test_damal_spatial_attention_kernel_pairs():
    model = DAMAL()
    expected = [((1, 9, 9), (9, 1, 1)), ((9, 1, 9), (1, 9, 1)), ((9, 9, 1), (1, 1, 9))]
    for level, width in ((0, 16), (1, 32)):
        sa = model.attention[level]
        assert isinstance(sa, SpatialAttention)
        shapes = [(tuple(p[0][0].weight.shape[2:]), tuple(p[1].weight.shape[2:])) for p in sa.pairs]
        assert shapes == expected
        for pair in sa.pairs:
            assert pair[0][0].weight.shape[:2] == (width // 2, width)
            assert pair[1].weight.shape[:2] == (1, width // 2)
            assert isinstance(pair[0][1], nn.InstanceNorm3d) and pair[0][1].affine
    sa = SpatialAttention(8, kernel_size=5).eval()
    x = torch.randn(2, 8, 6, 7, 5)
    with torch.no_grad():
        f_sa = sa.attention_map(x)
        assert f_sa.shape == (2, 1, 6, 7, 5)
        assert ((f_sa > 0) & (f_sa < 1)).all()
        assert torch.allclose(sa(x), f_sa * x)


def test_damal_atrous_and_channel_attention():
    model = DAMAL()
    for level, width in ((2, 64), (3, 128), (4, 256)):
        atrous, ca = model.attention[level]
        assert isinstance(atrous, AtrousBlock) and isinstance(ca, ChannelAttention)
        convs = [branch[0] for branch in atrous.branches]
        assert [c.dilation for c in convs] == [(d, d, d) for d in (1, 2, 3, 4)]
        assert [c.padding for c in convs] == [(d, d, d) for d in (1, 2, 3, 4)]
        assert all(c.weight.shape == (width // 4, width, 3, 3, 3) for c in convs)
        assert (ca.fc1.in_features, ca.fc1.out_features, ca.fc2.out_features) == (
            width,
            width // 4,
            width,
        )
    ca = ChannelAttention(8, reduction=4)
    x = torch.randn(3, 8, 4, 5, 6)
    with torch.no_grad():
        w = ca.attention_weights(x)
        manual = torch.sigmoid(ca.fc2(torch.relu(ca.fc1(x.mean(dim=(2, 3, 4))))))
        assert w.shape == (3, 8, 1, 1, 1)
        assert ((w > 0) & (w < 1)).all()
        assert torch.allclose(w.flatten(1), manual)
        assert torch.allclose(ca(x), w * x)
    atrous = AtrousBlock(8).eval()
    with torch.no_grad():
        assert atrous(x).shape == x.shape


def test_damal_norm_activation_and_head():
    model = DAMAL()
    assert not any(isinstance(m, nn.BatchNorm3d) for m in model.modules())
    slopes = {m.negative_slope for m in model.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.01}
    assert model.head.weight.shape == (4, 16, 1, 1, 1)
    assert [u.weight.shape[:2] for u in model.ups] == [(32, 16), (64, 32), (128, 64), (256, 128)]
    assert [d.body[0][0].in_channels for d in model.decoder] == [32, 64, 128, 256]


def test_damal_output_shape_at_32_cubed():
    model = DAMAL().eval()
    with torch.no_grad():
        y = model(torch.randn(1, 2, 32, 32, 32))
    assert y.shape == (1, 4, 32, 32, 32)
    small = DAMAL(base_width=4).train()
    y = small(torch.randn(2, 2, 32, 32, 32))
    assert y.shape == (2, 4, 32, 32, 32)
    y.square().mean().backward()
    assert all(p.grad is not None for p in small.parameters())


def test_damal_validation():
    model = DAMAL(base_width=4)
    with pytest.raises(ValueError, match="divisible by 16"):
        model(torch.randn(1, 2, 24, 32, 32))
    with pytest.raises(ValueError, match="deepest"):
        model(torch.randn(1, 2, 16, 16, 16))
    with pytest.raises(ValueError, match="patches"):
        model(torch.randn(1, 2, 32, 32))
    with pytest.raises(ValueError, match="odd"):
        DAMAL(kernel_size=8)
    with pytest.raises(ValueError, match="even"):
        DAMAL(base_width=3)
    with pytest.raises(ValueError, match="divisible"):
        DAMAL(base_width=2, dilations=(1, 2, 3))
