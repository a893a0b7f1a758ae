"""The group report from a faked cohort (no participant run): the QC section, the age-model
outliers with z, centile and expected value, the growth curves, and a link to every session."""

from __future__ import annotations

import re
from pathlib import Path

from infant_tissue.group import run_group
from infant_tissue.reports import generate_group_report
from tests.group.fakes import voxels_for_age, write_crash, write_qc, write_session

from .html_links import parse

AGES = [3.0, 4.0, 5.0, 5.5, 6.0, 6.5, 7.0, 8.0, 9.0, 10.0, 12.0]
PLANTED = "06"  # GM halved at 6.5 months


def _section(html: str, key: str) -> str:
    return re.search(rf'<section id="{key}">(.*?)</section>', html, re.S).group(1)


def _cohort(root: Path, ages: list[float]) -> None:
    for i, age in enumerate(ages, start=1):
        sub = f"{i:02d}"
        voxels = voxels_for_age(age, i)
        if sub == PLANTED:
            voxels["GM"] //= 2
        write_session(root, sub, None, age, voxels, report=True)
    write_qc(root, "01", None, "pass", [], {"disagreement_mean": 0.03})
    write_qc(root, "02", None, "warn", ["mean disagreement 0.09 is above 0.08"], {})
    write_qc(root, "03", None, "fail", ["T2w looks like a T1w", "CNR 0.4 below 1"], {})
    write_crash(root, "99", None, "sub-99: /in/sub-99_T1w.nii.gz: image is 4-D")


def test_group_report_qc_and_age_model(tmp_path):
    _cohort(tmp_path, AGES)
    result = run_group(tmp_path)
    report = generate_group_report(tmp_path, result)
    html = report.read_text()
    page = parse(report)
    assert {"overview", "qc", "outliers", "summary", "problems", "sessions"} <= page.ids
    assert {"tissue_volumes_vs_age", "tissue_volumes_distributions"} <= page.ids
    for ref in page.refs:
        if not ref.startswith("#"):
            assert (report.parent / ref).is_file(), ref
    linked = {r for r in page.refs if r.endswith(".html")}
    assert linked == {f"../sub-{i:02d}.html" for i in range(1, len(AGES) + 1)}

    qc = _section(html, "qc")
    counts = re.findall(r'<td class="num">(\d+)</td>', qc.split("</table>")[0])
    assert counts == ["1", "1", "1", str(len(AGES) + 1 - 3)]  # pass, warn, fail, n/a
    problems = re.findall(r'<a href="\.\./(sub-\d+)\.html">', qc)
    assert problems[:2] == ["sub-03", "sub-02"]  # worst first
    assert "sub-01" not in problems and "sub-99" in qc  # passed; failed (no report)
    assert "T2w looks like a T1w<br>CNR 0.4 below 1" in qc
    assert "no QC record (session failed)" in qc

    outliers = _section(html, "outliers")
    assert "<th>expected</th><th>z</th><th>centile (%)</th>" in outliers
    assert "age model (quadratic in age, Huber robust fit, n = 11)" in outliers
    row = re.search(rf"sub-{PLANTED}</a></td>(.*?)</tr>", outliers, re.S).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    assert cells[:2] == ["6.5", "gm_mm3"]
    assert cells[5:7] == ["&lt;0.1", "age-model"] and float(cells[4]) < -3.5
    assert "centile bands" in _section(html, "tissue_volumes_vs_age")


def test_group_report_says_when_it_falls_back(tmp_path):
    _cohort(tmp_path, AGES[:6])  # 6 sessions with an age: too few for the age model
    result = run_group(tmp_path)
    html = generate_group_report(tmp_path, result).read_text()
    # the growth curves fall back to a scatter with a straight trend (fewer than 10 sessions)
    assert "too few sessions have an age" in _section(html, "tissue_volumes_vs_age")
    svg = (tmp_path / "group" / "tissue_volumes_vs_age.svg").read_text()
    assert "linear fit" in svg and "5-95 %" not in svg and "age model needs at least 8" in svg
    outliers = _section(html, "outliers")
    assert (
        '<p class="warning">Outliers by the cohort-wide robust z: 6 session(s) have an age, the '
        "age model needs at least 8" in outliers
    )
    assert "youngest and oldest may be flagged for their age alone" in outliers
