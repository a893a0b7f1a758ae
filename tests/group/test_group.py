"""Group level: cohort tables, summary statistics, outliers (age model), status and figures.

The participant level's outputs are faked in code (see :mod:`tests.group.fakes`): one long-format
volume table and JSON sidecar per session, crash files for failed sessions, and broken files for
the partial cases.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from infant_tissue import group
from infant_tissue.group import figures, run_group
from infant_tissue.group.stats import OUTLIER_MEASURES
from infant_tissue.group.tables import (
    OUTLIER_COLUMNS,
    STATUS_COLUMNS,
    SUMMARY_COLUMNS,
    SUMMARY_MEASURES,
    VOLUMES_COLUMNS,
)

from .fakes import (
    VOXEL_MM3,
    _anat,
    read_tsv,
    volume_table,
    voxels_for_age,
    write_crash,
    write_session,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CRASH_LINE = (
    "sub-02 ses-01: /data/sub-02/ses-01/anat/sub-02_ses-01_T2w.nii.gz: corrupt or truncated "
    "gzip file"
)


# Ages spread over 4-10 months; (sub, ses) -> age. sub-08's GM is halved: a clear outlier.
OK_SESSIONS: dict[tuple[str, str | None], float] = {
    ("01", "01"): 4.0,
    ("01", "02"): 8.0,
    ("02", "02"): 9.5,
    ("03", "01"): 6.0,
    ("05", None): 5.0,
    ("06", None): 7.0,
    ("07", None): 10.0,
    ("08", None): 6.5,
    ("09", None): 4.5,
}
OUTLIER = ("08", None)


def expected_voxels(unit: tuple[str, str | None]) -> dict[str, int]:
    vox = voxels_for_age(OK_SESSIONS[unit], seed=int(unit[0]))
    if unit == OUTLIER:
        vox["GM"] //= 2
    return vox


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> tuple[Path, group.GroupResult]:
    root = tmp_path_factory.mktemp("out")
    for unit in OK_SESSIONS:
        write_session(root, *unit, OK_SESSIONS[unit], expected_voxels(unit), report=unit[1] == "01")
    write_crash(root, "02", "01", CRASH_LINE)
    broken = volume_table(voxels_for_age(6.0, 3)).replace("\nWM\t2\t", "\nWM\t2\tabc")
    write_session(root, "03", "02", 7.5, {}, table=broken)
    # sub-10: the run was killed after the label map was written, before the volume table
    _anat(root, "10", None).mkdir(parents=True)
    (_anat(root, "10", None) / "sub-10_space-T1w_dseg.nii.gz").write_bytes(b"fake")
    expected = [("sub-04", "ses-01"), ("02", "01"), ("03", "02"), *OK_SESSIONS]
    result = run_group(root, expected_sessions=expected)
    return root, result


@pytest.fixture
def no_figures(monkeypatch):
    """Skip drawing in tests about tables only (matplotlib rendering is most of the time)."""
    monkeypatch.setattr(group, "make_figures", lambda *args, **kwargs: [])


# --- status and result ----------------------------------------------------------------------------


def test_sessions_status(cohort):
    root, result = cohort
    header, rows = read_tsv(root / "group" / "sessions_status.tsv")
    assert header == list(STATUS_COLUMNS)
    status = {(r["subject"], r["session"]): r for r in rows}
    assert status[("sub-02", "ses-01")]["status"] == "failed"
    assert status[("sub-02", "ses-01")]["detail"] == CRASH_LINE
    assert status[("sub-02", "ses-01")]["crash_file"] == "sub-02/log/crash-01-20240101T120000.txt"
    assert status[("sub-04", "ses-01")]["status"] == "missing"
    assert status[("sub-04", "ses-01")]["detail"] == "no outputs"
    partial = status[("sub-03", "ses-02")]
    assert partial["status"] == "partial"
    assert "line 3 voxels" in partial["detail"] and "'abc" in partial["detail"]
    assert partial["volumes_file"] == "sub-03/ses-02/anat/sub-03_ses-02_desc-tissue_volumes.tsv"
    killed = status[("sub-10", "n/a")]
    assert killed["status"] == "partial" and "interrupted" in killed["detail"]
    assert "not among the expected sessions" in killed["detail"]
    for sub, ses in OK_SESSIONS:
        row = status[(f"sub-{sub}", f"ses-{ses}" if ses else "n/a")]
        assert row["status"] == "ok" and row["detail"] == "n/a"
    assert status[("sub-01", "ses-01")]["report"] == "sub-01_ses-01.html"
    assert status[("sub-01", "ses-02")]["report"] == "n/a"
    # natural order: subjects, then sessions
    assert [r["subject"] for r in rows] == sorted(
        (r["subject"] for r in rows), key=lambda s: int(s[4:])
    )

    assert result.n_ok == 9 and result.ok == sorted(result.ok, key=lambda u: (u[0], u[1] or ""))
    assert result.failed == [("02", "01")]
    assert result.missing == [("04", "01")]
    assert result.partial == [("03", "02"), ("10", None)]
    assert (result.n_failed, result.n_partial, result.n_missing) == (1, 2, 1)
    assert all(p.is_file() for p in result.paths)
    assert len(result.paths) == 8 + 4


def test_volumes_table(cohort):
    root, _ = cohort
    header, rows = read_tsv(root / "group" / "tissue_volumes.tsv")
    assert header == list(VOLUMES_COLUMNS)
    assert len(rows) == len(OK_SESSIONS)
    by_unit = {
        (r["subject"][4:], None if r["session"] == "n/a" else r["session"][4:]): r for r in rows
    }
    assert set(by_unit) == set(OK_SESSIONS)
    for unit, row in by_unit.items():
        vox = expected_voxels(unit)
        assert float(row["age_months"]) == OK_SESSIONS[unit]
        for tissue in ("CSF", "GM", "WM"):
            assert float(row[f"{tissue.lower()}_mm3"]) == pytest.approx(
                vox[tissue] * VOXEL_MM3, abs=1e-3
            )
            assert float(row[f"{tissue.lower()}_pv_mm3"]) == pytest.approx(
                vox[tissue] * VOXEL_MM3 * 0.99, abs=2e-3
            )
        brain = float(row["brain_mm3"])
        assert brain == pytest.approx(sum(vox.values()) * VOXEL_MM3, abs=1e-3)
        fractions = [float(row[f"{t}_fraction"]) for t in ("csf", "gm", "wm")]
        assert sum(fractions) == pytest.approx(1.0, abs=2e-6)
        assert fractions[1] == pytest.approx(vox["GM"] / sum(vox.values()), abs=1e-6)
        assert row["model_bundle"] == "tiny-test" and row["inference_mode"] == "faithful"
    assert by_unit[("01", "01")]["report"] == "sub-01_ses-01.html"
    assert by_unit[("05", None)]["report"] == "n/a"
    sidecar = json.loads((root / "group" / "tissue_volumes.json").read_text())
    assert list(sidecar) == list(VOLUMES_COLUMNS)
    assert sidecar["gm_mm3"]["Units"] == "mm^3"


def test_summary_matches_numpy(cohort):
    root, _ = cohort
    _, volumes = read_tsv(root / "group" / "tissue_volumes.tsv")
    header, rows = read_tsv(root / "group" / "tissue_volumes_summary.tsv")
    assert header == list(SUMMARY_COLUMNS)
    bins = list(dict.fromkeys(r["age_bin"] for r in rows))
    assert bins == ["all", "3-5", "5-7", "7-9", "9-12"]  # empty bins are left out
    summary = {(r["age_bin"], r["measure"]): r for r in rows}
    assert len(rows) == len(bins) * len(SUMMARY_MEASURES)

    def check(bin_label: str, measure: str, values: list[float]) -> None:
        row = summary[(bin_label, measure)]
        x = np.asarray(values)
        q1, med, q3 = np.percentile(x, [25, 50, 75])
        assert int(row["n"]) == x.size
        tol = 1e-6 if measure.endswith("fraction") else 1e-3
        assert float(row["mean"]) == pytest.approx(x.mean(), abs=tol)
        if x.size > 1:
            assert float(row["sd"]) == pytest.approx(x.std(ddof=1), abs=tol)
        else:
            assert row["sd"] == "n/a"
        assert float(row["median"]) == pytest.approx(med, abs=tol)
        assert float(row["q1"]) == pytest.approx(q1, abs=tol)
        assert float(row["q3"]) == pytest.approx(q3, abs=tol)
        assert float(row["iqr"]) == pytest.approx(q3 - q1, abs=tol)

    for measure in ("gm_mm3", "brain_mm3", "csf_pv_mm3", "wm_fraction", "age_months"):
        check("all", measure, [float(r[measure]) for r in volumes])
    ages = {"3-5": [4.0, 4.5], "5-7": [5.0, 6.0, 6.5], "7-9": [7.0, 8.0], "9-12": [9.5, 10.0]}
    for label, members in ages.items():
        gm = [float(r["gm_mm3"]) for r in volumes if float(r["age_months"]) in members]
        check(label, "gm_mm3", gm)
        check(label, "age_months", members)


def test_outliers(cohort):
    """9 sessions have an age: every value is scored by the age model (quadratic with fewer than
    20 sessions); the cohort-wide robust z stays in the table for comparison."""
    root, result = cohort
    _, volumes = read_tsv(root / "group" / "tissue_volumes.tsv")
    header, rows = read_tsv(root / "group" / "tissue_volumes_outliers.tsv")
    assert header == list(OUTLIER_COLUMNS)
    assert len(rows) == len(OK_SESSIONS) * len(OUTLIER_MEASURES)
    assert {r["method"] for r in rows} == {"age-model"} and {r["note"] for r in rows} == {"n/a"}
    assert result.outlier_method == "age-model"
    assert result.outlier_note == (
        "age model (quadratic in age, Huber robust fit, n = 9) for 7 measure(s)"
    )

    gm = np.array([float(r["gm_mm3"]) for r in volumes])
    ages = np.array([float(r["age_months"]) for r in volumes])
    median = np.median(gm)
    mad = np.median(np.abs(gm - median))
    gm_rows = [r for r in rows if r["measure"] == "gm_mm3"]
    model = result.age_models["gm_mm3"]
    assert model.basis == "quadratic" and model.n == 9
    for r, value, age in zip(gm_rows, gm, ages, strict=True):
        assert float(r["value"]) == pytest.approx(value, abs=1e-3)
        assert float(r["cohort_median"]) == pytest.approx(median, abs=1e-3)
        assert float(r["cohort_mad"]) == pytest.approx(mad, abs=1e-3)
        assert float(r["robust_z"]) == pytest.approx(0.6745 * (value - median) / mad, abs=1e-3)
        assert int(r["cohort_n"]) == len(OK_SESSIONS)
        expected = float(model.expected([age])[0])
        assert float(r["expected"]) == pytest.approx(expected, abs=1e-3)
        z = (value - expected) / model.scale
        assert float(r["z"]) == pytest.approx(z, abs=1e-3)
        assert float(r["centile"]) == pytest.approx(100 * norm.cdf(z), abs=1e-3)

    flagged = [r for r in rows if r["outlier"] == "true"]
    assert {r["subject"] for r in flagged} == {"sub-08"}
    assert {r["measure"] for r in flagged} >= {"gm_mm3", "gm_fraction"}
    gm_flag = next(r for r in flagged if r["measure"] == "gm_mm3")
    z = float(gm_flag["z"])
    assert z < -10  # the cohort-wide robust z is -6.1: growth widens the cohort's spread
    assert float(gm_flag["robust_z"]) == pytest.approx(-6.134, abs=1e-3)
    assert gm_flag["reason"] == (
        f"GM volume {float(gm_flag['value']):.0f} mm³ is {abs(z):.1f} robust SD below the "
        f"{float(gm_flag['expected']):.0f} mm³ expected at 6.5 months (age model; centile <0.1)"
    )
    assert gm_flag["session"] == "n/a" and gm_flag["age_months"] == "6.5"
    assert all(r["reason"] == "n/a" for r in rows if r["outlier"] == "false")
    found = {(o.subject, o.session, o.measure): o for o in result.outliers}
    assert found[("08", None, "gm_mm3")].method == "age-model"
    assert found[("08", None, "gm_mm3")].age_months == 6.5
    link = next(r for r in rows if r["subject"] == "sub-01" and r["session"] == "ses-01")
    assert link["report"] == "sub-01_ses-01.html"

    sidecar = json.loads((root / "group" / "tissue_volumes_outliers.json").read_text())
    assert list(sidecar) == [*OUTLIER_COLUMNS, "AgeModel"]
    assert sidecar["AgeModel"]["Method"] == "age-model"
    fit = sidecar["AgeModel"]["Measures"]["gm_mm3"]
    assert (fit["Basis"], fit["Sessions"], fit["AgeRangeMonths"]) == (
        "quadratic in age",
        9,
        [4, 10],
    )
    assert fit["RobustScale"] == pytest.approx(model.scale)


def test_figures_valid_and_no_temp_files(cohort):
    root, result = cohort
    names = sorted(p.name for p in (root / "group").iterdir())
    assert names == sorted(
        [
            "session_qc.json",
            "session_qc.tsv",
            "sessions_status.tsv",
            "tissue_volumes.json",
            "tissue_volumes.tsv",
            "tissue_volumes_outliers.json",
            "tissue_volumes_outliers.tsv",
            "tissue_volumes_summary.tsv",
            "tissue_volumes_distributions.png",
            "tissue_volumes_distributions.svg",
            "tissue_volumes_vs_age.png",
            "tissue_volumes_vs_age.svg",
        ]
    )
    assert sorted(p.name for p in result.figures) == [
        n for n in names if n.endswith(("png", "svg"))
    ]
    for path in result.figures:
        if path.suffix == ".png":
            raw = path.read_bytes()
            assert raw.startswith(PNG_MAGIC) and len(raw) > 10_000
        else:
            assert ET.parse(path).getroot().tag.endswith("svg")
            assert "sub-08" in path.read_text()  # the outlier is labelled (text as paths: id)


# --- other cohorts --------------------------------------------------------------------------------


def test_without_ages_makes_distribution_figures_only(tmp_path):
    for i, sub in enumerate(("01", "02", "03")):
        write_session(tmp_path, sub, None, None, voxels_for_age(6.0, i))
    stale = tmp_path / "group" / "tissue_volumes_vs_age.png"
    stale.parent.mkdir()
    stale.write_bytes(PNG_MAGIC)
    result = run_group(tmp_path)
    assert sorted(p.name for p in result.figures) == [
        "tissue_volumes_distributions.png",
        "tissue_volumes_distributions.svg",
    ]
    assert not stale.exists()
    _, volumes = read_tsv(result.volumes_tsv)
    assert [r["age_months"] for r in volumes] == ["n/a"] * 3
    _, summary = read_tsv(result.summary_tsv)
    assert {r["age_bin"] for r in summary} == {"all", "unknown"}
    age_row = next(r for r in summary if r["measure"] == "age_months")
    assert (age_row["n"], age_row["mean"], age_row["sd"]) == ("0", "n/a", "n/a")
    _, outliers = read_tsv(result.outliers_tsv)
    assert {r["outlier"] for r in outliers} == {"false"}
    assert {r["robust_z"] for r in outliers} == {r["z"] for r in outliers} == {"n/a"}
    assert all("3 session(s) with a value, at least 5 needed" in r["reason"] for r in outliers)
    assert {r["method"] for r in outliers} == {"cohort"}
    assert result.outlier_method == "cohort" and result.age_models == {}
    assert {r["note"] for r in outliers} == {result.outlier_note}
    assert result.outlier_note.startswith("cohort-wide robust z: 0 session(s) have an age")
    assert result.outliers == [] and result.n_ok == 3


def test_no_sessions_is_a_clear_error(tmp_path):
    with pytest.raises(
        ValueError, match=r"no session volume tables found under .*found: no sessions"
    ):
        run_group(tmp_path)
    assert not (tmp_path / "group").exists()
    with pytest.raises(ValueError, match="folder does not exist"):
        run_group(tmp_path / "nowhere")
    write_crash(tmp_path, "01", None, "sub-01: /in/sub-01_T1w.nii.gz: image is 4-D")
    with pytest.raises(
        ValueError, match=r"no session volume tables found .*found: 1 failed, 1 missing"
    ):
        run_group(tmp_path, expected_sessions=[("01", None), ("02", None)])
    _, rows = read_tsv(tmp_path / "group" / "sessions_status.tsv")
    assert [(r["subject"], r["status"], r["detail"]) for r in rows] == [
        ("sub-01", "failed", "sub-01: /in/sub-01_T1w.nii.gz: image is 4-D"),
        ("sub-02", "missing", "no outputs"),
    ]


def test_crash_file_without_standard_name(tmp_path, no_figures):
    for sub in ("01", "02"):
        write_session(tmp_path, sub, "A", 6.0, voxels_for_age(6.0, 1))
    log = tmp_path / "sub-02" / "log"
    log.mkdir()
    (log / "error.txt").write_text("sub-02 ses-B: /in/sub-02_ses-B_T1w.nii.gz: NaN values\n")
    (log / "other.txt").write_text("something unreadable happened\n")
    (tmp_path / "sub-03" / "log").mkdir(parents=True)
    (tmp_path / "sub-03" / "log" / "crash-ses-C-2024-01-01.txt").write_text("sub-03: boom\n")
    result = run_group(tmp_path)
    assert result.failed == [("02", "B"), ("03", "C")]
    status = {(s.subject, s.session): s for s in result.sessions}
    assert status[("02", "B")].detail == "sub-02 ses-B: /in/sub-02_ses-B_T1w.nii.gz: NaN values"
    assert status[("02", "A")].status == "ok"


def test_expected_from_bids_dir(tmp_path, no_figures):
    bids = tmp_path / "bids"
    (bids / "sub-01" / "ses-01" / "anat").mkdir(parents=True)
    (bids / "sub-01" / "ses-02" / "anat").mkdir(parents=True)
    (bids / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.9.0"}')
    for name in ("ses-01/anat/sub-01_ses-01_T1w.nii.gz", "ses-01/anat/sub-01_ses-01_T2w.nii.gz"):
        (bids / "sub-01" / name).write_bytes(b"")
    (bids / "sub-01" / "ses-02/anat/sub-01_ses-02_T1w.nii.gz").write_bytes(b"")
    out = tmp_path / "out"
    write_session(out, "01", "01", 6.0, voxels_for_age(6.0, 1))
    result = run_group(out, bids)
    assert result.ok == [("01", "01")] and result.missing == [("01", "02")]
    missing = next(s for s in result.sessions if s.status == "missing")
    assert missing.detail.startswith("no outputs; input problem: no T2w")


def test_rerun_is_identical_and_atomic(tmp_path, monkeypatch, no_figures):
    for i, sub in enumerate(("01", "02", "03", "04", "05")):
        write_session(tmp_path, sub, None, 4.0 + i, voxels_for_age(4.0 + i, i))
    first = run_group(tmp_path)
    before = {p.name: p.read_bytes() for p in first.paths}
    second = run_group(tmp_path)
    assert {p.name: p.read_bytes() for p in second.paths} == before
    assert len(before) == 8
    # a failing save leaves the previous figure and no temporary file
    old = b"<svg>previous</svg>"
    (tmp_path / "group" / "tissue_volumes_distributions.svg").write_bytes(old)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(figures.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        figures._save_figure(
            _DummyFigure(), tmp_path / "group" / "tissue_volumes_distributions.svg"
        )
    assert (tmp_path / "group" / "tissue_volumes_distributions.svg").read_bytes() == old
    assert not [p for p in (tmp_path / "group").iterdir() if p.name.startswith(".")]
    assert os.listdir(tmp_path / "group")


class _DummyFigure:
    def savefig(self, path, **kwargs):
        Path(path).write_text("<svg/>")
