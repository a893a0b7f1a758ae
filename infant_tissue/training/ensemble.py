"""Trained runs (training form) -> one ensemble weight bundle with provenance.

MixACB networks are fused (every block folded into one convolution per group); every other
network is copied as trained (nothing to fold), with the same provenance. What inference needs
to know beyond the weights comes from the runs' configuration and the backbone's paper
(:func:`~.backbones.bundle_defaults`): patch size and stride, the normalisation (seed 001's
per-window z-score), the post-processing (seed 001), the views and their weights (2-D
networks), and the first-stage bundle of seed 001's FCN-2, built from the FCN-1 runs that gave
its context maps and stored inside the bundle.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from .._types import VIEWS
from ..bundle import Bundle, BundleError, default_metadata, save_bundle
from ..bundle_schema import DEFAULT_INPUT_DOMAIN
from ..nn import fuse_model, size_multiple, spatial_dimensions
from ..nn.fusion import fusion_error
from .backbones import bundle_defaults
from .runs import load_run

NORMALISATION_TEXT = {
    "zscore-nonzero": "each image z-scored over its voxels > 0, then multiplied by that mask",
    "zscore-nonzero+patch": "each image z-scored over its voxels > 0, then multiplied by that "
    "mask; then every network input window z-scored per image channel over all its voxels "
    "(seed 001, training and inference)",
}


def _probe(model: torch.nn.Module, patch_size: int) -> torch.Tensor:
    """A random input of the network's kind for the fused-vs-trained check."""
    channels = int(getattr(model, "in_channels", 2))
    if spatial_dimensions(model) == 2:
        side = max(64, size_multiple(model))
        return torch.randn(1, channels, side, side)
    return torch.randn(1, channels, patch_size, patch_size, patch_size)


def export_ensemble(
    runs: Sequence[str | Path],
    out: str | Path,
    *,
    name: str | None = None,
    dtype: torch.dtype = torch.float32,
    licence: str = "",
    description: str = "",
    overwrite: bool = False,
    stride: int | None = None,
    view_weights: Mapping[str, float] | None = None,
    postprocess: bool | None = None,
) -> Bundle:
    """Fuse (or copy) each run and write them as the members of one bundle, with provenance.

    Every member is checked against its training form on a random input; the largest
    difference is recorded in the bundle's provenance. ``stride`` overrides the backbone's
    inference stride (default: its paper's, 8 for most), ``view_weights`` a 2-D bundle's view
    weights (default 1:1:1; MixNet's paper uses axial 4), ``postprocess=False`` drops a
    backbone's default clean-up.

    Runs of a 2-D network are grouped by view: the ``k``-th run of each view forms the ``k``-th
    ensemble member, so every view needs the same number of runs.
    """
    if not runs:
        raise ValueError("give at least one training run")
    loaded = [(Path(run), *load_run(run)) for run in runs]
    arch = loaded[0][2]["architecture"]
    config = loaded[0][2].get("config", {})
    for run, _model, info in loaded:
        other = info["architecture"]
        if other["name"] != arch["name"] or other.get("kwargs") != arch.get("kwargs"):
            raise BundleError(f"{run}: architecture differs from the first run's")
        if info.get("config", {}).get("normalisation") != config.get("normalisation"):
            raise BundleError(f"{run}: normalisation differs from the first run's")
    domains = {info.get("input_domain", DEFAULT_INPUT_DOMAIN) for _r, _m, info in loaded}
    if len(domains) > 1:
        raise BundleError(f"the runs were trained on different input domains: {sorted(domains)}")
    dims = spatial_dimensions(loaded[0][1])
    if dims == 2:
        order = {v: i for i, v in enumerate(VIEWS)}
        views = sorted({info["config"]["view"] for _r, _m, info in loaded}, key=order.get)
        by_view = {v: [r for r in loaded if r[2]["config"]["view"] == v] for v in views}
        counts = {v: len(rs) for v, rs in by_view.items()}
        if len(set(counts.values())) != 1:
            raise BundleError(f"every view needs the same number of runs, got {counts}")
        loaded = [by_view[v][k] for k in range(counts[views[0]]) for v in views]
    size = int(config.get("patch_size", 32))
    members, sources, max_error = [], [], 0.0
    for run, model, info in loaded:
        fused = fuse_model(model)
        max_error = max(max_error, fusion_error(model, fused, _probe(model, size)))
        members.append(fused)
        sources.append(
            {
                "run": str(run),
                "sha256": info["sha256"],
                "data": info.get("data"),
                "training_subjects": info.get("training_subjects"),
                "validation_subjects": info.get("validation_subjects"),
                "command": info.get("command"),
                "software": info.get("software"),
                **({"view": info["config"]["view"]} if dims == 2 else {}),
            }
        )
    defaults = bundle_defaults(arch["name"])
    method = str(config.get("normalisation", "zscore-nonzero"))
    options: dict[str, Any] = {
        "dimensions": dims,
        "normalisation": {"method": method, "description": NORMALISATION_TEXT[method]},
        "postprocess": defaults.get("postprocess") if postprocess is not False else None,
    }
    if dims == 2:
        weights = dict(view_weights or defaults.get("view_weights") or {})
        options.update(
            views=views,
            view_weights={v: float(weights.get(v, 1.0)) for v in views},
            patch_size=None,
            stride=None,
        )
        member_info = [{"view": info["config"]["view"]} for _r, _m, info in loaded]
    else:
        step = int(stride or defaults.get("stride", 8))
        options.update(patch_size=[size] * 3, stride=[min(step, size)] * 3)
        member_info = None
    metadata = default_metadata(
        name=name or Path(out).name,
        architecture={
            "name": arch["name"],
            "kwargs": arch["kwargs"],
            "fused": arch["name"].endswith("-mixacb"),  # the others have nothing to fuse
        },
        description=description,
        licence=licence,
        input_domain=domains.pop(),
        provenance={"runs": sources, "training_config": config, "fusion_max_abs_error": max_error},
        **options,
    )
    context_runs = _context_runs(loaded)
    if not context_runs:
        return save_bundle(
            out, members, metadata, dtype=dtype, overwrite=overwrite, member_info=member_info
        )
    clip = float(loaded[0][2].get("context_clip_mm", 20.0))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    metadata["first_stage"] = {"context": {"method": "distance", "clip_mm": clip}}
    with tempfile.TemporaryDirectory(prefix=".stage1-", dir=Path(out).parent) as tmp:
        stage = export_ensemble(
            context_runs,
            Path(tmp) / "stage1",
            name=f"{name or Path(out).name}-stage1",
            dtype=dtype,
            licence=licence,
            description="first stage (FCN-1) of a two-stage bundle",
            postprocess=False,  # the context is built from FCN-1's raw segmentation
        )
        return save_bundle(
            out, members, metadata, dtype=dtype, overwrite=overwrite, first_stage=stage
        )


def _context_runs(loaded: Sequence[tuple[Path, Any, dict[str, Any]]]) -> list[str]:
    """The first-stage runs recorded by seed 001's FCN-2 runs, in order, each once."""
    found: list[str] = []
    for _run, _model, info in loaded:
        for run in info.get("context_from") or []:
            if run not in found:
                found.append(run)
    return found
