"""Sessions run concurrently in one nipype graph; a session failing inside the graph fails alone."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from ..app_fixtures import run_app, skull_stripped_dataset, tiny_bundle

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """sub-01 and sub-02 with NiBabies-style precomputed masks: sub-01's good, sub-02's off the
    image (its brain-mask node fails inside the graph); --nprocs 2."""
    tmp = tmp_path_factory.mktemp("concurrency")
    truth = skull_stripped_dataset(tmp / "bids")
    deriv = tmp / "nibabies"
    (deriv / "dataset_description.json").parent.mkdir(parents=True)
    (deriv / "dataset_description.json").write_text(
        json.dumps({"Name": "masks", "BIDSVersion": "1.10.0", "DatasetType": "derivative"})
    )
    for sub in ("01", "02"):
        t1w = nib.load(tmp / "bids" / f"sub-{sub}" / "anat" / f"sub-{sub}_T1w.nii.gz")
        mask = np.asanyarray(t1w.dataobj) > 0
        affine = t1w.affine.copy()
        if sub == "02":
            affine[:3, 3] += 500.0  # nowhere near the T1w: "the mask does not overlap"
        anat = deriv / f"sub-{sub}" / "anat"
        anat.mkdir(parents=True)
        nib.save(
            nib.Nifti1Image(mask.astype(np.uint8), affine),
            anat / f"sub-{sub}_space-T1w_desc-brain_mask.nii.gz",
        )
    bundle = tiny_bundle(tmp / "bundle")
    proc = run_app(
        tmp / "bids", tmp / "out", "participant", "--participant-label", "01", "02",
        "--derivatives", deriv, "--keep-cerebellum", "--models", bundle,
        "--inference-mode", "whole", "--device", "cpu", "--nprocs", "2", "--omp-nthreads", "1",
        "--no-reports", "-w", tmp / "work", timeout=900,
    )  # fmt: skip
    return tmp, proc, truth


def test_one_session_fails_alone(run):
    tmp, proc, _ = run
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("infant-tissue: error")]
    assert len(errors) == 1 and "sub-02" in errors[0] and "does not overlap" in errors[0]
    assert "Traceback" not in proc.stderr
    assert (tmp / "out/sub-01/anat/sub-01_space-T1w_dseg.nii.gz").is_file()
    assert not (tmp / "out/sub-02/anat").is_dir() or not any((tmp / "out/sub-02/anat").iterdir())
    crash = next((tmp / "out/sub-02/log").glob("crash-*.txt")).read_text()
    assert crash.splitlines()[0] == errors[0].removeprefix("infant-tissue: error: ")
    assert "Traceback" in crash  # nipype's node traceback is kept, in the crash file only


def test_sessions_share_one_graph_and_overlap(run):
    tmp, _, _ = run
    records = {
        sub: json.loads((tmp / f"out/sub-{sub}/log/sub-{sub}_runtime.json").read_text())
        for sub in ("01", "02")
    }
    assert records["01"]["status"] == "ok" and records["02"]["status"] == "failed"
    assert (tmp / "work/infant_tissue_wf/session_sub_01").is_dir()
    assert (tmp / "work/infant_tissue_wf/session_sub_02").is_dir()
    spans = {
        sub: (
            min(n["start"] for n in rec["nodes"].values()),
            max(n["end"] or n["start"] for n in rec["nodes"].values()),
        )
        for sub, rec in records.items()
    }
    # with two processes the sessions' nodes run side by side, not one session after the other
    assert max(s[0] for s in spans.values()) < min(s[1] for s in spans.values())
