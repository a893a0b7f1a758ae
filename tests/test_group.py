"""Group level: cohort tables, summary statistics, robust outliers, status and figures.

The participant level's outputs are faked in code: one long-format volume table and JSON sidecar
per session, crash files for failed sessions, and broken files for the partial cases.
"""

from __future__ import annotations

import csv
import json
import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from infant_tissue import group
from infant_tissue.group import (
    OUTLIER_COLUMNS,
    STATUS_COLUMNS,
    SUMMARY_COLUMNS,
    VOLUMES_COLUMNS,
    SessionVolumes,
    VolumeTableError,
    age_bin,
    describe,
    find_outliers,
    lowess,
    read_session_table,
    read_session_volumes,
    robust_z,
    run_group,
)

VOXEL_MM3 = 0.512  # 0.8 mm isotropic, the Baby Connectome Project resolution
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CRASH_LINE = (
    "sub-02 ses-01: /data/sub-02/ses-01/anat/sub-02_ses-01_T2w.nii.gz: corrupt or truncated "
    "gzip file"
)


# --- fake participant outputs -------------------------------------------------------------------


def _prefix(sub: str, ses: str | None) -> str:
    return f"sub-{sub}" + (f"_ses-{ses}" if ses else "")


def _anat(root: Path, sub: str, ses: str | None) -> Path:
    return root / f"sub-{sub}" / (f"ses-{ses}" if ses else "") / "anat"


def voxels_for_age(age: float, seed: int) -> dict[str, int]:
    """Plausible voxel counts (0.8 mm voxels) growing with age at tissue-specific rates."""
    wobble = 1.0 + 0.02 * np.sin(seed)  # small, deterministic between-subject variation
    mm3 = {
        "GM": (380_000 + 15_000 * age) * wobble,
        "WM": (250_000 + 8_000 * age) / wobble,
        "CSF": 70_000 + 2_000 * age + 1_000 * seed,
    }
    return {t: round(v / VOXEL_MM3) for t, v in mm3.items()}


def volume_table(voxels: dict[str, int], pv_factor: float = 0.99) -> str:
    """The participant level's long-format table for given voxel counts."""
    rows = ["tissue\tlabel\tvoxels\tvolume_mm3\tvolume_pv_mm3"]
    total_vox, total_vol, total_pv = 0, 0.0, 0.0
    for tissue, label in (("GM", 1), ("WM", 2), ("CSF", 3)):
        vol = voxels[tissue] * VOXEL_MM3
        pv = round(vol * pv_factor, 3)
        rows.append(f"{tissue}\t{label}\t{voxels[tissue]}\t{vol:.3f}\t{pv:.3f}")
        total_vox, total_vol, total_pv = total_vox + voxels[tissue], total_vol + vol, total_pv + pv
    rows.append(f"brain\tn/a\t{total_vox}\t{total_vol:.3f}\t{total_pv:.3f}")
    return "\n".join(rows) + "\n"


def write_session(
    root: Path,
    sub: str,
    ses: str | None,
    age: float | None,
    voxels: dict[str, int],
    *,
    table: str | None = None,
    report: bool = False,
) -> Path:
    anat = _anat(root, sub, ses)
    anat.mkdir(parents=True, exist_ok=True)
    stem = anat / f"{_prefix(sub, ses)}_desc-tissue_volumes"
    stem.with_suffix(".tsv").write_text(volume_table(voxels) if table is None else table)
    sidecar = {
        "Subject": sub,
        "Session": ses,
        "AgeMonths": age,
        "AgeSource": "sessions.tsv:age" if age is not None else "unknown",
        "ModelBundle": "tiny-test",
        "InferenceMode": "faithful",
        "tissue": {"Description": "tissue name"},
    }
    stem.with_suffix(".json").write_text(json.dumps(sidecar))
    (anat / f"{_prefix(sub, ses)}_space-T1w_dseg.nii.gz").write_bytes(b"fake")
    if report:
        (root / f"{_prefix(sub, ses)}.html").write_text("<html></html>")
    return stem.with_suffix(".tsv")


def write_crash(root: Path, sub: str, ses: str | None, line: str) -> Path:
    log = root / f"sub-{sub}" / "log"
    log.mkdir(parents=True, exist_ok=True)
    path = log / f"crash-{ses or 'nosession'}-20240101T120000.txt"
    path.write_text(f"{line}\nTraceback (most recent call last):\n  ...\n")
    return path


def read_tsv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as fobj:
        reader = csv.DictReader(fobj, delimiter="\t")
        return list(reader.fieldnames or []), list(reader)


def num(text: str) -> float | None:
    return None if text == "n/a" else float(text)


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
    assert len(result.paths) == 5 + 4


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
    assert len(rows) == len(bins) * len(group.SUMMARY_MEASURES)

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
    root, result = cohort
    _, volumes = read_tsv(root / "group" / "tissue_volumes.tsv")
    header, rows = read_tsv(root / "group" / "tissue_volumes_outliers.tsv")
    assert header == list(OUTLIER_COLUMNS)
    assert len(rows) == len(OK_SESSIONS) * len(group.OUTLIER_MEASURES)

    gm = np.array([float(r["gm_mm3"]) for r in volumes])
    median = np.median(gm)
    mad = np.median(np.abs(gm - median))
    gm_rows = [r for r in rows if r["measure"] == "gm_mm3"]
    for r, value in zip(gm_rows, gm, strict=True):
        assert float(r["value"]) == pytest.approx(value, abs=1e-3)
        assert float(r["cohort_median"]) == pytest.approx(median, abs=1e-3)
        assert float(r["cohort_mad"]) == pytest.approx(mad, abs=1e-3)
        assert float(r["robust_z"]) == pytest.approx(0.6745 * (value - median) / mad, abs=1e-3)
        assert int(r["cohort_n"]) == len(OK_SESSIONS)

    flagged = [r for r in rows if r["outlier"] == "true"]
    assert {r["subject"] for r in flagged} == {"sub-08"}
    assert {r["outlier"] for r in rows} == {"true", "false"}
    gm_flag = next(r for r in flagged if r["measure"] == "gm_mm3")
    z = float(gm_flag["robust_z"])
    assert z < -3.5
    assert gm_flag["reason"] == (
        f"GM volume {float(gm_flag['value']):.0f} mm³ is {abs(z):.1f} robust SD below "
        f"the cohort median {median:.0f} mm³"
    )
    assert gm_flag["session"] == "n/a" and gm_flag["age_months"] == "6.5"
    assert all(r["reason"] == "n/a" for r in rows if r["outlier"] == "false")
    assert ("08", None, "gm_mm3") in {(o.subject, o.session, o.measure) for o in result.outliers}
    link = next(r for r in rows if r["subject"] == "sub-01" and r["session"] == "ses-01")
    assert link["report"] == "sub-01_ses-01.html"


def test_figures_valid_and_no_temp_files(cohort):
    root, result = cohort
    names = sorted(p.name for p in (root / "group").iterdir())
    assert names == sorted(
        [
            "sessions_status.tsv",
            "tissue_volumes.json",
            "tissue_volumes.tsv",
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
    assert {r["robust_z"] for r in outliers} == {"n/a"}
    assert all("3 session(s) with a value, at least 5 needed" in r["reason"] for r in outliers)
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


# --- readers --------------------------------------------------------------------------------------

GOOD = volume_table({"GM": 1000, "WM": 800, "CSF": 200})


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: "", "empty file"),
        (lambda t: t.replace("volume_pv_mm3", "pv_mm3"), "header lacks column(s) volume_pv_mm3"),
        (lambda t: t.replace("tissue\tlabel", "tissue\ttissue"), "duplicate column(s) tissue"),
        (lambda t: t.replace("\nCSF\t3", "\nCSF\t1"), "CSF has label '1', expected '3'"),
        (
            lambda t: t.replace("\nWM\t2\t800", "\nWM\t2\t800.5"),
            "line 3 voxels: '800.5' is not a whole",
        ),
        (lambda t: t.replace("\nGM\t1\t1000\t512.000", "\nGM\t1\t1000\t-512"), "is negative"),
        (lambda t: t.replace("\nGM\t1\t1000\t512.000", "\nGM\t1\t1000\tnan"), "is not finite"),
        (lambda t: t.replace("\nGM\t1\t1000\t512.000", "\nGM\t1\t1000\t600"), "brain volume_mm3"),
        (lambda t: t.replace("\nGM\t1\t1000", "\nGM\t1\t1001"), "brain voxels 2000 is not the sum"),
        (lambda t: t.split("\nCSF")[0] + "\n", "no row for CSF"),
        (lambda t: t + "GM\t1\t1\t0.512\t0.5\n", "line 6: second row for GM"),
        (lambda t: t + "WMH\t4\t1\t0.5\t0.5\n", "unknown tissue 'WMH'"),
        (lambda t: t.replace("\nWM\t2\t800\t", "\nWM\t2\t"), "line 3: 4 fields, the header has 5"),
        (lambda t: t.replace("409.600\t405.504", "409.600\tn/a"), "n/a for some rows only"),
        (
            lambda t: t.replace("\nCSF\t3\t200\t102.400", "\nCSF\t3\t0\t102.400").replace(
                "2000", "1800"
            ),
            "CSF has 0 voxels but volume",
        ),
    ],
)
def test_session_table_errors(tmp_path, edit, message):
    path = tmp_path / "sub-01_desc-tissue_volumes.tsv"
    path.write_text(edit(GOOD))
    with pytest.raises(VolumeTableError) as info:
        read_session_table(path)
    assert message in str(info.value) and str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_session_table_accepts_extra_columns_and_na_pv(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text(
        "label\ttissue\tvoxels\tvolume_mm3\tvolume_pv_mm3\textra\n"
        "1\tGM\t1000\t512\tn/a\tx\n"
        "2\tWM\t800\t409.6\tn/a\tx\n"
        "3\tCSF\t200\t102.4\tn/a\tx\n"
        "n/a\tbrain\t2000\t1024\tn/a\tx\n"
    )
    voxels, volume, pv = read_session_table(path)
    assert voxels == {"GM": 1000, "WM": 800, "CSF": 200, "brain": 2000}
    assert volume == {"GM": 512.0, "WM": 409.6, "CSF": 102.4, "brain": 1024.0}
    assert set(pv.values()) == {None}


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        (None, "JSON sidecar of the volume table not found"),
        ("{not json", "not valid JSON"),
        ([1], "expected a JSON object"),
        ({"Subject": "01", "Session": None}, "missing key(s) AgeMonths"),
        ({"Subject": "02", "Session": None, "AgeMonths": 6}, "Subject is '02', expected '01'"),
        ({"Subject": "sub-01", "Session": "ses-1", "AgeMonths": 6}, "Session is 'ses-1'"),
        ({"Subject": "01", "Session": None, "AgeMonths": "6"}, "is not a number or null"),
        ({"Subject": "01", "Session": None, "AgeMonths": -1}, "not a non-negative number"),
    ],
)
def test_sidecar_errors(tmp_path, meta, message):
    path = tmp_path / "sub-01_desc-tissue_volumes.tsv"
    path.write_text(GOOD)
    if meta is not None:
        text = meta if isinstance(meta, str) else json.dumps(meta)
        path.with_suffix(".json").write_text(text)
    with pytest.raises(VolumeTableError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_session_volumes(path, "01", None)


def test_sidecar_prefixed_labels_accepted(tmp_path):
    path = tmp_path / "sub-01_ses-A_desc-tissue_volumes.tsv"
    path.write_text(GOOD)
    meta = {"Subject": "sub-01", "Session": "ses-A", "AgeMonths": 6, "AgeSource": "cli"}
    path.with_suffix(".json").write_text(json.dumps(meta))
    rec = read_session_volumes(path, "01", "A")
    assert (rec.age_months, rec.age_source, rec.model_bundle) == (6.0, "cli", None)
    assert rec.measures()["gm_fraction"] == pytest.approx(0.5)


# --- statistics ------------------------------------------------------------------------------------


def test_robust_z_by_hand():
    z, median, mad = robust_z([1.0, 2.0, 3.0, 4.0, 100.0])
    # median 3; |x - 3| = 2, 1, 0, 1, 97 -> MAD 1
    assert (median, mad) == (3.0, 1.0)
    np.testing.assert_allclose(z, [-1.349, -0.6745, 0.0, 0.6745, 65.4265])
    z, median, mad = robust_z([5.0, 5.0, 5.0, 6.0, 9.0])
    assert mad == 0.0 and np.isnan(z).all()


def _record(sub: str, gm: float, wm: float = 400_000.0, csf: float = 100_000.0) -> SessionVolumes:
    vol = {"GM": gm, "WM": wm, "CSF": csf, "brain": gm + wm + csf}
    return SessionVolumes(sub, None, {k: 1 for k in vol}, vol, dict.fromkeys(vol), age_months=6.0)


def test_find_outliers_small_case_reason():
    records = [_record(f"0{i}", gm) for i, gm in enumerate([500e3, 510e3, 520e3, 530e3, 200e3])]
    rows, flagged = find_outliers(records)
    gm_flags = [o for o in flagged if o.measure == "gm_mm3"]
    assert len(gm_flags) == 1 and gm_flags[0].subject == "04"
    # median 510000; |dev| 10000, 0, 10000, 20000, 310000 -> MAD 10000; z = 0.6745 * -31
    assert gm_flags[0].robust_z == pytest.approx(-20.9095)
    assert gm_flags[0].reason == (
        "GM volume 200000 mm³ is 20.9 robust SD below the cohort median 510000 mm³"
    )
    # WM and CSF are identical everywhere: MAD 0, so a note and no flag
    wm = [r for r in rows if r["measure"] == "wm_mm3"]
    assert all(r["robust_z"] is None and not r["outlier"] for r in wm)
    assert "median absolute deviation is 0" in wm[0]["reason"]
    assert not any(o.measure in ("wm_mm3", "csf_mm3") for o in flagged)


def test_describe_and_age_bins():
    stats = describe([1.0, None, 2.0, 3.0, 10.0, math.nan])
    assert stats == {
        "n": 4,
        "mean": 4.0,
        "sd": pytest.approx(np.std([1, 2, 3, 10], ddof=1)),
        "median": 2.5,
        "q1": 1.75,
        "q3": 4.75,
        "iqr": 3.0,
    }
    assert describe([7.0])["sd"] is None and describe([])["mean"] is None
    got = [age_bin(a) for a in (0.5, 2.99, 3.0, 4.99, 5, 6.9, 7, 9, 11.9, 12, 30, None)]
    assert got == [
        "<3",
        "<3",
        "3-5",
        "3-5",
        "5-7",
        "5-7",
        "7-9",
        "9-12",
        "9-12",
        ">=12",
        ">=12",
        "unknown",
    ]


def test_lowess_reproduces_lines_and_resists_a_wild_point():
    x = np.linspace(3, 12, 15)
    y = 2.0 * x + 1.0
    np.testing.assert_allclose(lowess(x, y), y, atol=1e-9)
    y_bad = y.copy()
    y_bad[7] += 100.0
    fit = lowess(x, y_bad)
    np.testing.assert_allclose(np.delete(fit, 7), np.delete(y, 7), atol=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        lowess([1.0], [1.0])


def test_rerun_is_identical_and_atomic(tmp_path, monkeypatch, no_figures):
    for i, sub in enumerate(("01", "02", "03", "04", "05")):
        write_session(tmp_path, sub, None, 4.0 + i, voxels_for_age(4.0 + i, i))
    first = run_group(tmp_path)
    before = {p.name: p.read_bytes() for p in first.paths}
    second = run_group(tmp_path)
    assert {p.name: p.read_bytes() for p in second.paths} == before
    assert len(before) == 5
    # a failing save leaves the previous figure and no temporary file
    old = b"<svg>previous</svg>"
    (tmp_path / "group" / "tissue_volumes_distributions.svg").write_bytes(old)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(group.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        group._save_figure(_DummyFigure(), tmp_path / "group" / "tissue_volumes_distributions.svg")
    assert (tmp_path / "group" / "tissue_volumes_distributions.svg").read_bytes() == old
    assert not [p for p in (tmp_path / "group").iterdir() if p.name.startswith(".")]
    assert os.listdir(tmp_path / "group")


class _DummyFigure:
    def savefig(self, path, **kwargs):
        Path(path).write_text("<svg/>")


def test_reads_the_participant_level_writer(tmp_path):
    """Contract with the participant level: its volume table parses and matches its counts."""
    from infant_tissue import derivatives

    rng = np.random.default_rng(0)
    dseg = rng.integers(0, 4, size=(10, 10, 10))
    probs = np.moveaxis(rng.dirichlet(np.ones(4), size=(10, 10, 10)), -1, 0)
    rows = derivatives.tissue_volumes(dseg, probs, np.diag([0.8, 0.8, 0.8, 1.0]))
    path = tmp_path / "sub-01_desc-tissue_volumes.tsv"
    path.write_text(derivatives.volumes_tsv(rows))
    voxels, volume, pv = read_session_table(path)
    for tissue, label in (("GM", 1), ("WM", 2), ("CSF", 3)):
        assert voxels[tissue] == int((dseg == label).sum())
        assert volume[tissue] == pytest.approx(voxels[tissue] * VOXEL_MM3, abs=1e-3)
    assert voxels["brain"] == int((dseg > 0).sum())
    assert pv["brain"] == pytest.approx(probs[1:].sum() * VOXEL_MM3, abs=1e-2)
