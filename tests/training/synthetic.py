"""Tiny labelled volumes for training tests (concentric shells: WM inside GM inside CSF)."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from infant_tissue.training.data import Subject, zscore_nonzero

T1_MEANS = (0, 50, 100, 110)
T2_MEANS = (0, 200, 120, 100)


def shells(seed: int, size: int = 36) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    grid = np.indices((size,) * 3).astype(float)
    centre = size / 2 + rng.uniform(-2, 2, 3)
    r = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)))
    outer = size * rng.uniform(0.38, 0.45)
    label = np.zeros((size,) * 3, np.uint8)
    label[r < outer] = 1
    label[r < outer - 3] = 2
    label[r < outer - 6] = 3
    noise = rng.normal(0, 4, label.shape)
    t1 = np.choose(label, T1_MEANS) + noise * (label > 0)
    t2 = np.choose(label, T2_MEANS) + noise * (label > 0)
    return t1.clip(0), t2.clip(0), label


def shell_subject(seed: int, size: int = 36) -> Subject:
    t1, t2, label = shells(seed, size)
    return Subject(f"s{seed}", np.stack([zscore_nonzero(t1), zscore_nonzero(t2)]), label, t1 > 0)


def write_iseg_folder(folder, seeds, size: int = 36, fmt: str = "analyze") -> None:
    """Write subject-N-T1/-T2/-label files; labels coded 0/10/150/250 as in iSeg."""
    folder.mkdir(parents=True, exist_ok=True)
    codes = np.array([0, 10, 150, 250], np.uint8)
    for n, seed in enumerate(seeds, start=1):
        t1, t2, label = shells(seed, size)
        for suffix, data in (
            ("T1", t1.astype(np.float32)),
            ("T2", t2.astype(np.float32)),
            ("label", codes[label]),
        ):
            if fmt == "analyze":
                img = nib.AnalyzeImage(data, np.eye(4))
                nib.save(img, str(folder / f"subject-{n}-{suffix}.hdr"))
            else:
                nib.save(
                    nib.Nifti1Image(data, np.eye(4)), str(folder / f"subject-{n}-{suffix}.nii.gz")
                )
