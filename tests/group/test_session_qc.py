"""``group/session_qc.tsv``: one row per session with its QC verdict, reasons and metrics; n/a
(never an error) for sessions without a record or with a broken one."""

from __future__ import annotations

import json

import pytest

from infant_tissue import group
from infant_tissue.group import run_group
from infant_tissue.group.session_qc import QC_HEAD, QC_TAIL

from .fakes import _anat, read_tsv, voxels_for_age, write_crash, write_qc, write_session

THRESHOLDS = {
    "disagreement_mean": {"warn": [None, 0.08], "fail": [None, 0.15]},
    "window_coverage": {"warn": [0.98, None], "fail": [0.9, None]},
}
GOOD = {"disagreement_mean": 0.031, "brain_mask_ratio": 1.02, "window_coverage": 1.0}


@pytest.fixture
def no_figures(monkeypatch):
    monkeypatch.setattr(group, "make_figures", lambda *args, **kwargs: [])


def test_session_qc_table_with_sessions(tmp_path, no_figures):
    for sub, ses in (("01", "01"), ("01", "02"), ("02", "01"), ("02", "02"), ("03", "01")):
        write_session(tmp_path, sub, ses, 6.0, voxels_for_age(6.0, int(sub)), report=ses == "01")
    write_qc(tmp_path, "01", "01", "pass", [], GOOD, THRESHOLDS)
    warn = ["mean disagreement 0.09 is above 0.08", "window coverage 0.95 is below 0.98"]
    write_qc(
        tmp_path,
        "01",
        "02",
        "warn",
        warn,
        {"disagreement_mean": 0.09, "window_coverage": 0.95, "t2w_t1w_nmi": 1.21},
        THRESHOLDS,
    )
    write_qc(tmp_path, "02", "01", "fail", ["T2w looks like a T1w"], {"disagreement_mean": None})
    # sub-02 ses-02: no QC record (an older run); sub-03 ses-01: a truncated one
    broken = _anat(tmp_path, "03", "01") / "sub-03_ses-01_desc-tissue_qc.json"
    broken.write_text('{"Verdict": "pass", "Metr')
    write_crash(tmp_path, "04", "01", "sub-04 ses-01: /in/sub-04_ses-01_T1w.nii.gz: image is 4-D")

    result = run_group(tmp_path)
    header, rows = read_tsv(tmp_path / "group" / "session_qc.tsv")
    # the metrics of any record, in order of first appearance, between the fixed columns
    assert header == [*QC_HEAD, "brain_mask_ratio", "window_coverage", "t2w_t1w_nmi", *QC_TAIL]
    assert header[:5] == ["participant_id", "session_id", "qc", "disagreement_mean", "reasons"]
    got = {(r["participant_id"], r["session_id"]): r for r in rows}
    assert list(got) == [
        ("sub-01", "ses-01"),
        ("sub-01", "ses-02"),
        ("sub-02", "ses-01"),
        ("sub-02", "ses-02"),
        ("sub-03", "ses-01"),
        ("sub-04", "ses-01"),
    ]
    good = got[("sub-01", "ses-01")]
    assert (good["qc"], good["disagreement_mean"], good["reasons"]) == ("pass", "0.031", "n/a")
    assert (good["brain_mask_ratio"], good["window_coverage"], good["t2w_t1w_nmi"]) == (
        "1.02",
        "1",
        "n/a",
    )
    assert good["report"] == "sub-01_ses-01.html"
    assert good["qc_file"] == "sub-01/ses-01/anat/sub-01_ses-01_desc-tissue_qc.json"
    warned = got[("sub-01", "ses-02")]
    assert (warned["qc"], warned["reasons"]) == ("warn", "; ".join(warn))
    assert (warned["t2w_t1w_nmi"], warned["report"]) == ("1.21", "n/a")
    failed = got[("sub-02", "ses-01")]
    assert (failed["qc"], failed["disagreement_mean"]) == ("fail", "n/a")
    assert failed["reasons"] == "T2w looks like a T1w"
    older = got[("sub-02", "ses-02")]
    assert (older["qc"], older["reasons"], older["qc_file"]) == ("n/a", "no QC record", "n/a")
    bad = got[("sub-03", "ses-01")]
    assert bad["qc"] == "n/a" and bad["status"] == "ok"
    assert bad["reasons"].startswith(
        "sub-03/ses-01/anat/sub-03_ses-01_desc-tissue_qc.json: cannot read the QC record"
    )
    assert str(tmp_path) not in bad["reasons"]  # paths relative to the dataset
    crashed = got[("sub-04", "ses-01")]
    assert (crashed["qc"], crashed["status"]) == ("n/a", "failed")
    assert crashed["reasons"] == "no QC record (session failed)"

    assert [q.qc for q in result.qc] == ["pass", "warn", "fail", "n/a", "n/a", "n/a"]
    assert result.session_qc_tsv in result.paths and result.session_qc_json in result.paths
    sidecar = json.loads((tmp_path / "group" / "session_qc.json").read_text())
    assert list(sidecar) == header
    assert set(sidecar["qc"]["Levels"]) == {"pass", "warn", "fail", "n/a"}
    assert sidecar["disagreement_mean"]["Thresholds"] == THRESHOLDS["disagreement_mean"]
    assert sidecar["window_coverage"]["Thresholds"] == THRESHOLDS["window_coverage"]
    assert "Thresholds" not in sidecar["t2w_t1w_nmi"]


def test_session_qc_table_without_sessions_or_records(tmp_path, no_figures):
    for i, sub in enumerate(("01", "02", "03")):
        write_session(tmp_path, sub, None, 6.0, voxels_for_age(6.0, i))
    write_qc(tmp_path, "02", None, "pass", [], {"disagreement_mean": 0.02})
    run_group(tmp_path)
    header, rows = read_tsv(tmp_path / "group" / "session_qc.tsv")
    assert header == [*QC_HEAD, *QC_TAIL]  # no metric beyond the headline one
    assert [(r["participant_id"], r["session_id"], r["qc"]) for r in rows] == [
        ("sub-01", "n/a", "n/a"),
        ("sub-02", "n/a", "pass"),
        ("sub-03", "n/a", "n/a"),
    ]
    assert rows[1]["qc_file"] == "sub-02/anat/sub-02_desc-tissue_qc.json"
    assert [r["reasons"] for r in rows] == ["no QC record", "n/a", "no QC record"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("[1, 2]", "not a JSON object"),
        ('{"Verdict": "great"}', "Verdict must be one of pass, warn, fail"),
        ('{"Verdict": "pass", "Metrics": {"x": "high"}}', "metric x is not a number"),
    ],
)
def test_unusable_records_are_n_a_with_the_reason(tmp_path, no_figures, content, problem):
    write_session(tmp_path, "01", None, 6.0, voxels_for_age(6.0, 1))
    (_anat(tmp_path, "01", None) / "sub-01_desc-tissue_qc.json").write_text(content)
    result = run_group(tmp_path)
    (row,) = result.qc
    assert row.qc == "n/a" and row.reasons[0].startswith("sub-01/anat/sub-01_desc-tissue_qc.json")
    assert problem in row.reasons[0]
