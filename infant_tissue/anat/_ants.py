"""How the anatomical steps use ANTs (antspyx): seeded, threaded as told, coarse copies for
registration, transform files kept next to their outputs."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

#: Seed of ANTs' random metric sampling: the same inputs must give the same registration.
ANTS_SEED = 20221


def load_ants():
    """The ``ants`` module, deterministic (seeded) and with the ITK thread count we were given.

    Deferred: importing ANTs costs seconds and only these steps need it.
    """
    import ants

    # set_ants_deterministic also forces one ITK thread; keep the thread count we were given.
    threads = os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")
    ants.config.set_ants_deterministic(True, ANTS_SEED)
    if threads is None:
        os.environ.pop("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", None)
    else:
        os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = threads
    return ants


def coarse(ants, image, resolution_mm: float):
    """``image`` resampled to ``resolution_mm`` if it is finer than that (linear)."""
    if min(image.spacing) >= resolution_mm * 0.99:
        return image
    return ants.resample_image(image, (resolution_mm,) * 3, use_voxels=False, interp_type=0)


def save_transforms(paths: Sequence[str], out_prefix: str) -> list[str]:
    """Copy ANTs' temporary transform files next to ``out_prefix`` (warp first, then affine)."""
    saved = []
    for i, path in enumerate(paths):
        suffix = "".join(Path(path).suffixes) or ".mat"
        dest = f"{out_prefix}{i}{suffix}"
        shutil.copyfile(path, dest)
        saved.append(dest)
    return saved
