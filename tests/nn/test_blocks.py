"""ACB3d / MixACB: structure, channel split, and exact fusion for every configuration DU-Net uses."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from infant_tissue.nn import ACB3d, MixACB, build_model, split_channels
from infant_tissue.nn.blocks import BRANCH_NAMES
from infant_tissue.nn.fusion import randomise_batchnorm_ as randomise_batchnorm


@pytest.mark.parametrize(
    ("channels", "expected"), [(92, (69, 23)), (46, (33, 13)), (64, (48, 16)), (16, (12, 4))]
)
def test_split_channels_reference_rule(channels, expected):
    assert split_channels(channels) == expected


def test_acb3d_branches_kernels_and_padding():
    block = ACB3d(4, 6, kernel_size=5, stride=2)
    shapes = {n: tuple(b.conv.weight.shape[2:]) for n, b in block.branches.items()}
    assert list(shapes) == list(BRANCH_NAMES)
    assert shapes == {
        "nxnxn": (5, 5, 5),
        "1xnxn": (1, 5, 5),
        "nx1xn": (5, 1, 5),
        "nxnx1": (5, 5, 1),
    }
    pads = {n: b.conv.padding for n, b in block.branches.items()}
    assert pads == {"nxnxn": (2, 2, 2), "1xnxn": (0, 2, 2), "nx1xn": (2, 0, 2), "nxnx1": (2, 2, 0)}
    for branch in block.branches.values():
        assert branch.conv.bias is None
        assert branch.bn.eps == 1e-3 and branch.bn.momentum == 0.01
    assert block(torch.randn(1, 4, 9, 8, 10)).shape == (1, 6, 5, 4, 5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(in_channels=4, out_channels=4, kernel_size=4), "odd"),
        (dict(in_channels=4, out_channels=4, kernel_size=3, stride=3), "stride"),
        (dict(in_channels=0, out_channels=4, kernel_size=3), "positive"),
    ],
)
def test_acb3d_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ACB3d(**kwargs)


def test_mixacb_rejects_empty_group():
    with pytest.raises(ValueError, match="empty group"):
        MixACB(3, 16)


def test_mixacb_groups_and_concatenation_order():
    block = MixACB(92, 46)
    assert block.in_split == (69, 23) and block.out_split == (33, 13)
    k3, k5 = block.groups
    assert (k3.kernel_size, k3.in_channels, k3.out_channels) == (3, 69, 33)
    assert (k5.kernel_size, k5.in_channels, k5.out_channels) == (5, 23, 13)
    block.eval()
    x = torch.randn(1, 92, 6, 6, 6)
    y = block(x)
    assert torch.equal(y[:, :33], k3(x[:, :69]))
    assert torch.equal(y[:, 33:], k5(x[:, 69:]))


def _acb_configs():
    """Every (in, out, kernel, stride) ACB3d configuration inside the paper's DU-Net."""
    model = build_model("dunet-mixacb")
    return sorted(
        {
            (m.in_channels, m.out_channels, m.kernel_size, m.stride)
            for m in model.modules()
            if isinstance(m, ACB3d)
        }
    )


ACB_CONFIGS = _acb_configs()


def test_dunet_uses_both_kernels_and_strides():
    assert {(k, s) for _, _, k, s in ACB_CONFIGS} == {(3, 1), (3, 2), (5, 1), (5, 2)}


@pytest.mark.parametrize(("cin", "cout", "kernel", "stride"), ACB_CONFIGS)
def test_acb3d_fusion_is_exact_for_every_dunet_configuration(cin, cout, kernel, stride):
    block = randomise_batchnorm(ACB3d(cin, cout, kernel, stride)).double().eval()
    x = torch.randn(2, cin, 10, 9, 8, dtype=torch.float64)
    with torch.no_grad():
        expected = block(x)
        k, b = block.get_equivalent_kernel_bias()
        plain = torch.nn.functional.conv3d(x, k, b, stride=stride, padding=kernel // 2)
        block.switch_to_deploy()
        fused = block(x)
    assert block.branches is None and block.deployed
    assert (plain - expected).abs().max().item() <= 1e-9
    assert (fused - expected).abs().max().item() <= 1e-9


def test_mixacb_equivalent_single_convolution():
    block = randomise_batchnorm(MixACB(24, 16, stride=2)).double().eval()
    x = torch.randn(1, 24, 10, 10, 10, dtype=torch.float64)
    with torch.no_grad():
        k, b = block.get_equivalent_kernel_bias()
        plain = torch.nn.functional.conv3d(x, k, b, stride=2, padding=2)
        assert (plain - block(x)).abs().max().item() <= 1e-9


def test_switch_to_deploy_requires_eval_and_is_idempotent():
    block = randomise_batchnorm(MixACB(16, 8))
    with pytest.raises(RuntimeError, match="eval"):
        block.switch_to_deploy()
    block.eval()
    block.switch_to_deploy()
    first = [g.fused_conv.weight.clone() for g in block.groups]
    block.switch_to_deploy()
    assert all(
        torch.equal(a, g.fused_conv.weight) for a, g in zip(first, block.groups, strict=True)
    )
    assert not any(isinstance(m, nn.BatchNorm3d) for m in block.modules())


def test_deploy_constructor_matches_switched_structure():
    built = MixACB(64, 16, deploy=True)
    switched = MixACB(64, 16).eval()
    switched.switch_to_deploy()
    assert {k: v.shape for k, v in built.state_dict().items()} == {
        k: v.shape for k, v in switched.state_dict().items()
    }
