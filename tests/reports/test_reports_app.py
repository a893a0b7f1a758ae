"""Reports made by a real participant + group run (the shared ``app_run``: two good subjects,
one with a corrupt T2w, one without a T2w)."""

from __future__ import annotations

import re
import time

import pytest

from infant_tissue.reports import generate_session_report

from .html_links import parse

pytestmark = pytest.mark.slow

SESSION_SECTIONS = [
    "summary",
    "qc",
    "uncertainty",
    "registration",
    "brainmask-t1w",
    "brainmask-t2w",
    "tissues-axial",
    "tissues-coronal",
    "tissues-sagittal",
    "probabilities",
    "volumes",
    "cohort",
    "methods",
    "about",
]


def test_good_session_report(app_run):
    tmp, *_ = app_run
    out = tmp / "out"
    report = out / "sub-01.html"
    links = parse(report)
    assert set(SESSION_SECTIONS) <= links.ids
    for ref in links.refs:
        if ref.startswith("#"):
            assert ref[1:] in links.ids, ref
            continue
        assert not re.match(r"^[a-z]+://|^/", ref), f"non-relative link {ref}"
        assert (report.parent / ref).is_file(), ref
    figures = sorted(p.name for p in (out / "sub-01" / "figures").iterdir())
    assert figures == [
        "sub-01_desc-axial_dseg.png",
        "sub-01_desc-brainT1w_mask.png",
        "sub-01_desc-brainT2w_mask.png",
        "sub-01_desc-cohort_volumes.png",
        "sub-01_desc-coronal_dseg.png",
        "sub-01_desc-entropy_probseg.png",  # a one-member bundle: entropy, no disagreement
        "sub-01_desc-registration_T2w.png",
        "sub-01_desc-sagittal_dseg.png",
        "sub-01_desc-tissues_probseg.png",
    ]
    text = report.read_text()
    assert "tiny-random" in text and "whole" in text and "hard" in text  # bundle, mode, vote
    assert re.search(r"sha256 [0-9a-f]{64}", text)
    assert "preprocessing" in text and "segmentation" in text  # run time per stage
    assert "doi:10.1002/hbm.26174" in text and "already brain-extracted" in text
    assert "torch" in text and "nipype" in text


def test_failed_session_reports_say_why(app_run):
    tmp, *_ = app_run
    out = tmp / "out"
    for sub, why in (("03", "gzip"), ("04", "no T2w")):
        report = out / f"sub-{sub}.html"
        text = report.read_text()
        links = parse(report)
        assert "errors" in links.ids and "status-failed" in text
        assert why in text
        crash = [r for r in links.refs if "crash-" in r]
        assert crash and (report.parent / crash[0]).is_file()
        assert not (out / f"sub-{sub}" / "figures").exists()


def test_group_report_links_every_session(app_run):
    tmp, *_ = app_run
    report = tmp / "out" / "group" / "report.html"
    links = parse(report)
    assert {"overview", "outliers", "summary", "problems", "sessions"} <= links.ids
    assert "tissue_volumes_distributions" in links.ids
    for ref in links.refs:
        if not ref.startswith("#"):
            assert (report.parent / ref).is_file(), ref
    session_links = {r for r in links.refs if r.endswith(".html")}
    assert session_links == {f"../sub-0{i}.html" for i in range(1, 5)}
    text = report.read_text()
    assert "gzip" in text and "no T2w" in text  # why sub-03 and sub-04 failed


def test_report_regenerates_from_the_output_folder(app_run):
    tmp, *_ = app_run
    started = time.perf_counter()
    result = generate_session_report(tmp / "out", "01", None)
    seconds = time.perf_counter() - started
    print(f"session report with all figures: {seconds:.1f} s")
    assert result.status == "ok" and len(result.figures) == 9
    assert all(f.path is not None and f.path.is_file() for f in result.figures)
