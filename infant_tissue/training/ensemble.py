"""Trained runs (training form) -> one fused ensemble weight bundle with provenance."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from ..bundle import (
    DEFAULT_INPUT_DOMAIN,
    Bundle,
    BundleError,
    default_metadata,
    save_bundle,
)
from ..nn import fuse_model
from ..nn.fusion import fusion_error
from .runs import load_run


def export_ensemble(
    runs: Sequence[str | Path],
    out: str | Path,
    *,
    name: str | None = None,
    dtype: torch.dtype = torch.float32,
    licence: str = "",
    description: str = "",
    overwrite: bool = False,
) -> Bundle:
    """Fuse each run and write them as the members of one bundle, with provenance.

    Every fused member is checked against its training form on a random patch; the largest
    difference is recorded in the bundle's provenance.
    """
    if not runs:
        raise ValueError("give at least one training run")
    members, sources, arch, config, domains = [], [], None, None, set()
    max_error = 0.0
    for run in runs:
        model, info = load_run(run)
        if arch is not None and info["architecture"]["kwargs"] != arch["kwargs"]:
            raise BundleError(f"{run}: architecture differs from the first run's")
        arch = info["architecture"]
        config = info.get("config", {})
        domains.add(info.get("input_domain", DEFAULT_INPUT_DOMAIN))
        fused = fuse_model(model)
        size = config.get("patch_size", 32)
        channels = info["architecture"]["kwargs"].get("in_channels", 2)
        x = torch.randn(1, channels, size, size, size)
        max_error = max(max_error, fusion_error(model, fused, x))
        members.append(fused)
        sources.append(
            {
                "run": str(Path(run)),
                "sha256": info["sha256"],
                "data": info.get("data"),
                "training_subjects": info.get("training_subjects"),
                "validation_subjects": info.get("validation_subjects"),
                "command": info.get("command"),
                "software": info.get("software"),
            }
        )
    if len(domains) > 1:
        raise BundleError(f"the runs were trained on different input domains: {sorted(domains)}")
    fused_flag = arch["name"].endswith("-mixacb")  # baselines have nothing to fuse
    size = config.get("patch_size", 32)
    metadata = default_metadata(
        name=name or Path(out).name,
        architecture={"name": arch["name"], "kwargs": arch["kwargs"], "fused": fused_flag},
        patch_size=[size] * 3,
        description=description,
        licence=licence,
        input_domain=domains.pop(),
        provenance={"runs": sources, "training_config": config, "fusion_max_abs_error": max_error},
    )
    return save_bundle(out, members, metadata, dtype=dtype, overwrite=overwrite)
