"""Pure re-parameterisation math: fold BatchNorm into convolutions and merge asymmetric kernels.

Every function here works on plain tensors so it can be tested against ``F.conv3d`` directly and
reused by the Keras importer, which fuses training-form weight files on import.
"""

from __future__ import annotations

import torch
from torch import nn


def fold_batchnorm(
    kernel: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    eps: float,
    bias: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode BatchNorm that follows a convolution into the convolution.

    ``BN(conv(x) + b) = conv'(x) + b'`` with ``conv' = conv * gamma / std`` and
    ``b' = beta + (b - mean) * gamma / std`` (paper Eq. 1), ``std = sqrt(var + eps)``.

    Parameters
    ----------
    kernel
        Convolution weight ``(out, in, kd, kh, kw)``.
    gamma, beta, running_mean, running_var
        BatchNorm parameters and statistics, each ``(out,)``.
    eps
        The BatchNorm epsilon the statistics were used with (1e-3 for Keras-trained models).
    bias
        Optional convolution bias ``(out,)``.
    """
    std = torch.sqrt(running_var + eps)
    scale = gamma / std
    fused_kernel = kernel * scale.reshape(-1, *([1] * (kernel.dim() - 1)))
    conv_bias = bias if bias is not None else torch.zeros_like(running_mean)
    fused_bias = beta + (conv_bias - running_mean) * scale
    return fused_kernel, fused_bias


def embed_kernel_in_cube(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad a (possibly asymmetric) 3-D kernel to ``size³``, centred.

    A ``1×n×n`` kernel applied with padding ``(0, n//2, n//2)`` equals the ``n×n×n`` kernel that
    holds it in its centre slice, applied with padding ``n//2`` — this is what makes the branches
    of an asymmetric block additive (paper Eq. 4).
    """
    pads: list[int] = []
    # F.pad takes the last axis first.
    for extent in reversed(kernel.shape[2:]):
        if (size - extent) % 2:
            raise ValueError(f"cannot centre a kernel of extent {extent} in a cube of {size}")
        half = (size - extent) // 2
        pads.extend([half, half])
    return torch.nn.functional.pad(kernel, pads)


def merge_branches(
    branches: list[tuple[torch.Tensor, torch.Tensor]], size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum BN-folded branch kernels onto one ``size³`` kernel and add their biases (Eqs. 5-6)."""
    if not branches:
        raise ValueError("no branches to merge")
    kernel = sum(embed_kernel_in_cube(k, size) for k, _ in branches)
    bias = sum(b for _, b in branches)
    return kernel, bias


def block_diagonal_kernel(
    groups: list[tuple[torch.Tensor, torch.Tensor]], size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Express grouped convolutions on consecutive channel slices as one dense ``size³`` kernel.

    Group ``g`` reads input channels ``[i_g, i_g + in_g)`` and writes outputs ``[o_g, o_g + out_g)``;
    all other weights are zero. Used to state a MixACB as a single plain convolution.
    """
    out_total = sum(k.shape[0] for k, _ in groups)
    in_total = sum(k.shape[1] for k, _ in groups)
    first = groups[0][0]
    kernel = first.new_zeros((out_total, in_total, size, size, size))
    o = i = 0
    for k, _ in groups:
        kernel[o : o + k.shape[0], i : i + k.shape[1]] = embed_kernel_in_cube(k, size)
        o += k.shape[0]
        i += k.shape[1]
    bias = torch.cat([b for _, b in groups])
    return kernel, bias


def randomise_batchnorm_(model: nn.Module, seed: int = 1) -> nn.Module:
    """Give every BatchNorm non-trivial affine parameters and running statistics, in place.

    Freshly built networks have identity BatchNorms, which would hide a wrong fold: fusion is
    checked (tests, ``infant-tissue demo``, :func:`fusion_error`) after this.
    """
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
            c = module.num_features
            with torch.no_grad():
                module.weight.copy_(torch.rand(c, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(c, generator=generator) * 0.2)
                module.running_mean.copy_(torch.randn(c, generator=generator) * 0.2)
                module.running_var.copy_(torch.rand(c, generator=generator) * 1.5 + 0.25)
    return model


def fusion_error(model: nn.Module, fused: nn.Module, x: torch.Tensor) -> float:
    """Largest absolute difference between the outputs of ``model`` (eval mode) and ``fused``."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return (fused(x) - model(x)).abs().max().item()
    finally:
        model.train(was_training)
