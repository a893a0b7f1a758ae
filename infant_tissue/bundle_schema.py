"""What a bundle's ``model.json`` may hold, and its check.

The format and its version, the architecture, classes, modalities and members (safe file names
and their sha256), the ``input_domain`` the networks were trained on, and what the engine must
honour for the network: ``dimensions`` (2-D bundles also ``views`` and ``view_weights``), the
``normalisation.method``, seed 001's ``postprocess`` and a ``first_stage`` sub-bundle.
:func:`check_metadata` raises a ``ValueError`` whose message :mod:`infant_tissue.bundle`
prefixes with the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ._types import NORMALISATIONS, VIEWS

BUNDLE_FORMAT = "infant-tissue-bundle"
BUNDLE_FORMAT_VERSION = 1
#: Member files: plain names inside the bundle folder.
MEMBER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.safetensors$")
#: What a bundle's networks were trained on, recorded as ``input_domain`` in ``model.json``:
#: ``cerebrum`` (iSeg-style images without cerebellum and brain stem: every imported Keras
#: ensemble) or ``whole-brain``. Bundles older than the key are iSeg-trained: ``cerebrum``.
INPUT_DOMAINS = ("cerebrum", "whole-brain")
DEFAULT_INPUT_DOMAIN = "cerebrum"
#: A first-stage bundle lives in a sub-folder of the bundle with a plain name.
STAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
#: Keys of a bundle's ``postprocess`` option (arguments of inference.postprocess.postprocess).
POSTPROCESS_KEYS = ("largest_component", "min_island", "holes", "connectivity")


def check_metadata(meta: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` for the first thing wrong in a bundle's metadata."""
    for key in ("architecture", "classes", "input_modalities", "members"):
        if key not in meta:
            raise ValueError(f"missing key {key!r}")
    if meta.get("format") != BUNDLE_FORMAT:
        raise ValueError(f"not an {BUNDLE_FORMAT} (format={meta.get('format')!r})")
    if meta.get("format_version", 0) > BUNDLE_FORMAT_VERSION:
        raise ValueError(
            f"bundle format version {meta['format_version']} is newer than this software "
            f"understands ({BUNDLE_FORMAT_VERSION}); upgrade infant-tissue"
        )
    domain = meta.get("input_domain", DEFAULT_INPUT_DOMAIN)
    if domain not in INPUT_DOMAINS:
        raise ValueError(f"input_domain must be one of {', '.join(INPUT_DOMAINS)}, not {domain!r}")
    members = meta["members"]
    if not isinstance(members, list) or not members:
        raise ValueError("'members' must be a non-empty list")
    for member in members:
        if not isinstance(member, dict) or "file" not in member or "sha256" not in member:
            raise ValueError("each member needs 'file' and 'sha256'")
        name = member["file"]
        # Member names come from a file a user may have downloaded: refuse anything that could
        # point outside the bundle folder.
        if not isinstance(name, str) or not MEMBER_NAME.match(name) or ".." in name:
            raise ValueError(f"unsafe member file name {name!r}")
    check_inference_options(meta)


def check_inference_options(meta: Mapping[str, Any]) -> None:
    """``dimensions`` + ``views`` / ``view_weights`` (2-D bundles), ``normalisation.method``,
    ``postprocess`` and ``first_stage``: what the engine must honour for this bundle."""
    method = (meta.get("normalisation") or {}).get("method", NORMALISATIONS[0])
    if method not in NORMALISATIONS:
        raise ValueError(
            f"normalisation method must be one of {', '.join(NORMALISATIONS)}, not {method!r}"
        )
    dims = meta.get("dimensions", 3)
    if dims not in (2, 3):
        raise ValueError(f"dimensions must be 2 or 3, not {dims!r}")
    views = meta.get("views") or []
    member_views = [m.get("view") for m in meta["members"]]
    if dims == 3 and (views or any(v is not None for v in member_views)):
        raise ValueError("views apply to 2-D bundles only (dimensions 2)")
    if dims == 2:
        if not views or len(set(views)) != len(views) or not set(views) <= set(VIEWS):
            raise ValueError(f"a 2-D bundle needs distinct 'views' among {', '.join(VIEWS)}")
        weights = meta.get("view_weights") or {}
        if not isinstance(weights, dict) or not set(weights) <= set(views):
            raise ValueError("view_weights must map the bundle's views to numbers")
        if any(not isinstance(w, (int, float)) or not w > 0 for w in weights.values()):
            raise ValueError("view weights must be positive numbers")
        counts = {v: member_views.count(v) for v in views}
        if (
            set(member_views) - set(views)
            or len(set(counts.values())) != 1
            or not min(counts.values())
        ):
            raise ValueError(
                f"every member needs a 'view' of the bundle and every view the same "
                f"number of members, got {counts}"
            )
    options = meta.get("postprocess")
    if options is not None:
        if not isinstance(options, dict) or set(options) - set(POSTPROCESS_KEYS):
            raise ValueError(
                f"postprocess takes only {', '.join(POSTPROCESS_KEYS)}, got {options!r}"
            )
        if options.get("connectivity", 1) not in (1, 2, 3):
            raise ValueError("postprocess connectivity must be 1, 2 or 3")
    stage = meta.get("first_stage")
    if stage is not None:
        if (
            not isinstance(stage, dict)
            or not STAGE_NAME.match(str(stage.get("path", "")))
            or not isinstance(stage.get("sha256"), str)
        ):
            raise ValueError(
                "first_stage needs a sub-folder 'path' (plain name) and the 'sha256' "
                "of its model.json"
            )
