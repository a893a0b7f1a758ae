"""The segmentation node's own record: bundle identity and the warnings raised while it ran."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from infant_tissue.interfaces.segmentation import run_segmentation

from ..app_fixtures import tiny_bundle


@pytest.fixture
def model_grid_pair(tmp_path):
    rng = np.random.default_rng(0)
    data = np.zeros((24, 24, 24), np.float32)
    data[4:20, 4:20, 4:20] = rng.normal(100, 10, (16, 16, 16))
    paths = []
    for name in ("t1w", "t2w"):
        path = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(data, np.eye(4)), path)
        paths.append(str(path))
    return paths


def test_info_records_bundle_and_warnings(tmp_path, model_grid_pair):
    bundle = tiny_bundle(tmp_path / "bundle")
    info_file = tmp_path / "segmentation.json"
    run_segmentation(
        *model_grid_pair,
        str(bundle),
        str(tmp_path / "probabilities.nii.gz"),
        str(info_file),
        mode="whole",
        device="auto",
    )
    info = json.loads(info_file.read_text())
    assert info["bundle"] == "tiny-random" and len(info["bundle_sha256"]) == 64
    assert isinstance(info["warnings"], list)
    if not torch.cuda.is_available():
        # the report must say that 'auto' fell back to the CPU
        assert any("no CUDA device visible" in w for w in info["warnings"]), info["warnings"]
