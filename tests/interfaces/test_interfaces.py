"""One test per nipype interface, run for real on small synthetic images in ``tmp_path``."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from infant_tissue.interfaces.cerebellum import RegisterTemplate, RemoveCerebellum
from infant_tissue.interfaces.outputs import DerivativesSink, TissueVolumesTable
from infant_tissue.interfaces.preproc import (
    BrainMask,
    N4BiasCorrection,
    ResampleToModelGrid,
    RigidRegistration,
    ValidateReorient,
)
from infant_tissue.interfaces.qc import SessionQualityControl
from infant_tissue.interfaces.segmentation import Segment, ToNativeGrid
from infant_tissue.phantoms import make_iseg_subject, sample_subject
from infant_tissue.phantoms.templates import template_stem, write_templateflow

from ..app_fixtures import tiny_bundle

SHAPE = (32, 36, 32)


def _save(data, affine, path) -> str:
    nib.save(nib.Nifti1Image(np.asarray(data), affine), str(path))
    return str(path)


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """A small skull-stripped phantom (cerebellum kept) on an LAS grid, T1w/T2w/mask files."""
    tmp = tmp_path_factory.mktemp("interfaces")
    vols = make_iseg_subject(sample_subject(4, 0, SHAPE), keep_hindbrain=True)
    brain = (vols.labels > 0) | vols.hindbrain
    return {
        "dir": tmp,
        "t1w": _save(vols.t1.astype(np.float32), vols.affine, tmp / "sub-01_T1w.nii.gz"),
        "t2w": _save(vols.t2.astype(np.float32), vols.affine, tmp / "sub-01_T2w.nii.gz"),
        "mask": _save(brain.astype(np.uint8), vols.affine, tmp / "mask.nii.gz"),
        "affine": vols.affine,
        "brain": brain,
        "hindbrain": vols.hindbrain,
    }


def _run(interface, cwd):
    cwd.mkdir(parents=True, exist_ok=True)
    return interface.run(cwd=str(cwd)).outputs


def test_validate_reorient_writes_ras_float32(head, tmp_path):
    out = _run(ValidateReorient(in_file=head["t1w"], kind="T1w"), tmp_path)
    img = nib.load(out.out_file)
    assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
    assert img.get_data_dtype() == np.float32
    assert np.isclose(img.get_fdata().sum(), nib.load(head["t1w"]).get_fdata().sum())


def test_rigid_registration_of_a_shifted_copy(head, tmp_path):
    moved = head["affine"].copy()
    moved[:3, 3] += [3.0, -2.0, 1.0]  # the same data, 3.7 mm away
    moving = _save(nib.load(head["t2w"]).get_fdata(), moved, tmp_path / "moved.nii.gz")
    out = _run(RigidRegistration(fixed=head["t2w"], moving=moving), tmp_path)
    back = nib.load(out.out_file).get_fdata() > 100
    truth = nib.load(head["t2w"]).get_fdata() > 100
    assert 2 * (back & truth).sum() / (back.sum() + truth.sum()) > 0.9
    assert out.transform.endswith(".mat")


def test_brain_mask_from_skull_stripped_and_from_a_file(head, tmp_path):
    ras = _run(ValidateReorient(in_file=head["t1w"], kind="T1w"), tmp_path).out_file
    out = _run(BrainMask(t1w=ras, method="skull-stripped"), tmp_path / "a")
    assert nib.load(out.out_mask).get_fdata().sum() == pytest.approx(head["brain"].sum(), rel=0.05)
    given = _run(BrainMask(t1w=ras, method="precomputed", mask_file=head["mask"]), tmp_path / "b")
    assert nib.load(given.out_mask).get_fdata().sum() == head["brain"].sum()


def test_n4_keeps_the_brain_and_zeros(head, tmp_path):
    out = _run(N4BiasCorrection(in_file=head["t1w"], mask=head["mask"]), tmp_path)
    data = nib.load(out.out_file).get_fdata()
    assert (data[~head["brain"]] == 0).all() and (data[head["brain"]] > 0).mean() > 0.99


def test_resample_to_model_grid_is_1mm_ras_around_the_mask(head, tmp_path):
    out = _run(ResampleToModelGrid(t1w=head["t1w"], t2w=head["t2w"], mask=head["mask"]), tmp_path)
    for name in ("t1w", "t2w", "mask"):
        img = nib.load(getattr(out, name))
        assert np.allclose(np.diag(img.affine)[:3], 1.0) and img.shape[0] >= 16
    t1 = nib.load(out.t1w).get_fdata()
    mask = nib.load(out.mask).get_fdata() > 0
    assert (t1[mask] > 0).all() and (t1[~mask] == 0).all()


def test_cerebellum_interfaces_register_and_remove(head, tmp_path):
    home = tmp_path / "tf"
    write_templateflow(home, [3], seed=40, shape=SHAPE)
    stem = template_stem(home, 3)
    reg = _run(
        RegisterTemplate(
            subject=head["t2w"],
            subject_mask=head["mask"],
            template=f"{stem}_T2w.nii.gz",
            template_mask=f"{stem}_desc-brain_mask.nii.gz",
        ),
        tmp_path,
    )
    assert len(reg.transforms) == 2
    out = _run(
        RemoveCerebellum(
            reference=head["t1w"],
            brain_mask=head["mask"],
            template_region=f"{stem}_desc-cerebellumbrainstem_mask.nii.gz",
            transforms=reg.transforms,
            registration="template-t2w",
        ),
        tmp_path,
    )
    removed = nib.load(out.removed_mask).get_fdata() > 0
    cerebrum = nib.load(out.cerebrum_mask).get_fdata() > 0
    assert not (removed & cerebrum).any() and ((removed | cerebrum) == head["brain"]).all()
    truth = head["hindbrain"]
    assert 2 * (removed & truth).sum() / (removed.sum() + truth.sum()) > 0.7
    report = json.loads(open(out.report).read())
    assert report["Registration"] == "template-t2w" and report["RemovedVoxels"] == removed.sum()


def test_segment_and_back_to_the_native_grid(head, tmp_path):
    grid = _run(
        ResampleToModelGrid(t1w=head["t1w"], t2w=head["t2w"], mask=head["mask"]), tmp_path / "g"
    )
    bundle = tiny_bundle(tmp_path / "bundle")
    seg = _run(
        Segment(t1w=grid.t1w, t2w=grid.t2w, mask=grid.mask, bundle=str(bundle), mode="whole"),
        tmp_path / "s",
    )
    probs = nib.load(seg.probabilities).get_fdata()
    assert probs.shape[-1] == 4 and np.allclose(probs.sum(-1), 1, atol=1e-4)
    info = json.loads(open(seg.info).read())
    assert info["bundle"] == "tiny-random" and info["device"] == "cpu"
    native = _run(
        ToNativeGrid(
            probabilities=seg.probabilities,
            labels=seg.labels,
            reference=head["t1w"],
            mask=head["mask"],
            uncertainty=seg.uncertainty,
        ),
        tmp_path / "n",
    )
    labels = nib.load(native.labels)
    assert labels.shape == nib.load(head["t1w"]).shape
    assert np.allclose(labels.affine, head["affine"])
    assert not np.asanyarray(labels.dataobj)[~head["brain"]].any()
    maps = nib.load(native.uncertainty)
    assert maps.shape == (*labels.shape, 2)
    assert not np.asanyarray(maps.dataobj)[~head["brain"]].any()

    qc = _run(
        SessionQualityControl(
            t1w=head["t1w"],
            t2w=head["t2w"],
            t2w_unregistered=head["t2w"],
            brain_mask=head["mask"],
            segmented_mask=head["mask"],
            labels=native.labels,
            uncertainty=native.uncertainty,
            segmentation_info=seg.info,
            source_file=head["t1w"],
            output_dir=str(tmp_path / "out"),
            subject="01",
            age_months=None,
        ),
        tmp_path / "q",
    )
    assert qc.out_file.endswith("sub-01/anat/sub-01_desc-tissue_qc.json")
    record = json.loads(open(qc.out_file).read())
    assert record["Verdict"] == qc.verdict in ("pass", "warn", "fail")
    # no age: the brain volume is measured but not judged, and the record says so
    assert record["Metrics"]["brain_mask_ratio"] is None
    assert any(r.startswith("note: no age") for r in record["Reasons"])
    # the T2w "before registration" is the registered one here: nothing to gain
    metrics = record["Metrics"]
    assert metrics["registration_cr"] == pytest.approx(metrics["registration_cr_before"])


def test_derivatives_sink_and_volume_table(head, tmp_path):
    dseg_model = np.where(head["brain"], 2, 0).astype(np.uint8)  # all GM (model class 2)
    labels = _save(dseg_model, head["affine"], tmp_path / "labels.nii.gz")
    probs = np.zeros((*dseg_model.shape, 4), np.float32)
    probs[..., 0] = ~head["brain"]
    probs[..., 2] = head["brain"]
    prob_file = _save(probs, head["affine"], tmp_path / "probs.nii.gz")
    info = tmp_path / "info.json"
    info.write_text(json.dumps({"bundle": "b", "bundle_sha256": "0" * 64, "mode": "faithful"}))
    out_dir = tmp_path / "out"
    sink = _run(
        DerivativesSink(
            in_file=labels,
            source_file=head["t1w"],
            output_dir=str(out_dir),
            suffix="dseg",
            space="T1w",
            to_nipreps_dseg=True,
            dtype="uint8",
            segmentation_info=str(info),
        ),
        tmp_path,
    )
    assert sink.out_file.endswith("sub-01/anat/sub-01_space-T1w_dseg.nii.gz")
    stored = np.asanyarray(nib.load(sink.out_file).dataobj)
    assert set(np.unique(stored)) == {0, 1}  # GM is 1 in the NiPreps order
    sidecar = json.loads(open(sink.out_file.replace(".nii.gz", ".json")).read())
    assert sidecar["ModelBundle"] == "b" and sidecar["SpatialReference"].endswith(
        "sub-01_T1w.nii.gz"
    )
    table = _run(
        TissueVolumesTable(
            dseg=sink.out_file,
            probabilities=prob_file,
            source_file=head["t1w"],
            output_dir=str(out_dir),
            segmentation_info=str(info),
            subject="01",
            age_months=6.0,
        ),
        tmp_path,
    )
    rows = {r.split("\t")[0]: r.split("\t") for r in open(table.out_file).read().splitlines()[1:]}
    assert int(rows["GM"][2]) == head["brain"].sum() and int(rows["WM"][2]) == 0
    assert float(rows["brain"][3]) == pytest.approx(head["brain"].sum(), rel=1e-6)  # 1 mm voxels
