"""``infant-tissue evaluate``: pairing, label codings, grid checks, outputs and exit codes."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from infant_tissue.cli import evaluate as E
from infant_tissue.cli.main import main as cli_main
from infant_tissue.evaluation import pairing as P
from infant_tissue.evaluation.metrics import METRICS, evaluate_tissues
from infant_tissue.labels import from_model

SHAPE = (16, 18, 14)
AFFINE = np.diag([0.9, 1.0, 1.1, 1.0])


def label_map(seed: int, shape=SHAPE) -> np.ndarray:
    """Nested boxes (WM in GM in CSF) with a seeded jitter: every tissue present."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint8)
    j = rng.integers(0, 2, size=3)
    labels[1 + j[0] : -1, 1 : -1 - j[1], 1:-1] = 1
    labels[3 : -3 - j[2], 3:-3, 3:-3] = 2
    labels[5 + j[1] : -5, 5:-5, 5:-5] = 3
    flips = rng.random(shape) < 0.02
    labels[flips & (labels > 0)] = 2
    return labels


def save(path: Path, labels: np.ndarray, coding: str | None = "model", affine=AFFINE) -> Path:
    """Write ``labels`` in ``coding`` (``None``: as they are, e.g. an intensity image)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = labels if coding is None else from_model(labels, coding)
    image = (
        nib.AnalyzeImage(data, affine)
        if path.name.endswith(".hdr")
        else nib.Nifti1Image(data, affine)
    )
    nib.save(image, str(path))
    return path


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.fixture
def pair(tmp_path):
    truth = label_map(0)
    pred = label_map(1)
    return (
        save(tmp_path / "case1_pred.nii.gz", pred),
        save(tmp_path / "case1_seg.nii.gz", truth),
        pred,
        truth,
    )


def test_files_pair_in_order_and_tsv_matches_metrics(tmp_path, pair, capsys):
    pred_path, truth_path, pred, truth = pair
    out = tmp_path / "out" / "metrics.tsv"
    assert E.main(["--pred", str(pred_path), "--truth", str(truth_path), "--out", str(out)]) == 0
    rows = read_rows(out)
    assert list(rows[0]) == ["subject", "tissue", "metric", "value"]
    assert len(rows) == 3 * len(METRICS)
    assert {r["subject"] for r in rows} == {"case1"}
    expected = evaluate_tissues(pred, truth, spacing=(0.9, 1.0, 1.1))
    for row in rows:
        assert float(row["value"]) == pytest.approx(
            expected[row["tissue"]][row["metric"]], rel=1e-5
        )
    printed = capsys.readouterr().out
    assert "1 subject(s)" in printed and "±" in printed
    for word in ("CSF", "GM", "WM", *METRICS):
        assert word in printed
    assert not [p for p in out.parent.iterdir() if ".tmp-" in p.name]


def test_dispatcher_runs_evaluate(pair, capsys):
    pred_path, truth_path, _, _ = pair
    assert (
        cli_main(
            ["evaluate", "--pred", str(pred_path), "--truth", str(truth_path), "--metrics", "dice"]
        )
        == 0
    )
    assert "dice" in capsys.readouterr().out


def test_directories_pair_by_subject_and_codings_convert(tmp_path):
    pred_dir, truth_dir = tmp_path / "pred", tmp_path / "truth"
    truths = {}
    for n in (1, 2, 3):
        truths[n] = label_map(10 + n)
        # truth: iSeg layout, Analyze, iSeg coding, with T1/T2 next to the labels
        save(truth_dir / f"subject-{n}-label.hdr", truths[n], "iseg")
        save(truth_dir / f"subject-{n}-T1.hdr", truths[n].astype(np.int16) * 100, None)
        save(truth_dir / f"subject-{n}-T2.hdr", truths[n].astype(np.int16) * 100, None)
    for n in (1, 2):  # predictions for two subjects only, in BIDS-App style names
        anat = pred_dir / f"sub-{n}" / "anat"
        save(anat / f"subject-{n}_desc-tissue_dseg.nii.gz", truths[n], "nipreps")
        save(anat / f"subject-{n}_desc-preproc_T1w.nii.gz", truths[n].astype(np.int16) * 100, None)
    out = tmp_path / "m.tsv"
    status = E.main(
        [
            "--pred", str(pred_dir), "--truth", str(truth_dir),
            "--pred-labels", "nipreps", "--truth-labels", "iseg",
            "--no-affine-check", "--out", str(out),
        ]
    )  # fmt: skip
    assert status == 0
    rows = read_rows(out)
    assert sorted({r["subject"] for r in rows}) == ["subject-1", "subject-2"]
    dice = [float(r["value"]) for r in rows if r["metric"] == "dice"]
    assert dice == [1.0] * 6  # same labels once both codings are undone


def test_subject_keys():
    assert P.subject_key(Path("sub-01_ses-6mo_desc-manual_dseg.nii.gz")) == "sub-01_ses-6mo"
    assert P.subject_key(Path("sub-ab_T1w.nii")) == "sub-ab"
    assert P.subject_key(Path("subject-10-label.hdr")) == "subject-10"
    assert P.subject_key(Path("case7_seg.nii.gz")) == "case7"
    assert P.subject_key(Path("case7-pred.nii.gz")) == "case7"


def test_directory_prefers_label_maps_and_one_format(tmp_path):
    labels = label_map(3)
    save(tmp_path / "subject-1-label.hdr", labels, "iseg")
    save(tmp_path / "subject-1-label.nii.gz", labels, "iseg")
    save(tmp_path / "subject-1-T1.hdr", labels.astype(np.int16) * 100, None)
    save(tmp_path / ".hidden" / "subject-2-label.nii.gz", labels)
    found = P.find_segmentations(tmp_path)
    assert found == {"subject-1": tmp_path / "subject-1-label.nii.gz"}
    save(tmp_path / "x" / "subject-1_dseg.nii.gz", labels)
    with pytest.raises(ValueError, match="two candidate label maps for subject-1"):
        P.find_segmentations(tmp_path)


def test_iseg_4d_analyze_labels_are_read(tmp_path):
    labels = label_map(4)
    path = tmp_path / "subject-1-label.hdr"
    nib.save(nib.AnalyzeImage(from_model(labels, "iseg")[..., None], np.eye(4)), str(path))
    loaded, _, zooms = P.load_labels(path, "iseg")
    np.testing.assert_array_equal(loaded, labels)
    assert zooms == (1.0, 1.0, 1.0)


def test_missing_input_exits_66(tmp_path, pair, caplog):
    _, truth_path, _, _ = pair
    missing = tmp_path / "nope.nii.gz"
    assert E.main(["--pred", str(missing), "--truth", str(truth_path)]) == 66
    assert str(missing) in caplog.text
    header_only = tmp_path / "lonely.hdr"
    header_only.write_bytes(b"\0" * 348)
    assert E.main(["--pred", str(header_only), "--truth", str(truth_path)]) == 66
    assert "lonely.img" in caplog.text


def test_shape_mismatch_is_one_clear_line(tmp_path, pair, caplog):
    _, truth_path, _, _ = pair
    other = save(tmp_path / "small.nii.gz", label_map(5, shape=(16, 18, 15)))
    assert E.main(["--pred", str(other), "--truth", str(truth_path)]) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0]
    assert str(other) in errors[0] and str(truth_path) in errors[0] and "shapes differ" in errors[0]


def test_affine_mismatch_and_override(tmp_path, pair, caplog):
    pred_path, truth_path, pred, _ = pair
    moved = AFFINE.copy()
    moved[0, 3] = 2.0
    shifted = save(tmp_path / "case1_moved.nii.gz", pred, affine=moved)
    assert E.main(["--pred", str(shifted), "--truth", str(truth_path)]) == 1
    assert "affines differ" in caplog.text and str(shifted) in caplog.text
    assert E.main(["--pred", str(shifted), "--truth", str(truth_path), "--no-affine-check"]) == 0


def test_wrong_coding_names_the_file(tmp_path, pair, caplog):
    _, truth_path, _, truth = pair
    iseg = save(tmp_path / "case1_iseg.nii.gz", truth, "iseg")
    assert E.main(["--pred", str(iseg), "--truth", str(truth_path)]) == 1
    assert str(iseg) in caplog.text and "not in the 'model' coding" in caplog.text
    assert E.main(["--pred", str(iseg), "--truth", str(truth_path), "--pred-labels", "iseg"]) == 0


def test_missing_tissue_gives_na_and_a_warning(tmp_path, pair, caplog):
    _, truth_path, _, truth = pair
    no_csf = truth.copy()
    no_csf[no_csf == 1] = 0
    pred_path = save(tmp_path / "case1_nocsf.nii.gz", no_csf)
    out = tmp_path / "m.tsv"
    assert E.main(["--pred", str(pred_path), "--truth", str(truth_path), "--out", str(out)]) == 0
    values = {(r["tissue"], r["metric"]): r["value"] for r in read_rows(out)}
    assert values[("CSF", "mhd")] == "n/a" and values[("CSF", "dice")] == "0"
    assert float(values[("WM", "dice")]) == 1.0
    assert "case1: boundary distance (CSF)" in caplog.text


def test_usage_errors(tmp_path, pair, caplog):
    pred_path, truth_path, _, _ = pair
    assert E.main(["--pred", str(pred_path)]) == 64
    assert (
        E.main(["--pred", str(pred_path), "--truth", str(truth_path), "--labels", "freesurfer"])
        == 64
    )
    assert E.main(["--pred", str(pred_path), str(pred_path), "--truth", str(truth_path)]) == 1
    assert "paired in order" in caplog.text
    assert E.main(["--pred", str(tmp_path), "--truth", str(truth_path)]) == 1
    assert E.main(["--help"]) == 0


def test_summary_table_statistics():
    rows = [("a", "GM", "dice", 0.8), ("b", "GM", "dice", 0.9), ("c", "GM", "dice", math.nan)]
    table = P.summary_table(rows)
    assert "3 subject(s)" in table
    assert f"0.8500 ± {np.std([0.8, 0.9], ddof=1):.4f} (n=2)" in table
