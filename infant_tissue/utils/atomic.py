"""THE atomic writer: every file the application leaves appears under its name only once complete."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import nibabel as nib
from nibabel.spatialimages import SpatialImage

__all__ = ["write_atomic"]


def _split_ext(name: str) -> tuple[str, str]:
    """``('sub-01_T1w', '.nii.gz')`` for ``'sub-01_T1w.nii.gz'``; nibabel picks the format by it."""
    for ext in (".nii.gz", ".nii", ".mgz", ".gii", ".tsv", ".json", ".hdr"):
        if name.endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)], ext
    stem, dot, ext = name.rpartition(".")
    return (stem, f".{ext}") if dot and stem else (name, "")


def write_atomic(
    obj: SpatialImage | str | bytes | Mapping[str, Any] | list[Any] | Callable[[Path], Any],
    path: str | os.PathLike[str],
    *,
    overwrite: bool = True,
) -> Path:
    """Write an image, text, bytes, JSON or anything a writer makes, so that no partial file is
    ever seen. THE atomic writer of the package: every file the app leaves goes through it.

    The content goes to a hidden temporary file in the destination folder (same filesystem, so
    the final :func:`os.replace` is atomic), is flushed to disk, and is then renamed. If writing
    fails the temporary file is removed and any existing destination is left untouched — a
    killed or failing participant never leaves a truncated derivative for a later step, or a
    concurrent participant, to trip on.

    Parameters
    ----------
    obj
        A nibabel image (format chosen from ``path``'s extension, as ``nibabel.save`` does; an
        Analyze ``.hdr`` path writes the ``.hdr/.img`` pair, the ``.img`` renamed first so a
        visible header always has its data), a ``str`` (written as UTF-8), ``bytes``, a
        mapping/list (written as indented JSON), or a callable that writes the file at the path
        it is given (safetensors, a matplotlib figure, a CSV writer...).
    path
        Destination; its folder is created when missing.
    overwrite
        When False and ``path`` exists, raise :class:`FileExistsError` and write nothing. The
        check-and-create is atomic (a hard link), so of several processes creating the same
        file (e.g. ``dataset_description.json``) exactly one succeeds.

    Returns
    -------
    pathlib.Path
        The destination path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path}: already exists")
    stem, ext = _split_ext(path.name)
    tmp = path.with_name(f".{stem}.tmp-{uuid.uuid4().hex[:12]}{ext}")
    moves = [(tmp, path)]
    if ext == ".hdr":  # an Analyze pair: the data file moves first
        moves.insert(0, (tmp.with_suffix(".img"), path.with_suffix(".img")))
    try:
        if isinstance(obj, SpatialImage):
            nib.save(obj, tmp)
        elif callable(obj):
            obj(tmp)
        else:
            if isinstance(obj, bytes):
                payload = obj
            elif isinstance(obj, str):
                payload = obj.encode("utf-8")
            elif isinstance(obj, Mapping | list):
                payload = (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode("utf-8")
            else:
                raise TypeError(f"cannot write a {type(obj).__name__} to {path}")
            with open(tmp, "xb") as fobj:
                fobj.write(payload)
        for src, _ in moves:
            _fsync_path(src)
        if overwrite:
            for src, dst in moves:
                os.replace(src, dst)
        else:
            for src, dst in moves:
                _link_exclusive(src, dst)
    finally:
        for src, _ in moves:
            if src.exists():
                src.unlink()
    return path


def _fsync_path(path: Path) -> None:
    with open(path, "rb") as fobj:
        os.fsync(fobj.fileno())


def _link_exclusive(tmp: Path, path: Path) -> None:
    """Move ``tmp`` to ``path`` only if ``path`` does not exist, atomically where supported."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{path}: already exists") from None
    except OSError:
        # Filesystems without hard links: the rename below has a tiny race window, but the
        # content is still never partial.
        if path.exists():
            raise FileExistsError(f"{path}: already exists") from None
        os.replace(tmp, path)
