"""Template-based brain extraction end to end: raw phantom with skull, a TemplateFlow folder."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pytest

from infant_tissue.phantoms import make_bids_subject, sample_subject, write_bids_dataset
from infant_tissue.phantoms.templates import write_templateflow

from ..app_fixtures import SHAPE, run_app, tiny_bundle

pytestmark = pytest.mark.slow


def test_template_brain_mask_run(tmp_path):
    subject = sample_subject(5, 0, SHAPE)
    write_bids_dataset(tmp_path / "bids", [subject])
    write_templateflow(tmp_path / "templateflow", [3], seed=77, shape=SHAPE)
    bundle = tiny_bundle(tmp_path / "bundle")
    env = {**os.environ, "TEMPLATEFLOW_HOME": str(tmp_path / "templateflow")}
    done = run_app(
        str(tmp_path / "bids"),
        str(tmp_path / "out"),
        "participant",
        "--models",
        str(bundle),
        "--inference-mode",
        "whole",
        "--nprocs",
        "1",
        "--omp-nthreads",
        "1",
        "-w",
        str(tmp_path / "work"),
        env=env,
        timeout=1500,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    anat = tmp_path / "out" / "sub-01" / "ses-01" / "anat"
    mask = np.asanyarray(nib.load(anat / "sub-01_ses-01_space-T1w_desc-brain_mask.nii.gz").dataobj)
    vols = make_bids_subject(subject)
    truth = (vols.dseg > 0) | vols.hindbrain
    dice = 2 * (mask.astype(bool) & truth).sum() / (mask.astype(bool).sum() + truth.sum())
    assert dice > 0.85, dice
    # the removal reused brain extraction's template registration
    removed = anat / "sub-01_ses-01_space-T1w_desc-cerebellumbrainstem_mask"
    record = json.loads(removed.with_suffix(".json").read_text())
    assert record["Registration"] == "brain-extraction"
    region = np.asanyarray(nib.load(str(removed) + ".nii.gz").dataobj) > 0
    dice = 2 * (region & vols.hindbrain).sum() / (region.sum() + vols.hindbrain.sum())
    assert dice > 0.75, dice


def test_missing_template_fails_the_session_clearly(tmp_path):
    write_bids_dataset(tmp_path / "bids", [sample_subject(5, 0, SHAPE)])
    (tmp_path / "empty").mkdir()
    bundle = tiny_bundle(tmp_path / "bundle")
    env = {**os.environ, "TEMPLATEFLOW_HOME": str(tmp_path / "empty")}
    done = run_app(
        str(tmp_path / "bids"),
        str(tmp_path / "out"),
        "participant",
        "--models",
        str(bundle),
        env=env,
        timeout=600,
    )
    assert done.returncode == 1
    errors = [x for x in done.stderr.splitlines() if x.startswith("infant-tissue: error")]
    assert len(errors) == 1 and "tpl-MNIInfant_cohort-3_res-1_T1w.nii.gz" in errors[0]
    assert not list((tmp_path / "out").rglob("*.nii.gz"))
