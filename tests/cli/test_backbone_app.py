"""Every backbone's bundle (reduced width, made by ``fuse``) through ``model-info`` and the
BIDS-App end to end; ``import-keras`` still converts only DU-Net files."""

from __future__ import annotations

import json

import h5py
import nibabel as nib
import numpy as np
import pytest

from infant_tissue.bundle import load_bundle
from infant_tissue.cli.main import main

from ..app_fixtures import skull_stripped_dataset
from ..backbone_fixtures import SMALL, backbone_bundle

pytestmark = pytest.mark.slow

#: The DU-Net runs through the app in test_bids_app.py; here every other backbone.
ARCHS = [a for a in SMALL if not a.startswith("dunet")]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """One skull-stripped phantom session; the nipype work folder is shared, so the
    preprocessing runs once and each bundle re-runs only the segmentation and outputs."""
    root = tmp_path_factory.mktemp("backbone-app")
    skull_stripped_dataset(root / "bids")
    return root


@pytest.mark.parametrize("arch", ARCHS)
def test_backbone_bundle_runs_through_the_bids_app(dataset, arch, capsys):
    path = backbone_bundle(dataset / arch, arch)
    bundle = load_bundle(path)
    assert main(["model-info", str(path)]) == 0
    described = capsys.readouterr().out
    assert arch in described and "all checksums verified" in described
    if bundle.dimensions == 2:
        assert "2-D slices" in described and "axial ×1" in described
    if arch.endswith("-mixacb"):
        assert bundle.architecture["fused"] is True
    out = dataset / f"out-{arch}"
    code = main(
        [
            str(dataset / "bids"),
            str(out),
            "participant",
            "--participant-label",
            "01",
            "--skull-stripped",
            "--keep-cerebellum",
            "--models",
            str(path),
            "--inference-mode",
            "whole",
            "--nprocs",
            "1",
            "--omp-nthreads",
            "1",
            "--device",
            "cpu",
            "--no-reports",
            "-w",
            str(dataset / "work"),
        ]
    )
    assert code == 0, capsys.readouterr().err[-2000:]
    anat = out / "sub-01" / "anat"
    dseg = nib.load(anat / "sub-01_space-T1w_dseg.nii.gz")
    assert set(np.unique(np.asanyarray(dseg.dataobj))) <= {0, 1, 2, 3}
    sidecar = json.loads((anat / "sub-01_space-T1w_dseg.json").read_text())
    assert sidecar["ModelBundleSHA256"] == bundle.sha256


def test_import_keras_refuses_other_networks(tmp_path, capsys):
    """An InfiNet-style Keras file (its public model's layer names) is not a DU-Net file."""
    path = tmp_path / "infinet.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["layer_names"] = [b"conv2d_1", b"batch_normalization_1"]
        for layer in ("conv2d_1", "batch_normalization_1"):
            group = h5.create_group(layer)
            group.attrs["weight_names"] = [f"{layer}/kernel:0".encode()]
            group.create_dataset(f"{layer}/kernel:0", data=np.zeros((3, 3, 2, 64), np.float32))
    code = main(["import-keras", str(path), "--out", str(tmp_path / "bundle")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert "infinet.h5" in err[0] and "not a 3D-MASNet DU-Net weight file" in err[0]
    assert not (tmp_path / "bundle").exists()
