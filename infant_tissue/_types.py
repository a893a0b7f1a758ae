"""Names of the choices every layer shares (vote rules, mask methods, label codings, precisions,
device specifications), so the command line, the workflows and the engine accept the same words."""

from __future__ import annotations

import re
from typing import Literal

Vote = Literal["hard", "soft"]
MaskMethod = Literal["skull-stripped", "template", "precomputed"]
LabelCoding = Literal["model", "iseg", "nipreps"]
Precision = Literal["fp32", "tf32", "bf16", "fp16"]
#: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``
DeviceSpec = str

VOTES: tuple[str, ...] = ("hard", "soft")
MASK_METHODS: tuple[str, ...] = ("skull-stripped", "template", "precomputed")
PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "bf16", "fp16")

#: Intensity normalisations a bundle (and a training run) may declare: the reference z-score of
#: each image over its voxels > 0 (3D-MASNet, seed 000), or that followed by a z-score of every
#: network input window (patch, slice) over all its voxels (seed 001 §4.1, training and inference).
NORMALISATIONS: tuple[str, ...] = ("zscore-nonzero", "zscore-nonzero+patch")
#: Slice orientations of 2-D networks on the RAS+ 1 mm model grid (axis 2, 1, 0 held fixed).
VIEWS: tuple[str, ...] = ("axial", "coronal", "sagittal")

_DEVICE = re.compile(r"^(auto|cpu|cuda(?::\d+)?)$")


def check_device_spec(device: str) -> str:
    """``device`` normalised (lower case, stripped) if it is ``auto``, ``cpu``, ``cuda`` or
    ``cuda:N``; ValueError otherwise. Whether the device exists is decided at run time."""
    spec = device.strip().lower() if isinstance(device, str) else ""
    if not _DEVICE.match(spec):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return spec
