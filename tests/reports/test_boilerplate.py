"""The methods paragraph cites what the run used, and only that."""

from __future__ import annotations

from infant_tissue.reports.boilerplate import REFERENCES, methods_text


def _text(**kw):
    base = dict(
        versions={"infant-tissue": "9.9", "nipype": "1.0"},
        bundle="masnet-iseg2019",
        bundle_sha256="ab" * 32,
        members=10,
        vote="hard",
        inference_mode="faithful",
        mask_method="template",
        template="MNIInfant cohort 2",
    )
    return methods_text(**{**base, **kw})


def test_template_run_cites_templateflow_and_the_template():
    text, refs = _text()
    assert "infant-tissue 9.9" in text and "MNIInfant cohort 2" in text
    assert "ensemble of 10 networks" in text and "majority vote" in text
    for key in ("nipype", "ants", "n4", "mniinfant", "templateflow", "masnet"):
        assert REFERENCES[key][1] in refs
        assert REFERENCES[key][0] in text
    assert refs[0] == REFERENCES["nipype"][1]  # citation order follows the text


def test_skull_stripped_run_does_not_cite_templates():
    text, refs = _text(mask_method="skull-stripped", vote="soft")
    assert "already brain-extracted" in text and "soft vote" in text
    assert REFERENCES["templateflow"][1] not in refs and REFERENCES["mniinfant"][1] not in refs
    assert "doi:10.1002/hbm.26174" in refs[-1]
