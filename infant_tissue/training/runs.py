"""A training run folder's network: ``model.safetensors`` + ``model.json`` (architecture,
sha256, provenance), written atomically at the end of training, read back strictly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..bundle import BundleError, load_state_dict_strict, sha256_file
from ..nn import build_model
from ..utils.atomic import write_atomic

MODEL_WEIGHTS = "model.safetensors"
MODEL_INFO = "model.json"


def save_run(
    run_dir: str | Path,
    model: torch.nn.Module,
    architecture: str,
    architecture_kwargs: dict[str, Any],
    meta: dict[str, Any],
) -> Path:
    """Write the trained network (training form) and its description into ``run_dir``."""
    run_dir = Path(run_dir)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights = write_atomic(lambda tmp: save_file(state, str(tmp)), run_dir / MODEL_WEIGHTS)
    info = {
        "architecture": {"name": architecture, "kwargs": architecture_kwargs, "fused": False},
        "weights": MODEL_WEIGHTS,
        "sha256": sha256_file(weights),
        **meta,
    }
    return write_atomic(json.dumps(info, indent=2), run_dir / MODEL_INFO)


def load_run(run_dir: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The trained network of a run folder (training form, eval mode) and its ``model.json``."""
    run_dir = Path(run_dir)
    info_path = run_dir / MODEL_INFO
    if not info_path.is_file():
        raise FileNotFoundError(f"{run_dir}: not a finished training run (no {MODEL_INFO})")
    info = json.loads(info_path.read_text())
    weights = run_dir / info["weights"]
    if Path(info["weights"]).name != info["weights"]:
        raise BundleError(f"{info_path}: unsafe weight file name {info['weights']!r}")
    if sha256_file(weights) != info["sha256"]:
        raise BundleError(f"{weights}: sha256 does not match {info_path}")
    arch = info["architecture"]
    model = build_model(arch["name"], **arch.get("kwargs", {}))
    load_state_dict_strict(model, load_file(str(weights)), source=weights)
    return model.eval(), info
