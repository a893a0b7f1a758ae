"""Pure fusion math against F.conv3d / F.batch_norm, in float64."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from infant_tissue.nn.fusion import (
    block_diagonal_kernel,
    embed_kernel_in_cube,
    fold_batchnorm,
    merge_branches,
)


def randn(*shape):
    return torch.randn(*shape, dtype=torch.float64)


def rand(*shape):
    return torch.rand(*shape, dtype=torch.float64)


def _bn_stats(c: int):
    return (
        rand(c) + 0.5,  # gamma
        randn(c) * 0.3,  # beta
        randn(c) * 0.5,  # running mean
        rand(c) * 2 + 0.1,  # running var
    )


def test_fold_batchnorm_matches_conv_then_bn():
    x = randn(2, 5, 7, 6, 5)
    kernel = randn(4, 5, 3, 3, 3)
    bias = randn(4)
    gamma, beta, mean, var = _bn_stats(4)
    expected = F.batch_norm(
        F.conv3d(x, kernel, bias, padding=1), mean, var, gamma, beta, training=False, eps=1e-3
    )
    k, b = fold_batchnorm(kernel, gamma, beta, mean, var, 1e-3, bias)
    assert (F.conv3d(x, k, b, padding=1) - expected).abs().max() < 1e-12


def test_fold_batchnorm_without_bias_uses_zero_bias():
    kernel = randn(3, 2, 1, 1, 1)
    gamma, beta, mean, var = _bn_stats(3)
    _, b = fold_batchnorm(kernel, gamma, beta, mean, var, 1e-3)
    assert torch.allclose(b, beta - mean * gamma / torch.sqrt(var + 1e-3))


def test_asymmetric_kernel_embedded_in_cube_gives_same_output():
    x = randn(1, 3, 9, 8, 7)
    for shape, pad in (((1, 5, 5), (0, 2, 2)), ((5, 1, 5), (2, 0, 2)), ((5, 5, 1), (2, 2, 0))):
        k = randn(2, 3, *shape)
        for stride in (1, 2):
            direct = F.conv3d(x, k, stride=stride, padding=pad)
            cube = F.conv3d(x, embed_kernel_in_cube(k, 5), stride=stride, padding=2)
            assert (direct - cube).abs().max() < 1e-12


def test_merge_branches_sums_outputs():
    x = randn(1, 2, 6, 6, 6)
    branches = [
        (randn(3, 2, 3, 3, 3), randn(3)),
        (randn(3, 2, 1, 3, 3), randn(3)),
    ]
    expected = F.conv3d(x, branches[0][0], branches[0][1], padding=1) + F.conv3d(
        x, branches[1][0], branches[1][1], padding=(0, 1, 1)
    )
    k, b = merge_branches(branches, 3)
    assert (F.conv3d(x, k, b, padding=1) - expected).abs().max() < 1e-12


def test_block_diagonal_kernel_equals_grouped_convolutions():
    x = randn(1, 7, 6, 6, 6)
    g3 = (randn(3, 5, 3, 3, 3), randn(3))
    g5 = (randn(2, 2, 5, 5, 5), randn(2))
    expected = torch.cat(
        [F.conv3d(x[:, :5], *g3, padding=1), F.conv3d(x[:, 5:], *g5, padding=2)], 1
    )
    k, b = block_diagonal_kernel([g3, g5], 5)
    assert k.shape == (5, 7, 5, 5, 5)
    assert (F.conv3d(x, k, b, padding=2) - expected).abs().max() < 1e-12
