"""The QC verdict end to end: a clean phantom passes, a T2w that is really a T1w fails, the
maps and the record are where the group level and NiBabies users look for them."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pytest

from infant_tissue.phantoms import sample_subject
from infant_tissue.phantoms.degrade import degrade_session
from infant_tissue.phantoms.io import write_bids_sessions
from infant_tissue.phantoms.norms import phantom_norms
from infant_tissue.qc import read_session_qc

from ..app_fixtures import SHAPE, run_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def qc_run(tmp_path_factory, standin_templateflow):
    tmp = tmp_path_factory.mktemp("qc")
    sessions = []
    for index, (name, severity) in enumerate((("clean", "none"), ("t1w_as_t2w", "severe"))):
        session = degrade_session(sample_subject(31, index, SHAPE), name, severity)
        sessions.append((sample_subject(31, index, SHAPE), session.volumes, 6.0))
    write_bids_sessions(tmp / "bids", sessions)
    norms = phantom_norms(SHAPE, seed=31).write(tmp / "norms.tsv")
    env = {**os.environ, "TEMPLATEFLOW_HOME": str(standin_templateflow)}
    proc = run_app(
        tmp / "bids", tmp / "out", "participant", "--skull-stripped", "--qc-norms", norms,
        "--nprocs", "2", "--omp-nthreads", "1", "--device", "cpu", "--no-reports",
        "-w", tmp / "work", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp / "out"


def _anat(out, sub):
    return out / f"sub-{sub}" / "ses-01" / "anat"


def test_clean_phantom_passes_and_t1w_as_t2w_fails(qc_run):
    clean = read_session_qc(_anat(qc_run, "01") / "sub-01_ses-01_desc-tissue_qc.json")
    bad = read_session_qc(_anat(qc_run, "02") / "sub-02_ses-01_desc-tissue_qc.json")
    assert clean.verdict == "pass", clean.reasons
    assert bad.verdict == "fail"
    assert any("a T2w that is not a T2w" in r for r in bad.reasons), bad.reasons
    assert clean.metrics["t1w_t2w_correlation"] < 0 < bad.metrics["t1w_t2w_correlation"]
    assert clean.metrics["registration_cr"] > clean.metrics["registration_cr_before"]
    assert 0.8 < clean.metrics["brain_mask_ratio"] < 1.25
    assert clean.extra["Members"] == 3 and clean.extra["NormsSource"].endswith("norms.tsv")


def test_maps_are_on_the_t1w_grid_with_sidecars(qc_run):
    anat = _anat(qc_run, "01")
    dseg = nib.load(anat / "sub-01_ses-01_space-T1w_dseg.nii.gz")
    brain = nib.load(anat / "sub-01_ses-01_space-T1w_desc-brain_mask.nii.gz").get_fdata() > 0
    removed = nib.load(anat / "sub-01_ses-01_space-T1w_desc-cerebellumbrainstem_mask.nii.gz")
    segmented = brain & (removed.get_fdata() == 0)
    for kind in ("disagreement", "entropy"):
        path = anat / f"sub-01_ses-01_space-T1w_desc-{kind}_probseg.nii.gz"
        img = nib.load(path)
        assert img.shape == dseg.shape and np.allclose(img.affine, dseg.affine)
        data = np.asanyarray(img.dataobj)
        assert 0 <= data.min() and data.max() <= 1
        assert data[~segmented].max() == 0  # nothing outside what was segmented
        sidecar = json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())
        assert sidecar["EnsembleMembersUsed"] == 3 and sidecar["InferenceMode"] == "faithful"
        assert kind in sidecar["Description"].lower()
    assert "*_desc-tissue_qc.json" in (qc_run / ".bidsignore").read_text()


def test_session_report_shows_the_qc_panel(qc_run):
    from infant_tissue.reports.session import generate_session_report

    report = generate_session_report(qc_run, "02", "01")
    html = report.path.read_text()
    assert 'class="qc-fail">fail' in html and "a T2w that is not a T2w" in html
    assert any(f.key == "uncertainty" and f.path for f in report.figures)
