"""Cerebellum + brain-stem removal end to end: phantoms whose hindbrain is labelled, the demo
bundle (trained on iSeg-form phantoms, i.e. without it), a phantom TemplateFlow home."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pytest

from infant_tissue.phantoms import make_bids_subject, sample_subject, write_bids_dataset

from ..app_fixtures import SHAPE, run_app

pytestmark = pytest.mark.slow

SUBJECT_SEED = 21


def _dice(a, b) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, standin_templateflow):
    """The same skull-stripped phantom run with the removal (default) and without it."""
    tmp = tmp_path_factory.mktemp("removal")
    subject = sample_subject(SUBJECT_SEED, 0, SHAPE)
    write_bids_dataset(tmp / "bids", [subject], skull_stripped=True)
    env = {**os.environ, "TEMPLATEFLOW_HOME": str(standin_templateflow)}
    common = ["participant", "--skull-stripped", "--nprocs", "2", "--omp-nthreads", "1",
              "--inference-mode", "fast",
              "--device", "cpu", "--no-reports"]  # fmt: skip
    done = {}
    for name, extra in (("removed", []), ("kept", ["--keep-cerebellum"])):
        out = tmp / name
        proc = run_app(tmp / "bids", out, *common, "-w", tmp / f"work-{name}", *extra, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        done[name] = (out / "sub-01" / "ses-01" / "anat", proc)
    return make_bids_subject(subject, skull_stripped=True), done


def _dseg(anat):
    return np.asanyarray(nib.load(anat / "sub-01_ses-01_space-T1w_dseg.nii.gz").dataobj)


def test_removed_region_matches_the_truth(runs):
    truth, done = runs
    anat, _ = done["removed"]
    stem = anat / "sub-01_ses-01_space-T1w_desc-cerebellumbrainstem_mask"
    region = np.asanyarray(nib.load(f"{stem}.nii.gz").dataobj) > 0
    assert _dice(region, truth.hindbrain) >= 0.8, _dice(region, truth.hindbrain)
    sidecar = json.loads(stem.with_suffix(".json").read_text())
    assert sidecar["Registration"] == "template-t2w" and sidecar["Problems"] == []
    assert 0.07 <= sidecar["ShareOfBrain"] <= 0.14
    assert "cerebellum" in sidecar["Description"].lower()
    # the brain mask stays the whole brain; no tissue label inside the removed region
    brain = nib.load(anat / "sub-01_ses-01_space-T1w_desc-brain_mask.nii.gz").get_fdata() > 0
    assert (brain & region).sum() == region.sum()
    assert not _dseg(anat)[region].any()
    probs = nib.load(anat / "sub-01_ses-01_space-T1w_label-GM_probseg.nii.gz").get_fdata()
    assert probs[region].max() == 0


def test_cerebrum_tissue_dice_is_unchanged_or_better(runs):
    truth, done = runs
    removed, kept = _dseg(done["removed"][0]), _dseg(done["kept"][0])
    manual = np.zeros_like(truth.dseg)  # model coding -> NiPreps (1 GM, 2 WM, 3 CSF)
    for model, nipreps in ((1, 3), (2, 1), (3, 2)):
        manual[truth.dseg == model] = nipreps
    scores = {
        name: [_dice(dseg == k, manual == k) for k in (1, 2, 3)]
        for name, dseg in (("removed", removed), ("kept", kept))
    }
    for k in range(3):
        assert scores["removed"][k] >= scores["kept"][k] - 0.005, scores
    assert np.mean(scores["removed"]) > np.mean(scores["kept"]) + 0.01, scores
    # without the removal the model labels the hindbrain as cerebral tissue
    assert (kept[truth.hindbrain] > 0).mean() > 0.5
    assert (removed[truth.hindbrain] > 0).mean() < 0.1


def test_volume_table_reports_the_removed_region(runs):
    _, done = runs
    rows = {}
    for name in ("removed", "kept"):
        table = (done[name][0] / "sub-01_ses-01_desc-tissue_volumes.tsv").read_text()
        rows[name] = {r.split("\t")[0]: r.split("\t") for r in table.splitlines()[1:]}
    assert list(rows["removed"]) == ["GM", "WM", "CSF", "brain", "cerebellum_brainstem"]
    assert list(rows["kept"]) == ["GM", "WM", "CSF", "brain"]
    removed_mm3 = float(rows["removed"]["cerebellum_brainstem"][3])
    assert rows["removed"]["cerebellum_brainstem"][4] == "n/a" and removed_mm3 > 0
    cerebrum, whole = float(rows["removed"]["brain"][3]), float(rows["kept"]["brain"][3])
    assert cerebrum < whole and abs(cerebrum + removed_mm3 - whole) < 0.05 * whole


def test_keep_cerebellum_warns_about_the_training_domain(runs):
    _, done = runs
    assert "outside its training domain" in done["kept"][1].stderr
    assert "outside its training domain" not in done["removed"][1].stderr
    assert not (
        done["kept"][0] / "sub-01_ses-01_space-T1w_desc-cerebellumbrainstem_mask.nii.gz"
    ).exists()


def test_bids_validator_accepts_the_removal_outputs(runs):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    validator = shutil.which("bids-validator-deno") or str(
        Path(sys.executable).parent / "bids-validator-deno"
    )
    if not Path(validator).exists():
        pytest.skip("bids-validator-deno is not installed")
    out = runs[1]["removed"][0].parents[2]
    done = subprocess.run(
        [validator, str(out), "--json"], capture_output=True, text=True, timeout=300
    )
    issues = json.loads(done.stdout)["issues"]["issues"]
    errors = [(i["code"], i.get("location")) for i in issues if i["severity"] == "error"]
    assert errors == []
