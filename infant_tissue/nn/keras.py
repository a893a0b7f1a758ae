"""Import 3D-MASNet weights saved by Keras 2 (``model.save_weights``) into PyTorch.

The published ensemble of the reference implementation (RicardoZiTseng/3D-MASNet,
``weights/ensemble/*.h5``) is stored in the fused "deploy" form; ``weights/example/test.h5`` is
the training form, which is fused on import. The HDF5 layout is Keras': a root attribute
``layer_names``; one group per layer with an attribute ``weight_names``; datasets such as
``<layer>/<scope>/kernel:0``. Keras stores channels last:

* Conv3D kernel ``(kd, kh, kw, in, out)`` -> PyTorch ``(out, in, kd, kh, kw)``;
* Conv3DTranspose kernel ``(kd, kh, kw, out, in)`` -> PyTorch ``(in, out, kd, kh, kw)``;
* BatchNormalization ``gamma, beta, moving_mean, moving_variance``.

Spatial axes map in order (Keras' first spatial axis is PyTorch's ``D``); no kernel flip.
Every tensor in the file must be consumed and every model tensor filled.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..bundle import BundleError, default_metadata, save_bundle, sha256_file
from ..errors import InfantTissueError
from . import ACB3d, fuse_model
from .dunet import DUNet

ARCHITECTURE = "dunet-mixacb"

_BN_VARS = {
    "weight": "gamma",
    "bias": "beta",
    "running_mean": "moving_mean",
    "running_var": "moving_variance",
}


class KerasImportError(InfantTissueError, ValueError):
    """A Keras weight file that cannot be read or does not match the architecture."""


@dataclass
class KerasWeights:
    """Tensors of one Keras weight file, keyed ``(layer name, variable)``, e.g.
    ``("feature_conv", "kernel")``."""

    path: Path
    tensors: dict[tuple[str, str], np.ndarray]

    @property
    def layers(self) -> set[str]:
        return {layer for layer, _ in self.tensors}

    @property
    def form(self) -> str:
        """``"deploy"`` when the MixACB blocks are stored fused, else ``"train"``."""
        if any(layer.endswith(".fused_conv") for layer in self.layers):
            return "deploy"
        return "train"

    def get(self, layer: str, var: str) -> np.ndarray:
        try:
            return self.tensors[(layer, var)]
        except KeyError:
            where = "no such layer" if layer not in self.layers else f"no '{var}' in that layer"
            raise KerasImportError(
                f"{self.path}: missing tensor '{layer}/{var}' ({where}); is this a 3D-MASNet "
                f"DU-Net weight file?"
            ) from None


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, (bytes, np.bytes_)) else str(value)


_VAR = re.compile(r"^(?P<var>[A-Za-z_]+)(?::\d+)?$")


def read_keras_weights(path: str | os.PathLike[str]) -> KerasWeights:
    """Read every weight tensor of a Keras-2 HDF5 weight (or full model) file."""
    import h5py  # deferred: only this command needs it

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    tensors: dict[tuple[str, str], np.ndarray] = {}
    try:
        with h5py.File(path, "r") as h5:
            root = h5["model_weights"] if "model_weights" in h5 else h5
            if "layer_names" not in root.attrs:
                raise KerasImportError(
                    f"{path}: not a Keras weight file (no 'layer_names' attribute)"
                )
            for layer in (_text(n) for n in root.attrs["layer_names"]):
                if layer not in root:
                    raise KerasImportError(f"{path}: layer '{layer}' is listed but has no group")
                group = root[layer]
                for weight_name in (_text(n) for n in group.attrs.get("weight_names", [])):
                    # "<layer>/<scope>/kernel:0": the variable is the last path component; the
                    # scope may carry a "_1" suffix depending on the writer, so it is not used.
                    match = _VAR.match(weight_name.rsplit("/", 1)[-1])
                    if match is None:
                        raise KerasImportError(
                            f"{path}: cannot parse weight name '{weight_name}' in layer '{layer}'"
                        )
                    key = (layer, match["var"])
                    if key in tensors:
                        raise KerasImportError(f"{path}: duplicate tensor '{layer}/{key[1]}'")
                    tensors[key] = np.asarray(group[weight_name][()])
    except KerasImportError:
        raise
    except OSError as exc:
        raise KerasImportError(
            f"{path}: cannot read as HDF5 (not an HDF5 file, truncated or corrupt: {exc})"
        ) from None
    except KeyError as exc:
        raise KerasImportError(f"{path}: inconsistent Keras weight file ({exc})") from None
    if not tensors:
        raise KerasImportError(f"{path}: the file holds no weights")
    return KerasWeights(path=path, tensors=tensors)


def infer_dunet_kwargs(weights: KerasWeights) -> dict[str, Any]:
    """Recover the DU-Net widths from tensor shapes, so reduced-width models import too."""
    if not {"feature_conv", "seg_conv"} & weights.layers:
        # Other networks' Keras files (InfiNet's public model, ...) are not converted: the
        # other backbones are trained here (infant-tissue train --arch) and have no Keras port.
        raise KerasImportError(
            f"{weights.path}: not a 3D-MASNet DU-Net weight file (no 'feature_conv' or "
            "'seg_conv' layer); import-keras converts only the DU-Net, train other backbones "
            "with 'infant-tissue train --arch'"
        )
    kernel = weights.get("feature_conv", "kernel")
    seg = weights.get("seg_conv", "kernel")
    bottle = weights.get("dense1.denselayer0.bottle.conv0", "kernel")
    prefix = "dense1.denselayer0.aconv.pyacb"
    groups = sorted(
        {
            int(m[1])
            for layer in weights.layers
            if (m := re.match(re.escape(prefix) + r"\.pyacb_(\d+)\.", layer))
        }
    )
    if len(groups) != 2:
        raise KerasImportError(
            f"{weights.path}: expected two MixACB groups under '{prefix}', found {groups}"
        )
    branch = "fused_conv" if weights.form == "deploy" else "conv_nxnxn"
    growth = sum(weights.get(f"{prefix}.pyacb_{k}.{branch}", "kernel").shape[-1] for k in groups)
    layers_per_block = len(
        {m[1] for layer in weights.layers if (m := re.match(r"dense1\.denselayer(\d+)\.", layer))}
    )
    bottle_width = int(bottle.shape[-1])
    if bottle_width % growth:
        raise KerasImportError(
            f"{weights.path}: bottleneck width {bottle_width} is not a multiple of the growth "
            f"rate {growth}"
        )
    return {
        "in_channels": int(kernel.shape[-2]),
        "num_classes": int(seg.shape[-1]),
        "init_features": int(kernel.shape[-1]),
        "growth_rate": int(growth),
        "bn_size": bottle_width // growth,
        "layers_per_block": layers_per_block,
        "kernel_sizes": [groups[0], groups[1]],
    }


def keras_layer_name(module_path: str, model: nn.Module) -> str:
    """Keras layer name of a PyTorch leaf module of :class:`~infant_tissue.nn.DUNet`.

    ``dense1.denselayer0.aconv.conv.groups.0.branches.1xnxn.bn`` ->
    ``dense1.denselayer0.aconv.pyacb.pyacb_3.bn_1xnxn``.
    """
    parts = module_path.split(".")
    out: list[str] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        if part == "conv" and i + 2 < len(parts) and parts[i + 1] == "groups":
            mix = model.get_submodule(".".join(parts[: i + 1]))
            kernel = mix.groups[int(parts[i + 2])].kernel_size
            out += ["pyacb", f"pyacb_{kernel}"]
            i += 3
        elif part == "branches":
            out.append(f"{parts[i + 2]}_{parts[i + 1]}")  # branches.1xnxn.conv -> conv_1xnxn
            i += 3
        else:
            out.append(part)
            i += 1
    return ".".join(out)


def _to_torch_layout(var: str, array: np.ndarray) -> np.ndarray:
    if var == "kernel":
        # Conv3D (kd,kh,kw,in,out) and Conv3DTranspose (kd,kh,kw,out,in) both become
        # (last, second-last, kd, kh, kw): PyTorch's Conv3d (out,in,...) and ConvTranspose3d
        # (in,out,...) respectively.
        return np.transpose(array, (4, 3, 0, 1, 2))
    return array


def keras_to_state_dict(weights: KerasWeights, model: nn.Module) -> dict[str, torch.Tensor]:
    """Map every tensor of ``weights`` onto ``model``'s state dict (strict both ways)."""
    state: dict[str, torch.Tensor] = {}
    used: set[tuple[str, str]] = set()
    expected = model.state_dict()
    for path, module in model.named_modules():
        if isinstance(module, (nn.Conv3d, nn.ConvTranspose3d)):
            names = {"weight": "kernel", "bias": "bias"}
        elif isinstance(module, nn.BatchNorm3d):
            names = _BN_VARS
            state[f"{path}.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
        else:
            continue
        layer = keras_layer_name(path, model)
        for torch_name, var in names.items():
            key = f"{path}.{torch_name}"
            if key not in expected:  # e.g. bias-free convolutions
                continue
            array = _to_torch_layout(var, weights.get(layer, var))
            if tuple(array.shape) != tuple(expected[key].shape):
                raise KerasImportError(
                    f"{weights.path}: tensor '{layer}/{var}' has shape "
                    f"{tuple(weights.get(layer, var).shape)}, which does not fit {key} "
                    f"{tuple(expected[key].shape)} of the {ARCHITECTURE} architecture"
                )
            state[key] = torch.from_numpy(np.ascontiguousarray(array))
            used.add((layer, var))
    unused = sorted(set(weights.tensors) - used)
    if unused:
        layer, var = unused[0]
        raise KerasImportError(
            f"{weights.path}: tensor '{layer}/{var}' is not used by the {ARCHITECTURE} "
            f"architecture ({len(unused)} unused tensors)"
        )
    return state


def import_keras_model(
    path: str | os.PathLike[str],
    *,
    form: str = "auto",
    fusion_epsilon: float | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[nn.Module, dict[str, Any], str]:
    """Load one Keras weight file as a fused, eval-mode DU-Net.

    Parameters
    ----------
    form
        ``"deploy"`` (fused blocks), ``"train"`` (four branches + BN per group, fused here) or
        ``"auto"`` (detected from the layer names).
    fusion_epsilon
        BatchNorm epsilon used when fusing a training-form file. ``None`` uses the epsilon the
        layers ran with (1e-3, Keras' default), which reproduces the training-form outputs;
        the reference ``deploy`` script folded with 1e-5 — pass that to match its fused files.

    Returns
    -------
    model, architecture kwargs, detected form
    """
    weights = read_keras_weights(path)
    detected = weights.form
    if form not in ("auto", "deploy", "train"):
        raise ValueError(f"form must be 'auto', 'deploy' or 'train', got {form!r}")
    if form != "auto" and form != detected:
        raise KerasImportError(
            f"{weights.path}: --form {form} was given but the file holds the {detected} form"
        )
    kwargs = infer_dunet_kwargs(weights)
    model = DUNet(conv="mixacb", deploy=detected == "deploy", **kwargs).to(dtype).eval()
    try:
        state = keras_to_state_dict(weights, model)
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # pragma: no cover - keras_to_state_dict checks first
        raise KerasImportError(f"{weights.path}: {exc}") from None
    if detected == "train":
        if fusion_epsilon is not None:
            for block in model.modules():
                if isinstance(block, ACB3d) and block.branches is not None:
                    for branch in block.branches.values():
                        branch.bn.eps = fusion_epsilon
        model = fuse_model(model)
    return model, kwargs, detected


def import_keras_bundle(
    paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    form: str = "auto",
    name: str | None = None,
    fusion_epsilon: float | None = None,
    licence: str = "",
    command: str = "",
    overwrite: bool = False,
):
    """Convert Keras weight files (one ensemble member each) into one fused weight bundle."""
    if not paths:
        raise ValueError("give at least one Keras weight file")
    models, sources = [], []
    arch_kwargs: dict[str, Any] | None = None
    forms = set()
    for path in paths:
        model, kwargs, detected = import_keras_model(path, form=form, fusion_epsilon=fusion_epsilon)
        if arch_kwargs is not None and kwargs != arch_kwargs:
            raise KerasImportError(
                f"{path}: architecture {kwargs} differs from the first file's {arch_kwargs}"
            )
        arch_kwargs = kwargs
        forms.add(detected)
        models.append(model)
        sources.append({"path": os.path.basename(os.fspath(path)), "sha256": sha256_file(path)})
    metadata = default_metadata(
        name=name or Path(out).name,
        architecture={"name": ARCHITECTURE, "kwargs": arch_kwargs, "fused": True},
        provenance={
            "source": "Keras HDF5 weights (3D-MASNet reference implementation layout)",
            "source_files": sources,
            "source_form": sorted(forms),
            "fusion_epsilon": fusion_epsilon,
            "command": command,
        },
        licence=licence,
        # every Keras file of the reference implementation was trained on iSeg images, whose
        # cerebellum and brain stem the organisers removed
        input_domain="cerebrum",
    )
    try:
        return save_bundle(out, models, metadata, overwrite=overwrite)
    except BundleError as exc:
        raise KerasImportError(str(exc)) from None
