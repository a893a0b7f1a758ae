"""``infant-tissue make-phantoms``: the command writes both forms, which ``evaluate`` can read."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from infant_tissue.cli import make_phantoms as MP
from infant_tissue.cli.main import main as cli_main

SHAPE = ["36", "38", "36"]


def test_both_forms_and_summary(tmp_path, capsys):
    out = tmp_path / "phantoms"
    argv = [
        "make-phantoms",
        str(out),
        "--n-subjects",
        "2",
        "--seed",
        "4",
        "--form",
        "both",
        "--shape",
        *SHAPE,
    ]
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out
    assert "2 phantom subject(s), seed 4" in printed and "sub-02" in printed
    assert (out / "bids" / "dataset_description.json").is_file()
    assert (out / "bids" / "sub-02" / "ses-01" / "anat" / "sub-02_ses-01_T2w.nii.gz").is_file()
    assert {p.name for p in (out / "iseg").iterdir()} == {
        f"subject-{n}-{kind}.{ext}"
        for n in (1, 2)
        for kind in ("T1", "T2", "label")
        for ext in ("hdr", "img")
    }
    label = nib.load(out / "iseg" / "subject-1-label.hdr")
    assert label.shape == (36, 38, 36)
    assert set(np.unique(np.asanyarray(label.dataobj))) == {0, 10, 150, 250}


def test_refuses_non_empty_output_without_overwrite(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("x")
    argv = [str(tmp_path), "--n-subjects", "1", "--form", "iseg", "--shape", *SHAPE]
    assert MP.main(argv) == 1
    assert "not empty" in capsys.readouterr().err
    assert MP.main([*argv, "--overwrite"]) == 0
    assert (tmp_path / "subject-1-T1.hdr").is_file() and (tmp_path / "keep.txt").is_file()


def test_bad_arguments(tmp_path, capsys):
    assert MP.main([str(tmp_path / "a"), "--shape", "8", "40", "40"]) == 1
    assert "at least 32" in capsys.readouterr().err
    assert MP.main([str(tmp_path / "b"), "--n-subjects", "0"]) == 1
    assert MP.main([str(tmp_path / "c"), "--form", "nifti"]) == 64
    assert MP.main([]) == 64


def test_generated_ground_truth_evaluates_perfectly(tmp_path, capsys):
    out = tmp_path / "bids"
    assert MP.main([str(out), "--n-subjects", "1", "--seed", "2", "--shape", *SHAPE]) == 0
    dseg = out / "derivatives" / "manual"
    tsv = tmp_path / "m.tsv"
    argv = [
        "evaluate",
        "--pred",
        str(dseg),
        "--truth",
        str(dseg),
        "--labels",
        "nipreps",
        "--out",
        str(tsv),
    ]
    assert cli_main(argv) == 0
    rows = [line.split("\t") for line in tsv.read_text().splitlines()[1:]]
    assert {r[0] for r in rows} == {"sub-01_ses-01"}
    for _, _, metric, value in rows:
        assert float(value) == (1.0 if metric in ("dice", "vs") else 0.0)
