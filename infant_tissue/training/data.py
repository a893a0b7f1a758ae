"""Labelled training subjects: discovery, loading, normalisation and cross-validation folds."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from ..inference.preprocess import normalise
from ..labels import to_model

_ISEG_T1 = re.compile(r"^(?P<subject>.+)-T1\.(?P<ext>hdr|img|nii|nii\.gz)$")


@dataclass
class Subject:
    """One labelled subject, normalised as inference sees it.

    ``image`` is ``(2, D, H, W)`` float32 (z-scored T1w, T2w); ``label`` ``(D, H, W)`` uint8 in
    the model's classes (0 background, 1 CSF, 2 GM, 3 WM); ``brain`` the T1w > 0 mask.
    """

    name: str
    image: np.ndarray
    label: np.ndarray
    brain: np.ndarray


def zscore_nonzero(image: np.ndarray, name: str = "image") -> np.ndarray:
    """The reference normalisation, shared with inference so training sees what inference sees."""
    return normalise(image, name)


def map_iseg_labels(label: np.ndarray, source: str | Path = "label") -> np.ndarray:
    """Labels in iSeg's 0/10/150/250 coding (or already the model's 0-3) as model classes."""
    values = np.unique(label)
    coding = "model" if set(values.tolist()) <= {0, 1, 2, 3} else "iseg"
    try:
        return to_model(label, coding)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None


def _load(path: Path) -> np.ndarray:
    data = np.asanyarray(nib.load(str(path)).dataobj)
    if data.ndim == 4 and data.shape[-1] == 1:  # Analyze files of iSeg carry a singleton axis
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{path}: expected a 3-D image, got shape {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: image contains NaN or infinite values")
    return data


def _sibling(t1: Path, suffix: str) -> Path:
    name = t1.name
    return t1.with_name(re.sub(r"-T1\.", f"-{suffix}.", name, count=1))


def find_iseg_subjects(folder: str | Path) -> list[Path]:
    """T1w files of an iSeg-layout folder (``subject-N-T1.hdr`` or ``.img``/``.nii[.gz]``),
    sorted naturally so ``subject-10`` follows ``subject-9``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    found: dict[str, Path] = {}
    for path in folder.iterdir():
        match = _ISEG_T1.match(path.name)
        if match and match["ext"] != "img":  # the header names an Analyze pair
            found[match["subject"]] = path
        elif match and match["subject"] not in found:
            found[match["subject"]] = path

    def natural(name: str):
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]

    return [found[k] for k in sorted(found, key=natural)]


def load_iseg_subject(t1_path: str | Path) -> Subject:
    """Load ``<name>-T1``, ``-T2`` and ``-label`` beside each other and normalise them."""
    t1_path = Path(t1_path)
    t2_path, label_path = _sibling(t1_path, "T2"), _sibling(t1_path, "label")
    for p in (t1_path, t2_path, label_path):
        if not p.exists():
            raise FileNotFoundError(f"{p}: missing (iSeg layout needs -T1, -T2 and -label files)")
    t1, t2, label = _load(t1_path), _load(t2_path), _load(label_path)
    if not t1.shape == t2.shape == label.shape:
        raise ValueError(
            f"{t1_path.parent}: T1 {t1.shape}, T2 {t2.shape} and label {label.shape} differ in shape"
        )
    image = np.stack([zscore_nonzero(t1), zscore_nonzero(t2)])
    name = _ISEG_T1.match(t1_path.name)["subject"]  # type: ignore[index]
    return Subject(name, image, map_iseg_labels(label, label_path), t1 > 0)


def split_folds(names: list[str], folds: int, fold: int, seed: int) -> tuple[list[str], list[str]]:
    """Subject-level k-fold split: returns (training, validation) names for ``fold``.

    ``folds=1`` trains on everything with no validation set. Subjects are shuffled with ``seed``
    and dealt round-robin, as the paper's 2-fold protocol (5 subjects per fold of 10).
    """
    if folds == 1:
        return list(names), []
    if folds > len(names):
        raise ValueError(f"{folds} folds need at least {folds} subjects, got {len(names)}")
    order = np.random.default_rng(seed).permutation(len(names))
    validation = sorted(names[i] for j, i in enumerate(order) if j % folds == fold)
    training = [n for n in names if n not in validation]
    return training, validation
