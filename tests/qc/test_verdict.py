"""The verdict rules, the QC record, and the age norms."""

from __future__ import annotations

import json

import pytest

from infant_tissue.qc import QCRecordError, read_session_qc
from infant_tissue.qc.norms import BrainVolumeNorms, NormsError, growth
from infant_tissue.qc.session import write_session_qc
from infant_tissue.qc.verdict import RULES, Rule, thresholds, verdict


def test_rule_levels_and_missing_values():
    rule = Rule("x", warn=(1.0, 2.0), fail=(0.5, 3.0), what="x")
    assert rule.judge(1.5) == ("pass", "")
    assert rule.judge(0.8)[0] == "warn" and "below 1.00" in rule.judge(0.8)[1]
    assert rule.judge(0.4)[0] == "fail" and "below 0.50" in rule.judge(0.4)[1]
    assert rule.judge(3.5)[0] == "fail" and "above 3.00" in rule.judge(3.5)[1]
    assert rule.judge(None) == ("pass", "")
    assert rule.judge(float("nan")) == ("pass", "")


def test_verdict_is_the_worst_rule_fails_listed_first():
    good = {r.metric: None for r in RULES}
    assert verdict(good) == ("pass", [])
    bad = {**good, "t1w_t2w_correlation": 0.95, "disagreement_mean": 0.2}
    result, reasons = verdict(bad)
    assert result == "fail"
    assert reasons[0].startswith("fail: correlation of T1w and T2w")
    assert reasons[1].startswith("warn: mean ensemble disagreement")
    for rule in RULES:  # warn bounds lie inside fail bounds
        for side in (0, 1):
            w, f = rule.warn[side], rule.fail[side]
            if w is not None and f is not None:
                assert (f <= w) if side == 0 else (f >= w)
    assert set(thresholds()) == {r.metric for r in RULES}


def test_record_round_trip_and_strict_reading(tmp_path):
    norms = BrainVolumeNorms.default()
    path = tmp_path / "sub-01_desc-tissue_qc.json"
    metrics = {"disagreement_mean": 0.3, "brain_mask_ratio": None}
    record = write_session_qc(
        path, metrics, subject="01", session=None, age_months=None, norms=norms,
        segmentation_info={"members_used": 3, "mode": "faithful"},
    )  # fmt: skip
    assert record.verdict == "fail"
    back = read_session_qc(path)
    assert back.verdict == "fail" and back.metrics == metrics
    assert back.extra["Members"] == 3 and back.extra["Session"] is None
    assert any(r.startswith("note: no age") for r in back.reasons)
    path.write_text(json.dumps({"Verdict": "great"}))
    with pytest.raises(QCRecordError, match="Verdict must be one of"):
        read_session_qc(path)
    path.write_text("{not json")
    with pytest.raises(QCRecordError, match="cannot read"):
        read_session_qc(path)
    path.write_text(json.dumps({"Verdict": "pass", "Metrics": {"a": "x"}}))
    with pytest.raises(QCRecordError, match="metric a is not a number"):
        read_session_qc(path)


def test_norms_growth_and_files(tmp_path):
    assert growth(6.0) == pytest.approx(1.0)
    assert growth(12.0) > growth(6.0) > growth(3.0)
    default = BrainVolumeNorms.default()
    assert 750 < default.expected_ml(6.0) < 900  # ~710 mL brain + CSF
    scaled = BrainVolumeNorms.scaled(100.0, "phantoms")
    assert scaled.expected_ml(6.0) == pytest.approx(100.0)
    assert scaled.expected_ml(12.0) == pytest.approx(100.0 * growth(12.0))
    path = scaled.write(tmp_path / "norms.tsv")
    back = BrainVolumeNorms.read(path)
    assert back.expected_ml(9.0) == pytest.approx(scaled.expected_ml(9.0), rel=1e-3)
    (tmp_path / "bad.tsv").write_text("age_months\tbrain_mask_ml\n6\t100\n3\t90\n")
    with pytest.raises(NormsError, match="ages must increase"):
        BrainVolumeNorms.read(tmp_path / "bad.tsv")
    (tmp_path / "cols.tsv").write_text("age\tml\n6\t100\n")
    with pytest.raises(NormsError, match="needs columns"):
        BrainVolumeNorms.read(tmp_path / "cols.tsv")
