"""The BIDS-App end to end on generated datasets: participant then group, as users run it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from infant_tissue.cli.main import main
from infant_tissue.layout import ensure_dataset_files

from ..app_fixtures import MICRO, run_app, tiny_bundle
from ..conftest import SHARED

pytestmark = pytest.mark.slow

EXPECTED = [
    "desc-preproc_T1w.nii.gz",
    "desc-tissue_volumes.tsv",
    "space-T1w_desc-brain_mask.nii.gz",
    # one-member bundle: the entropy map, no disagreement map (docs/qc.md)
    "space-T1w_desc-entropy_probseg.nii.gz",
    "space-T1w_desc-preproc_T2w.nii.gz",
    "space-T1w_dseg.nii.gz",
    "space-T1w_label-CSF_probseg.nii.gz",
    "space-T1w_label-GM_probseg.nii.gz",
    "space-T1w_label-WM_probseg.nii.gz",
]


def test_exit_code_and_one_line_errors(app_run):
    _, proc, _, _, _ = app_run
    assert proc.returncode == 1, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("infant-tissue: error")]
    assert len(errors) == 2, errors
    assert "nipype.workflow INFO" not in proc.stderr  # the scheduler's chatter stays off by default
    assert any("sub-03" in e and "sub-03_T2w.nii.gz" in e and "gzip" in e for e in errors)
    assert any("sub-04" in e and "no T2w" in e for e in errors)


def test_outputs_of_good_sessions(app_run):
    tmp, _, _, _, _ = app_run
    out = tmp / "out"
    for sub in ("01", "02"):
        anat = out / f"sub-{sub}" / "anat"
        names = sorted(
            p.name.removeprefix(f"sub-{sub}_")
            for p in anat.iterdir()
            if not p.name.endswith(".json")
        )
        assert names == EXPECTED
        for name in EXPECTED:
            sidecar = anat / f"sub-{sub}_{name.split('.')[0]}.json"
            assert sidecar.is_file(), sidecar
        dseg_meta = json.loads((anat / f"sub-{sub}_space-T1w_dseg.json").read_text())
        assert dseg_meta["ModelBundle"] == "tiny-random" and dseg_meta["Vote"] == "hard"
        assert dseg_meta["InferenceMode"] == "whole" and len(dseg_meta["ModelBundleSHA256"]) == 64
        dseg = nib.load(anat / f"sub-{sub}_space-T1w_dseg.nii.gz")
        t1 = nib.load(tmp / "bids" / f"sub-{sub}" / "anat" / f"sub-{sub}_T1w.nii.gz")
        assert dseg.shape == t1.shape and np.allclose(dseg.affine, t1.affine)
        assert set(np.unique(np.asanyarray(dseg.dataobj))) <= {0, 1, 2, 3}
        mask = nib.load(anat / f"sub-{sub}_space-T1w_desc-brain_mask.nii.gz")
        outside = np.asanyarray(mask.dataobj) == 0
        assert not np.asanyarray(dseg.dataobj)[outside].any()  # no tissue outside the brain
        table = (anat / f"sub-{sub}_desc-tissue_volumes.tsv").read_text().splitlines()
        assert table[0] == "tissue\tlabel\tvoxels\tvolume_mm3\tvolume_pv_mm3"
        assert [r.split("\t")[0] for r in table[1:]] == ["GM", "WM", "CSF", "brain"]
    assert (out / "dseg.tsv").read_text().splitlines()[1:] == [
        "1\tGray matter\tGM",
        "2\tWhite matter\tWM",
        "3\tCerebrospinal fluid\tCSF",
    ]
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "infant-tissue"


def test_failed_sessions_leave_only_a_crash_file(app_run):
    tmp, proc, _, _, _ = app_run
    for sub in ("03", "04"):
        folder = tmp / "out" / f"sub-{sub}"
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        # the crash file and the run record (read by the session's report), nothing else
        assert files and all(f.startswith("log/") for f in files), files
        assert f"log/sub-{sub}_runtime.json" in files
        crash = next(f for f in files if f.startswith("log/crash-"))
        first = (folder / crash).read_text().splitlines()[0]
        assert first.startswith(f"sub-{sub}:") and first in proc.stderr


def test_left_right_flipped_input_gives_mirror_image_labels(app_run):
    tmp, *_ = app_run
    a = np.asanyarray(nib.load(tmp / "out/sub-01/anat/sub-01_space-T1w_dseg.nii.gz").dataobj)
    b = np.asanyarray(nib.load(tmp / "out/sub-02/anat/sub-02_space-T1w_dseg.nii.gz").dataobj)
    brain = (a > 0) | (b[::-1] > 0)
    mirrored = (a == b[::-1])[brain].mean()
    assert mirrored > 0.99, mirrored
    assert (a == b)[brain].mean() < mirrored - 0.02  # the phantom is not left-right symmetric


def test_group_level(app_run):
    tmp, _, group, _, _ = app_run
    assert group.returncode == 0, group.stderr[-2000:]
    rows = (tmp / "out/group/tissue_volumes.tsv").read_text().splitlines()
    assert len(rows) == 3 and rows[1].startswith("sub-01")
    status = (tmp / "out/group/sessions_status.tsv").read_text()
    assert "sub-03\tn/a\tfailed" in status and "sub-04\tn/a\tfailed" in status
    for name in (
        "tissue_volumes_summary.tsv",
        "tissue_volumes_outliers.tsv",
        "tissue_volumes_distributions.png",
        "tissue_volumes_distributions.svg",
    ):
        assert (tmp / "out/group" / name).is_file()


def test_pybids_indexes_the_outputs_as_derivatives(app_run):
    from bids import BIDSLayout

    tmp, *_ = app_run
    layout = BIDSLayout(tmp / "bids", derivatives=str(tmp / "out"), validate=False)
    derivatives = layout.derivatives.get_pipeline("infant-tissue")
    dsegs = derivatives.get(suffix="dseg", extension=".nii.gz")
    assert sorted(f.entities["subject"] for f in dsegs) == ["01", "02"]
    assert all(f.entities["space"] == "T1w" for f in dsegs)
    probs = derivatives.get(suffix="probseg", label="GM", extension=".nii.gz")
    assert len(probs) == 2


def test_bids_validator_accepts_the_outputs(app_run):
    validator = shutil.which("bids-validator-deno") or str(
        Path(sys.executable).parent / "bids-validator-deno"
    )
    if not Path(validator).exists():
        pytest.skip("bids-validator-deno is not installed")
    tmp, *_ = app_run
    done = subprocess.run(
        [validator, str(tmp / "out"), "--json"], capture_output=True, text=True, timeout=300
    )
    issues = json.loads(done.stdout)["issues"]["issues"]
    errors = [(i["code"], i.get("location")) for i in issues if i["severity"] == "error"]
    assert errors == []


def test_rerun_reuses_finished_nodes(app_run):
    tmp, _, _, _, args = app_run
    seg_result = next(
        (tmp / "work").glob("infant_tissue_wf/session_sub_01/segmentation_wf/segment/result_*.pklz")
    )
    before = seg_result.stat().st_mtime
    code = main([*args[:3], *args[3:], "--participant-label", "01"])
    assert code == 0
    assert seg_result.stat().st_mtime == before


def test_concurrent_dataset_files(tmp_path):
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(4) as pool:
        list(pool.map(ensure_dataset_files, [tmp_path] * 16))
    assert json.loads((tmp_path / "dataset_description.json").read_text())["Name"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".bidsignore",
        "README.md",
        "dataset_description.json",
        "desc-tissue_dseg.tsv",
        "dseg.tsv",
    ]


def test_concurrent_participant_runs_into_one_folder(app_run, tmp_path):
    """Two array-job-like processes (one participant each) writing into the same new folder."""
    tmp, _, _, _, args = app_run
    out = tmp_path / "out"
    options = [a for a in args[3:] if a not in ("-w", str(tmp / "work"))]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "infant_tissue.cli.main", str(tmp / "bids"), str(out),
             "participant", "--participant-label", sub, "-w", str(tmp_path / f"work{sub}"),
             *options],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for sub in ("01", "02")
    ]  # fmt: skip
    results = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1][-2000:] for r in results]
    for sub in ("01", "02"):
        names = sorted(
            p.name.removeprefix(f"sub-{sub}_")
            for p in (out / f"sub-{sub}" / "anat").iterdir()
            if not p.name.endswith(".json")
        )
        assert names == EXPECTED
        assert (out / f"sub-{sub}.html").is_file()
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert not [p for p in out.rglob("*") if ".tmp" in p.name or p.name.startswith(".")
                and p.name != ".bidsignore"]  # fmt: skip
    assert main([str(tmp / "bids"), str(out), "group", "--no-reports"]) == 0
    rows = (out / "group" / "tissue_volumes.tsv").read_text().splitlines()
    assert [r.split("\t")[0] for r in rows[1:]] == ["sub-01", "sub-02"]


def test_usage_exit_codes(tmp_path, capsys):
    assert main([str(tmp_path / "none"), str(tmp_path / "o"), "participant"]) == 66
    assert main([str(tmp_path), str(tmp_path / "o"), "everything"]) == 17
    assert main([str(tmp_path), str(tmp_path / "o"), "participant"]) == 16  # not BIDS
    assert main([str(tmp_path), str(tmp_path / "o"), "participant", "--nprocs", "x"]) == 64
    assert "dataset_description.json" in capsys.readouterr().err


def test_unknown_participant(app_run, capsys):
    tmp, _, _, _, args = app_run
    code = main([*args, "--participant-label", "sub-99"])
    assert code == 66
    assert "99" in capsys.readouterr().err


@pytest.fixture
def real_infant(shared_dir):
    path = shared_dir / "real-infant"
    if not path.is_dir():
        pytest.skip("no real infant data")
    return path


def test_real_bids_tree_reports_every_session(real_infant, tmp_path, capsys):
    bundle = tiny_bundle(tmp_path / "bundle")
    code = main(
        [
            str(real_infant / "bids"),
            str(tmp_path / "out"),
            "participant",
            "--models",
            str(bundle),
            "--skull-stripped",
            "--skip-bids-validation",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("infant-tissue: error")]
    assert len(lines) == 10 and all("no T2w" in x or "no T1w" in x for x in lines)
    written = [p for p in (tmp_path / "out").rglob("*.nii.gz")]
    assert written == []


@pytest.fixture(scope="module")
def real_templateflow(tmp_path_factory):
    """A TemplateFlow home whose MNIInfant cohort 3 is the real 6-month template pair, with its
    cerebellum + brain-stem mask derived as the image build does without TemplateFlow's
    transforms (the packaged adult labels registered to its T2w; 3 mm here to save CI time)."""
    from infant_tissue.anat.cerebellum import derive_template_mask

    real_infant = SHARED / "real-infant"
    if not (real_infant / "templates-6mo").is_dir():
        pytest.skip("no real infant data (../shared/real-infant)")
    home = tmp_path_factory.mktemp("real-templateflow")
    folder = home / "tpl-MNIInfant" / "cohort-3"
    folder.mkdir(parents=True)
    stem = folder / "tpl-MNIInfant_cohort-3_res-1"
    t1w = nib.load(real_infant / "templates-6mo/Template-Month6-T1w.nii.gz")
    for suffix in ("T1w", "T2w"):
        os.symlink(real_infant / f"templates-6mo/Template-Month6-{suffix}.nii.gz",
                   f"{stem}_{suffix}.nii.gz")  # fmt: skip
    brain = (np.asanyarray(t1w.dataobj) > 0).astype(np.uint8)
    nib.save(nib.Nifti1Image(brain, t1w.affine), f"{stem}_desc-brain_mask.nii.gz")
    problems = derive_template_mask(
        f"{stem}_T2w.nii.gz",
        f"{stem}_desc-brain_mask.nii.gz",
        f"{stem}_desc-cerebellumbrainstem_mask.nii.gz",
        work_dir=str(tmp_path_factory.mktemp("derive")),
        resolution_mm=3.0,
    )
    return home, problems


def test_real_template_cerebellum_mask_is_plausible(real_templateflow):
    _, problems = real_templateflow
    assert problems == []


def test_real_template_pair_runs_skull_stripped(real_infant, real_templateflow, tmp_path):
    """The real 6-month template pair (320³, 0.8 mm, oblique) through --skull-stripped, with the
    cerebellum + brain-stem removal (its own template registration)."""
    bids = tmp_path / "bids" / "sub-tpl" / "anat"
    bids.mkdir(parents=True)
    (tmp_path / "bids" / "dataset_description.json").write_text(
        json.dumps({"Name": "real template", "BIDSVersion": "1.10.0"})
    )
    os.symlink(
        real_infant / "templates-6mo/Template-Month6-T1w.nii.gz", bids / "sub-tpl_T1w.nii.gz"
    )
    os.symlink(
        real_infant / "templates-6mo/Template-Month6-T2w.nii.gz", bids / "sub-tpl_T2w.nii.gz"
    )
    bundle = tiny_bundle(tmp_path / "bundle", kwargs=MICRO)
    proc = run_app(
        tmp_path / "bids",
        tmp_path / "out",
        "participant",
        "--skull-stripped",
        "--models",
        bundle,
        "--inference-mode",
        "tile96",
        "--age-months",
        "6",
        "-w",
        tmp_path / "work",
        "--nprocs",
        "2",
        "--omp-nthreads",
        "1",
        env={**os.environ, "TEMPLATEFLOW_HOME": str(real_templateflow[0])},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    anat = tmp_path / "out/sub-tpl/anat"
    dseg = nib.load(anat / "sub-tpl_space-T1w_dseg.nii.gz")
    assert dseg.shape == (320, 320, 320)
    rows = (anat / "sub-tpl_desc-tissue_volumes.tsv").read_text().splitlines()
    cells = {r.split("\t")[0]: r.split("\t") for r in rows[1:]}
    assert list(cells) == ["GM", "WM", "CSF", "brain", "cerebellum_brainstem"]
    mask = np.asanyarray(nib.load(anat / "sub-tpl_space-T1w_desc-brain_mask.nii.gz").dataobj)
    brain_mm3 = float((mask > 0).sum()) * 0.8**3
    assert 700_000 < brain_mm3 < 900_000  # the template's brain mask: ~800 mL
    removal = json.loads(
        (anat / "sub-tpl_space-T1w_desc-cerebellumbrainstem_mask.json").read_text()
    )
    assert removal["Problems"] == [], removal  # inferior, posterior, plausible share
    removed = float(cells["cerebellum_brainstem"][3])
    assert removed == pytest.approx(removal["RemovedVolume_mm3"], rel=0.01)
    assert len(list((tmp_path / "out/sub-tpl/figures").glob("*.png"))) == 9
    qc = json.loads((anat / "sub-tpl_desc-tissue_qc.json").read_text())
    assert qc["Verdict"] in ("pass", "warn", "fail")
    # a genuine 6-month pair: T1w and T2w anti-correlated in the brain (measured -0.26)
    assert qc["Metrics"]["t1w_t2w_correlation"] < -0.15, qc
    assert (tmp_path / "out/sub-tpl.html").is_file()


def test_version_names_app_bundle_and_torch(capsys):
    assert main(["--version"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("infant-tissue ") and "sha256" in out[1] and out[2].startswith("torch")
