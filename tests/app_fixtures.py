"""Small BIDS datasets and bundles for BIDS-App tests, generated in code."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from infant_tissue.bundle import default_metadata, save_bundle
from infant_tissue.nn import build_model
from infant_tissue.phantoms import make_iseg_subject, sample_subject

TINY = {"init_features": 8, "growth_rate": 4}
#: Smaller still, for the 0.8 mm 320³ real template (3x faster on the CPU than TINY)
MICRO = {"init_features": 4, "growth_rate": 4, "layers_per_block": 1}
SHAPE = (48, 56, 48)


def run_app(*args: str, env: dict | None = None, timeout: int = 1500):
    """``infant-tissue ARGS`` in a fresh process, as users run it (output captured)."""
    return subprocess.run(
        [sys.executable, "-m", "infant_tissue.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def tiny_bundle(path: Path, members: int = 1, kwargs: dict | None = None) -> Path:
    kwargs = TINY if kwargs is None else kwargs
    models = [build_model("dunet-mixacb", deploy=True, **kwargs).eval() for _ in range(members)]
    save_bundle(
        path,
        models,
        default_metadata(
            name="tiny-random",
            architecture={"name": "dunet-mixacb", "kwargs": kwargs, "fused": True},
            licence="random weights for tests",
        ),
    )
    return path


def _write(img: nib.Nifti1Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))


def skull_stripped_dataset(root: Path, seed: int = 11) -> dict[str, np.ndarray]:
    """iSeg-like skull-stripped inputs in BIDS: sub-01 as rendered, sub-02 the same head stored
    left-right flipped (flipped voxel order and affine: same physical image), sub-03 with a
    truncated T2w, sub-04 without a T2w. Returns sub-01's arrays."""
    vols = make_iseg_subject(sample_subject(seed, 0, SHAPE))
    t1, t2 = vols.t1.astype(np.float32), vols.t2.astype(np.float32)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = -np.array(SHAPE) / 2
    flip = affine.copy()
    flip[0, 0] = -1
    flip[0, 3] = affine[0, 3] + SHAPE[0] - 1
    (root).mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "skull-stripped phantoms", "BIDSVersion": "1.10.0"})
    )
    (root / "participants.tsv").write_text(
        "participant_id\tage\nsub-01\t6\nsub-02\t6\nsub-03\t6\nsub-04\t7\n"
    )
    (root / "participants.json").write_text(json.dumps({"age": {"Units": "months"}}))
    for sub, (a1, a2, aff) in {
        "01": (t1, t2, affine),
        "02": (t1[::-1], t2[::-1], flip),
        "03": (t1, t2, affine),
        "04": (t1, t2, affine),
    }.items():
        anat = root / f"sub-{sub}" / "anat"
        _write(nib.Nifti1Image(np.ascontiguousarray(a1), aff), anat / f"sub-{sub}_T1w.nii.gz")
        if sub != "04":
            _write(nib.Nifti1Image(np.ascontiguousarray(a2), aff), anat / f"sub-{sub}_T2w.nii.gz")
    t2_03 = root / "sub-03" / "anat" / "sub-03_T2w.nii.gz"
    data = t2_03.read_bytes()
    t2_03.write_bytes(data[: len(data) // 2])
    assert gzip  # truncated on purpose: a corrupt gzip stream
    return {"t1": t1, "t2": t2, "labels": vols.labels}
