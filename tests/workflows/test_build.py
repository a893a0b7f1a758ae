"""Build-only tests for every branch of the participant workflow (no node runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infant_tissue.bids import SessionInputs
from infant_tissue.config import RunConfig
from infant_tissue.templates import TemplateNotFoundError, infant_template
from infant_tissue.workflows import base
from infant_tissue.workflows.preproc import init_preproc_wf

from ..app_fixtures import tiny_bundle


@pytest.fixture
def files(tmp_path):
    anat = tmp_path / "bids" / "sub-01" / "ses-1" / "anat"
    anat.mkdir(parents=True)
    t1, t2 = anat / "sub-01_ses-1_T1w.nii.gz", anat / "sub-01_ses-1_T2w.nii.gz"
    for p in (t1, t2):
        p.write_bytes(b"")
    return tmp_path, t1, t2


def _config(tmp_path, **kw):
    bundle = tmp_path / "bundle"
    if not bundle.exists():
        tiny_bundle(bundle)
    return RunConfig(
        bids_dir=tmp_path / "bids",
        output_dir=tmp_path / "out",
        work_dir=tmp_path / "work",
        bundle=bundle,
        **kw,
    )


def _nodes(wf) -> set[str]:
    return {n.fullname.split(".", 1)[-1] for n in wf._get_all_nodes()}


@pytest.mark.parametrize("method", ["skull-stripped", "template", "precomputed"])
def test_preproc_branches(method):
    wf = init_preproc_wf(mask_method=method)
    names = {n.name for n in wf._get_all_nodes()}
    assert {"validate_t1w", "register_t2w", "brain_mask", "n4_t1w", "n4_t2w", "model_grid"} <= names
    mask = wf.get_node("brain_mask")
    assert mask.inputs.method == method
    template_edges = [
        e
        for e in wf._graph.in_edges(mask, data=True)
        if any(c[1] == "template" for c in e[2]["connect"])
    ]
    assert bool(template_edges) == (method == "template")
    with pytest.raises(ValueError, match="mask_method"):
        init_preproc_wf(mask_method="guess")


@pytest.mark.parametrize("session", ["1", None], ids=["with-session", "no-session"])
def test_session_workflow_skull_stripped(files, session):
    tmp_path, t1, t2 = files
    unit = SessionInputs(subject="01", session=session, t1w=t1, t2w=t2, age_months=6.0)
    wf = base.init_session_wf(_config(tmp_path, skull_stripped=True), unit)
    nodes = _nodes(wf)
    assert "segment" in nodes and "to_native" in nodes
    for sink in (
        "ds_t1w",
        "ds_t2w",
        "ds_mask",
        "ds_dseg",
        "ds_volumes",
        "ds_probseg_gm",
        "ds_probseg_wm",
        "ds_probseg_csf",
    ):
        assert sink in nodes, sink
    assert wf.name == ("session_sub_01_ses_1" if session else "session_sub_01")


def test_session_workflow_precomputed_mask(files):
    tmp_path, t1, t2 = files
    deriv = tmp_path / "nibabies" / "sub-01" / "ses-1" / "anat"
    deriv.mkdir(parents=True)
    mask = deriv / "sub-01_ses-1_space-T1w_desc-brain_mask.nii.gz"
    mask.write_bytes(b"")
    unit = SessionInputs(subject="01", session="1", t1w=t1, t2w=t2)
    config = _config(tmp_path, derivatives=tmp_path / "nibabies")
    assert base.mask_method(config, unit) == ("precomputed", {"mask_file": str(mask)})
    wf = base.init_session_wf(config, unit)
    assert wf.get_node("inputnode").inputs.mask_file == str(mask)


def test_session_workflow_template(files, monkeypatch):
    tmp_path, t1, t2 = files
    cohorts = []

    def fake_template(cohort):
        cohorts.append(cohort)
        return Path("/tpl/T1w.nii.gz"), Path("/tpl/mask.nii.gz")

    monkeypatch.setattr(base, "infant_template", fake_template)
    unit = SessionInputs(subject="01", session="1", t1w=t1, t2w=t2, age_months=6.0)
    wf = base.init_session_wf(_config(tmp_path), unit)
    assert cohorts == [3]  # 6 months -> MNIInfant cohort 3
    assert wf.get_node("inputnode").inputs.template == "/tpl/T1w.nii.gz"
    unit10 = SessionInputs(subject="01", session="1", t1w=t1, t2w=t2, age_months=10.0)
    base.init_session_wf(_config(tmp_path), unit10)
    assert cohorts[-1] == 4


def test_missing_template_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tmp_path / "empty"))
    with pytest.raises(TemplateNotFoundError) as err:
        infant_template(3)
    message = str(err.value)
    assert "tpl-MNIInfant_cohort-3_res-1_T1w.nii.gz" in message
    assert "TEMPLATEFLOW_HOME" in message and "\n" not in message


def test_session_without_t2w_cannot_be_built(files):
    tmp_path, t1, _ = files
    unit = SessionInputs(subject="01", session="1", t1w=t1, t2w=None)
    with pytest.raises(ValueError, match="both T1w and T2w"):
        base.init_session_wf(_config(tmp_path, skull_stripped=True), unit)
