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
