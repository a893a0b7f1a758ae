"""Explicit registry of network architectures, keyed by the names stored in bundles."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from .dunet import DUNet

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str, builder: Callable[..., nn.Module]) -> None:
    """Register ``builder(**kwargs) -> nn.Module`` under ``name`` (names are unique)."""
    if name in _REGISTRY:
        raise ValueError(f"architecture {name!r} is already registered")
    _REGISTRY[name] = builder


def available_models() -> list[str]:
    """Names accepted by :func:`build_model`."""
    return sorted(_REGISTRY)


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered architecture; default keyword arguments are the paper's.

    ``"dunet-mixacb"`` is the training form of 3D-MASNet's DU-Net (pass ``deploy=True`` for the
    fused form), ``"dunet-baseline"`` the paper's baseline with plain 3×3×3 convolutions.
    """
    try:
        builder = _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown architecture {name!r}; available: {', '.join(available_models())}"
        ) from None
    return builder(**kwargs)


def _dunet_mixacb(**kwargs: Any) -> nn.Module:
    return DUNet(conv="mixacb", **kwargs)


def _dunet_baseline(**kwargs: Any) -> nn.Module:
    return DUNet(conv="baseline", **kwargs)


register("dunet-mixacb", _dunet_mixacb)
register("dunet-baseline", _dunet_baseline)


# seed 000 backbones and seed 001
from .buinet import BuiNet  # noqa: E402
from .cc3dfcn import CC3DFCN  # noqa: E402
from .msfcn import MultiStreamFCN  # noqa: E402
from .nlunet import NLUNet  # noqa: E402
from .unet3d import UNet3D  # noqa: E402


def _seed000_builder(network: Callable[..., nn.Module], **fixed: Any) -> Callable[..., nn.Module]:
    """Builder of ``network(**fixed, **kwargs)``; passing a fixed argument again is a TypeError."""

    def build(**kwargs: Any) -> nn.Module:
        return network(**fixed, **kwargs)

    return build


for _seed000_name, _seed000_network in (
    ("buinet", BuiNet),
    ("unet3d", UNet3D),
    ("cc3dfcn", CC3DFCN),
    ("nlunet", NLUNet),
):
    register(f"{_seed000_name}-baseline", _seed000_builder(_seed000_network, conv="baseline"))
    register(f"{_seed000_name}-mixacb", _seed000_builder(_seed000_network, conv="mixacb"))
register("msfcn", _seed000_builder(MultiStreamFCN, stream_channels=(1, 1)))
register("msfcn-context", _seed000_builder(MultiStreamFCN, stream_channels=(1, 1, 3)))


# seeds 002-004
from .damal import DAMAL  # noqa: E402
from .infinet import InfiNet  # noqa: E402
from .mixnet import MixNet  # noqa: E402


def _mixnet_builder(version: str) -> Callable[..., nn.Module]:
    """Builder of ``MixNet(version=version, **kwargs)``."""

    def build(**kwargs: Any) -> nn.Module:
        return MixNet(version=version, **kwargs)

    return build


register("infinet", InfiNet)  # public-code reading; variant="paper" for the text's
register("mixnet-v1", _mixnet_builder("v1"))
register("mixnet-v2", _mixnet_builder("v2"))
register("mixnet-v3", _mixnet_builder("v3"))
register("damal", DAMAL)
