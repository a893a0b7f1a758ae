"""Resumable checkpoints in safetensors + JSON (never pickle), written atomically.

``checkpoint.safetensors`` holds the model, the Adam moments and the torch RNG state;
``checkpoint.json`` holds the epoch, the optimiser hyper-parameters, the NumPy generator state and
the sha256 of the tensor file. The JSON is replaced last, so a kill at any moment leaves either the
previous checkpoint or the new one, never a mix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..bundle import sha256_file
from ..utils.atomic import write_atomic

TENSORS = "checkpoint.safetensors"
STATE = "checkpoint.json"


def save_checkpoint(
    run_dir: Path,
    epoch: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write the state after ``epoch`` (0-based) has finished."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for index, state in opt["state"].items():
        for key, value in state.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    write_atomic(lambda tmp: save_file(tensors, str(tmp)), run_dir / TENSORS)
    digest = sha256_file(run_dir / TENSORS)
    state = {
        "epoch": epoch,
        "sha256": digest,
        "param_groups": opt["param_groups"],
        "numpy_rng": rng.bit_generator.state,
        **(extra or {}),
    }
    write_atomic(json.dumps(state, indent=1, default=_json_default), run_dir / STATE)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    raise TypeError(f"not JSON serialisable: {type(value)}")


def load_checkpoint(
    run_dir: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Restore model, optimiser and RNG states in place; returns the checkpoint's JSON state."""
    state_path, tensor_path = run_dir / STATE, run_dir / TENSORS
    if not state_path.is_file() or not tensor_path.is_file():
        raise FileNotFoundError(f"{run_dir}: no checkpoint to resume from")
    state = json.loads(state_path.read_text())
    if sha256_file(tensor_path) != state["sha256"]:
        raise ValueError(f"{tensor_path}: sha256 does not match {state_path}; checkpoint corrupt")
    tensors = load_file(str(tensor_path))
    model.load_state_dict(
        {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True
    )
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            opt_state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": state["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    rng.bit_generator.state = state["numpy_rng"]
    return state
