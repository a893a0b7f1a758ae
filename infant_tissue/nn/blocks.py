"""Training-time convolution blocks of 3D-MASNet and their deploy-time equivalents.

``ACB3d`` is the paper's 3D asymmetric convolution (3D-AC, Fig. 3A); ``MixACB`` splits channels
between a kernel-3 and a kernel-5 ``ACB3d`` (Fig. 3B). Both follow the RepVGG/ACNet vocabulary:
``get_equivalent_kernel_bias()`` is pure, ``switch_to_deploy()`` replaces the branches in place.
``ConvBN3d`` is the baseline network's plain convolution + BatchNorm.
"""

from __future__ import annotations

import torch
from torch import nn

from .fusion import block_diagonal_kernel, fold_batchnorm, merge_branches

#: Keras' BatchNormalization defaults, used by the reference implementation.
KERAS_BN_EPS = 1e-3
#: Keras ``momentum=0.99`` weights the old statistic; PyTorch's momentum weights the new batch.
KERAS_BN_MOMENTUM = 0.01

#: Branch names in the order of the reference code: cube, then the three orthogonal planes.
BRANCH_NAMES = ("nxnxn", "1xnxn", "nx1xn", "nxnx1")


def branch_kernel_shape(name: str, size: int) -> tuple[int, int, int]:
    """Kernel extent of a branch: ``'1xnxn'`` with ``size=3`` gives ``(1, 3, 3)``."""
    return tuple(1 if c == "1" else size for c in name.split("x"))  # type: ignore[return-value]


def split_channels(channels: int, ratio: tuple[int, int] = (3, 1)) -> tuple[int, int]:
    """Split channels between the two MixACB groups with the reference code's rule.

    Integer division first, ``first = C // sum(ratio) * ratio[0]``, the rest to the second group:
    92 channels split 69/23 and 46 split 33/13 (not 34/12).
    """
    first = channels // sum(ratio) * ratio[0]
    return first, channels - first


class ConvBN3d(nn.Module):
    """Conv3d followed by BatchNorm3d; the unit of one asymmetric branch or of the baseline.

    Input ``(N, in_channels, D, H, W)``; output ``(N, out_channels, D', H', W')``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int, int],
        stride: int = 1,
        bias: bool = False,
        bn_eps: float = KERAS_BN_EPS,
        bn_momentum: float = KERAS_BN_MOMENTUM,
    ) -> None:
        super().__init__()
        padding = tuple(k // 2 for k in kernel_size)
        self.conv = nn.Conv3d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias
        )
        self.bn = nn.BatchNorm3d(out_channels, eps=bn_eps, momentum=bn_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Kernel and bias of the equivalent single convolution (BatchNorm folded in)."""
        bn = self.bn
        return fold_batchnorm(
            self.conv.weight,
            bn.weight,
            bn.bias,
            bn.running_mean,
            bn.running_var,
            bn.eps,
            self.conv.bias,
        )


def _check_block_args(in_channels: int, out_channels: int, kernel_size: int, stride: int) -> None:
    if in_channels < 1 or out_channels < 1:
        raise ValueError(f"channels must be positive, got {in_channels}->{out_channels}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride}")


class ACB3d(nn.Module):
    """3D asymmetric convolution block: ``n×n×n + 1×n×n + n×1×n + n×n×1`` branches, summed.

    Each branch is a bias-free Conv3d with its own BatchNorm3d and zero padding ``n//2`` on the
    axes where its kernel is ``n`` (0 where it is 1), so all branches give the same output size
    for stride 1 or 2. After ``switch_to_deploy()`` the block is a single biased ``n³`` Conv3d.

    Input ``(N, in_channels, D, H, W)``; output ``(N, out_channels, D/stride, H/stride, W/stride)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        bn_eps: float = KERAS_BN_EPS,
        bn_momentum: float = KERAS_BN_MOMENTUM,
        deploy: bool = False,
    ) -> None:
        super().__init__()
        _check_block_args(in_channels, out_channels, kernel_size, stride)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.branches: nn.ModuleDict | None
        self.fused_conv: nn.Conv3d | None
        if deploy:
            self.branches = None
            self.fused_conv = self._make_fused_conv()
        else:
            self.branches = nn.ModuleDict(
                {
                    name: ConvBN3d(
                        in_channels,
                        out_channels,
                        branch_kernel_shape(name, kernel_size),
                        stride=stride,
                        bn_eps=bn_eps,
                        bn_momentum=bn_momentum,
                    )
                    for name in BRANCH_NAMES
                }
            )
            self.fused_conv = None

    @property
    def deployed(self) -> bool:
        return self.fused_conv is not None

    def _make_fused_conv(self) -> nn.Conv3d:
        return nn.Conv3d(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            stride=self.stride,
            padding=self.kernel_size // 2,
            bias=True,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused_conv is not None:
            return self.fused_conv(x)
        assert self.branches is not None
        out = None
        for branch in self.branches.values():
            y = branch(x)
            out = y if out is None else out + y
        return out

    def get_equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Kernel ``(out, in, n, n, n)`` and bias ``(out,)`` of the equivalent plain convolution.

        Uses the BatchNorm running statistics, so it equals the block's eval-mode output.
        """
        if self.fused_conv is not None:
            return self.fused_conv.weight.detach().clone(), self.fused_conv.bias.detach().clone()
        assert self.branches is not None
        with torch.no_grad():
            return merge_branches(
                [branch.folded() for branch in self.branches.values()], self.kernel_size
            )

    def switch_to_deploy(self) -> None:
        """Replace the four branches by their fused convolution (one-way, idempotent).

        Raises ``RuntimeError`` in training mode: folding uses running statistics, which differ
        from the batch statistics a training-mode block would use.
        """
        if self.fused_conv is not None:
            return
        if self.training:
            raise RuntimeError("switch_to_deploy() needs eval mode: call model.eval() first")
        kernel, bias = self.get_equivalent_kernel_bias()
        fused = self._make_fused_conv().to(device=kernel.device, dtype=kernel.dtype)
        with torch.no_grad():
            fused.weight.copy_(kernel)
            fused.bias.copy_(bias)
        self.fused_conv = fused
        self.branches = None


class MixACB(nn.Module):
    """Mixed-scale asymmetric convolution block (paper Sec. 2.1.3).

    The first ``C // 4 * 3`` input channels go to a kernel-3 ``ACB3d`` producing the first
    ``K // 4 * 3`` outputs; the remaining channels go to a kernel-5 ``ACB3d``; outputs are
    concatenated kernel-3 group first.

    Input ``(N, in_channels, D, H, W)``; output ``(N, out_channels, D/stride, H/stride, W/stride)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        kernel_sizes: tuple[int, int] = (3, 5),
        mix_ratio: tuple[int, int] = (3, 1),
        bn_eps: float = KERAS_BN_EPS,
        bn_momentum: float = KERAS_BN_MOMENTUM,
        deploy: bool = False,
    ) -> None:
        super().__init__()
        if len(kernel_sizes) != 2 or len(mix_ratio) != 2:
            raise ValueError("MixACB has exactly two groups: give two kernel sizes and two ratios")
        in_split = split_channels(in_channels, tuple(mix_ratio))
        out_split = split_channels(out_channels, tuple(mix_ratio))
        if min(in_split + out_split) < 1:
            raise ValueError(
                f"MixACB {in_channels}->{out_channels} with ratio {tuple(mix_ratio)} leaves an "
                f"empty group (inputs {in_split}, outputs {out_split})"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.kernel_sizes = tuple(kernel_sizes)
        self.in_split = in_split
        self.out_split = out_split
        self.groups = nn.ModuleList(
            ACB3d(c_in, c_out, k, stride, bn_eps, bn_momentum, deploy=deploy)
            for c_in, c_out, k in zip(in_split, out_split, kernel_sizes, strict=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, second = torch.split(x, self.in_split, dim=1)
        return torch.cat([self.groups[0](first), self.groups[1](second)], dim=1)

    def get_equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole block as one plain convolution with kernel ``max(kernel_sizes)³``.

        The kernel is block-diagonal over the two channel groups (padding ``max // 2``). The
        deploy form keeps the two groups as separate convolutions because that is cheaper
        (23·C·K instead of 125·C·K multiply-adds per voxel, paper Sec. 2.1.3).
        """
        size = max(self.kernel_sizes)
        return block_diagonal_kernel([g.get_equivalent_kernel_bias() for g in self.groups], size)

    def switch_to_deploy(self) -> None:
        """Fuse both groups in place (requires eval mode; idempotent)."""
        for group in self.groups:
            group.switch_to_deploy()
