"""Weight bundles: a folder with ``model.json`` and one ``.safetensors`` file per ensemble member.

A bundle is everything inference needs to rebuild and trust a model: the architecture (a key of
the explicit registry in :mod:`infant_tissue.nn.registry` and its keyword arguments), whether it
is fused, the classes and their labels, the input modality order, normalisation, the patch size
and stride it was trained for, provenance, a licence note, and the sha256 of every member file.

Loading never unpickles (safetensors only), verifies every checksum and is strict: a missing,
unexpected or mis-shaped tensor is an error that names the tensor. Saving writes into a temporary
folder beside the destination and renames it, so an interrupted save leaves no half bundle.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from . import __version__
from ._types import NORMALISATIONS
from .bundle_schema import (
    BUNDLE_FORMAT,
    BUNDLE_FORMAT_VERSION,
    DEFAULT_INPUT_DOMAIN,
    check_metadata,
)
from .errors import InfantTissueError
from .nn.registry import build_model

METADATA_FILE = "model.json"

#: Classes of the model's output channels (iSeg convention; files code them 0/10/150/250).
DEFAULT_CLASSES: tuple[dict[str, Any], ...] = (
    {"index": 0, "name": "background", "abbreviation": "BG", "iseg_value": 0},
    {"index": 1, "name": "cerebrospinal fluid", "abbreviation": "CSF", "iseg_value": 10},
    {"index": 2, "name": "gray matter", "abbreviation": "GM", "iseg_value": 150},
    {"index": 3, "name": "white matter", "abbreviation": "WM", "iseg_value": 250},
)


class BundleError(InfantTissueError, ValueError):
    """A bundle is missing, malformed, tampered with, or does not match its architecture."""


def default_metadata(**overrides: Any) -> dict[str, Any]:
    """Metadata of a 3D-MASNet DU-Net bundle with the paper's settings; override any key."""
    meta: dict[str, Any] = {
        "name": "unnamed",
        "architecture": {"name": "dunet-mixacb", "kwargs": {}, "fused": True},
        "classes": [dict(c) for c in DEFAULT_CLASSES],
        "input_modalities": ["T1w", "T2w"],
        "normalisation": {
            "method": "zscore-nonzero",
            "description": "each image z-scored over its voxels > 0, then multiplied by that mask",
        },
        "patch_size": [32, 32, 32],
        "stride": [8, 8, 8],
        "default_vote": "hard",
        "input_domain": DEFAULT_INPUT_DOMAIN,
        "provenance": {},
        "licence": "",
    }
    meta.update(copy.deepcopy(overrides))
    return meta


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Bundle:
    """A verified weight bundle. Members are loaded lazily and re-verified on every load."""

    path: Path
    metadata: dict[str, Any]
    sha256: str = field(default="")

    def __len__(self) -> int:
        return len(self.metadata["members"])

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", self.path.name))

    @property
    def input_domain(self) -> str:
        """``cerebrum`` or ``whole-brain`` (see :data:`~infant_tissue.bundle_schema.INPUT_DOMAINS`)."""
        return str(self.metadata.get("input_domain", DEFAULT_INPUT_DOMAIN))

    @property
    def architecture(self) -> dict[str, Any]:
        return self.metadata["architecture"]

    @property
    def dimensions(self) -> int:
        """3 (windows of volumes, default) or 2 (slice networks run per view)."""
        return int(self.metadata.get("dimensions", 3))

    @property
    def views(self) -> list[str]:
        """Slice orientations of a 2-D bundle (empty for 3-D bundles)."""
        return list(self.metadata.get("views", []))

    @property
    def view_weights(self) -> dict[str, float]:
        """Weight of each view's softmax in the view aggregation (default 1 each)."""
        weights = self.metadata.get("view_weights") or {}
        return {v: float(weights.get(v, 1.0)) for v in self.views}

    @property
    def normalisation_method(self) -> str:
        """One of :data:`~infant_tissue._types.NORMALISATIONS` (default ``zscore-nonzero``)."""
        return str((self.metadata.get("normalisation") or {}).get("method", NORMALISATIONS[0]))

    @property
    def postprocess_options(self) -> dict[str, Any] | None:
        """Keyword arguments of ``inference.postprocess.postprocess`` the bundle asks for after
        the vote (seed 001), or ``None`` (no clean-up: the product's default)."""
        options = self.metadata.get("postprocess")
        return dict(options) if options else None

    def member_groups(self) -> list[dict[str, int]]:
        """Ensemble members as groups of member indices by view.

        A 3-D bundle's member ``i`` is the group ``{"volume": i}``. A 2-D bundle's group ``k``
        holds the ``k``-th member file of each view (one network per view, as InfiNet and
        MixNet train them), so a group is one view-aggregated segmentation in the vote.
        """
        if self.dimensions == 3:
            return [{"volume": i} for i in range(len(self))]
        per_view: dict[str, list[int]] = {v: [] for v in self.views}
        for i, member in enumerate(self.metadata["members"]):
            per_view[member["view"]].append(i)
        count = len(next(iter(per_view.values())))
        return [{v: per_view[v][k] for v in self.views} for k in range(count)]

    def first_stage(self) -> Bundle | None:
        """The loaded, verified first-stage bundle this bundle's network needs (seed 001's
        FCN-1, whose segmentation gives FCN-2 its context maps), or ``None``."""
        stage = self.metadata.get("first_stage")
        if not stage:
            return None
        nested = load_bundle(self.path / stage["path"])
        if nested.sha256 != stage["sha256"]:
            raise BundleError(
                f"{self.path / stage['path'] / METADATA_FILE}: sha256 does not match the "
                f"first_stage entry of {self.path / METADATA_FILE}"
            )
        return nested

    def build_network(self) -> nn.Module:
        """A fresh network of the bundle's architecture (random weights, eval mode)."""
        arch = self.architecture
        kwargs = dict(arch.get("kwargs", {}))
        if arch.get("fused"):
            kwargs["deploy"] = True
        try:
            model = build_model(arch["name"], **kwargs)
        except (TypeError, ValueError) as exc:
            raise BundleError(f"{self.path / METADATA_FILE}: bad architecture: {exc}") from None
        network_dims = int(getattr(model, "dimensions", 3))
        if network_dims != self.dimensions:
            raise BundleError(
                f"{self.path / METADATA_FILE}: {arch['name']} is a {network_dims}-D network, "
                f"the bundle says dimensions {self.dimensions}"
            )
        return model.eval()

    def member_path(self, index: int) -> Path:
        if not 0 <= index < len(self):
            raise IndexError(f"bundle {self.name} has {len(self)} members, no member {index}")
        return self.path / self.metadata["members"][index]["file"]

    def state_dict(self, index: int) -> dict[str, torch.Tensor]:
        """Tensors of member ``index`` as float32, after checking the file's sha256."""
        path = self.member_path(index)
        expected = self.metadata["members"][index]["sha256"]
        if not path.is_file():
            raise BundleError(f"{path}: member file is missing")
        actual = sha256_file(path)
        if actual != expected:
            raise BundleError(
                f"{path}: sha256 mismatch (model.json says {expected[:12]}…, file is "
                f"{actual[:12]}…): the file is corrupt or was replaced"
            )
        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise BundleError(f"{path}: not a readable safetensors file ({exc})") from None
        return {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()}

    def load_member_into(self, model: nn.Module, index: int) -> nn.Module:
        """Swap member ``index``'s weights into ``model`` (strict; errors name the tensor)."""
        load_state_dict_strict(model, self.state_dict(index), source=self.member_path(index))
        return model

    def build_member(self, index: int) -> nn.Module:
        """Network of member ``index`` with its weights loaded, in eval mode."""
        return self.load_member_into(self.build_network(), index)


def load_state_dict_strict(
    model: nn.Module, tensors: Mapping[str, torch.Tensor], source: str | os.PathLike[str]
) -> None:
    """Copy ``tensors`` into ``model``; any missing, unexpected or mis-shaped tensor is an error."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    if missing:
        raise BundleError(f"{source}: missing tensor {missing[0]!r} ({len(missing)} missing)")
    if unexpected:
        raise BundleError(
            f"{source}: unexpected tensor {unexpected[0]!r} ({len(unexpected)} unexpected)"
        )
    for key, value in expected.items():
        if tuple(tensors[key].shape) != tuple(value.shape):
            raise BundleError(
                f"{source}: tensor {key!r} has shape {tuple(tensors[key].shape)}, "
                f"the architecture needs {tuple(value.shape)}"
            )
    model.load_state_dict(dict(tensors), strict=True)


def _validate_metadata(meta: Mapping[str, Any], where: Path) -> None:
    try:
        check_metadata(meta)
    except ValueError as exc:
        raise BundleError(f"{where}: {exc}") from None


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Open a bundle folder, validate ``model.json`` and check every member's sha256."""
    bundle = read_bundle_metadata(path)
    meta = bundle.metadata
    for i in range(len(bundle)):
        member = bundle.member_path(i)
        if not member.is_file():
            raise BundleError(f"{member}: member file is missing")
        if sha256_file(member) != meta["members"][i]["sha256"]:
            raise BundleError(f"{member}: sha256 does not match model.json")
    bundle.first_stage()  # verified as strictly as the bundle itself
    return bundle


def read_bundle_metadata(path: str | os.PathLike[str]) -> Bundle:
    """Open a bundle folder and validate ``model.json`` without reading the members (cheap: what
    a workflow builder needs); use :func:`load_bundle` before running the networks."""
    root = Path(path)
    meta_path = root / METADATA_FILE
    if not meta_path.is_file():
        raise BundleError(f"{root}: not a weight bundle (no {METADATA_FILE})")
    raw = meta_path.read_bytes()
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{meta_path}: invalid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise BundleError(f"{meta_path}: expected a JSON object")
    _validate_metadata(meta, meta_path)
    return Bundle(path=root, metadata=meta, sha256=hashlib.sha256(raw).hexdigest())


def save_bundle(
    path: str | os.PathLike[str],
    models: Sequence[nn.Module] | Sequence[Mapping[str, torch.Tensor]],
    metadata: Mapping[str, Any],
    *,
    dtype: torch.dtype = torch.float32,
    overwrite: bool = False,
    member_info: Sequence[Mapping[str, Any]] | None = None,
    first_stage: Bundle | None = None,
) -> Bundle:
    """Write a bundle atomically and return it loaded back.

    Parameters
    ----------
    path
        Destination folder; must not exist unless ``overwrite``.
    models
        Ensemble members: modules or state dicts of the architecture in ``metadata``.
    metadata
        At least ``architecture``; see :func:`default_metadata` for the other keys.
    dtype
        Storage type of floating-point tensors (``torch.float16`` halves the size; loading
        always returns float32). BatchNorm statistics are kept in float32 either way.
    member_info
        Extra keys of each member's entry (a 2-D bundle's ``{"view": "axial"}``).
    first_stage
        A bundle this one needs first (seed 001's FCN-1): copied into the sub-folder ``stage1``
        and recorded as ``first_stage`` with the sha256 of its ``model.json``.
    """
    dest = Path(path)
    if dest.exists() and not overwrite:
        raise BundleError(f"{dest}: already exists (use overwrite=True / --force)")
    if not models:
        raise BundleError("a bundle needs at least one member")
    meta = default_metadata()
    meta.update(copy.deepcopy(dict(metadata)))
    meta["format"] = BUNDLE_FORMAT
    meta["format_version"] = BUNDLE_FORMAT_VERSION
    meta["storage_dtype"] = str(dtype).replace("torch.", "")
    meta.setdefault("provenance", {})
    meta["provenance"].setdefault("software", f"infant-tissue {__version__}")
    meta["provenance"].setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat())
    if first_stage is not None:
        meta["first_stage"] = {
            **meta.get("first_stage", {}),
            "path": "stage1",
            "sha256": first_stage.sha256,
        }
    extras = list(member_info) if member_info is not None else [{}] * len(models)
    if len(extras) != len(models):
        raise BundleError(f"{len(extras)} member_info entries for {len(models)} members")

    # Check every member against the architecture before anything is written.
    probe = Bundle(path=dest, metadata={**meta, "members": []}).build_network()
    states = []
    for i, model in enumerate(models):
        state = model.state_dict() if isinstance(model, nn.Module) else dict(model)
        load_state_dict_strict(probe, state, source=f"member {i}")
        states.append({k: _storage_tensor(k, v, dtype) for k, v in state.items()})

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        members = []
        for i, state in enumerate(states):
            name = f"member-{i:02d}.safetensors"
            save_file(state, str(tmp / name), metadata={"format": BUNDLE_FORMAT})
            members.append({"file": name, "sha256": sha256_file(tmp / name), **extras[i]})
        meta["members"] = members
        _validate_metadata(meta, dest / METADATA_FILE)
        if first_stage is not None:
            shutil.copytree(first_stage.path, tmp / "stage1")
        (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n")
        # mkdtemp makes a private folder; a bundle is read by other users (containers run as
        # an unprivileged user), so give it ordinary permissions before it appears.
        for item in tmp.rglob("*"):
            item.chmod(0o755 if item.is_dir() else 0o644)
        tmp.chmod(0o755)
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            dest.rename(old)
            tmp.rename(dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_bundle(dest)


def _storage_tensor(key: str, value: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    value = value.detach().cpu().contiguous()
    if not value.is_floating_point():
        return value
    # Running variances can be tiny; fp16 would flush them and change the normalisation.
    keep_fp32 = key.endswith(("running_mean", "running_var"))
    return value.to(torch.float32 if keep_fp32 else dtype).contiguous()
