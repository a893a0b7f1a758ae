"""Build-only tests for every branch of the participant workflow (no node runs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from nipype.pipeline.engine.utils import generate_expanded_graph

from infant_tissue.config import RunConfig
from infant_tissue.utils.bids import SessionInputs
from infant_tissue.utils.templates import TemplateNotFoundError, infant_template
from infant_tissue.workflows import base
from infant_tissue.workflows.preproc import init_preproc_wf

from ..app_fixtures import tiny_bundle


@pytest.fixture(autouse=True)
def _templateflow(standin_templateflow, monkeypatch):
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(standin_templateflow))


def wiring(wf) -> set[tuple[str, str, str, str]]:
    """Every connection of the expanded graph (identity nodes removed), as
    ``(source node, output, destination node, input)`` with paths below the top workflow."""
    graph = generate_expanded_graph(wf._create_flat_graph())
    short = lambda node: node.fullname.split(".", 1)[-1]  # noqa: E731
    return {
        (short(u), c[0], short(v), c[1])
        for u, v, data in graph.edges(data=True)
        for c in data["connect"]
    }


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


@pytest.mark.parametrize("remove", [False, True], ids=["keep-cerebellum", "remove-cerebellum"])
@pytest.mark.parametrize("method", ["skull-stripped", "template", "precomputed"])
def test_preproc_wiring(method, remove):
    edges = wiring(init_preproc_wf(mask_method=method, remove_cerebellum=remove))
    # N4 fits its field in the whole brain whatever is removed afterwards
    assert ("brain_mask", "out_mask", "n4_t1w", "mask") in edges
    assert ("brain_mask", "out_mask", "n4_t2w", "mask") in edges
    assert ("register_t2w", "out_file", "n4_t2w", "in_file") in edges
    removal = {e for e in edges if "cerebellum_wf" in e[0] + e[2]}
    if not remove:
        assert not removal
        assert ("brain_mask", "out_mask", "model_grid", "mask") in edges
        return
    # the model sees the cerebrum only
    assert ("cerebellum_wf.remove_region", "cerebrum_mask", "model_grid", "mask") in edges
    assert ("brain_mask", "out_mask", "cerebellum_wf.remove_region", "brain_mask") in edges
    assert ("validate_t1w", "out_file", "cerebellum_wf.remove_region", "reference") in edges
    reuse = ("brain_mask", "template_transforms", "cerebellum_wf.remove_region", "transforms")
    own = {
        ("register_t2w", "out_file", "cerebellum_wf.register_template", "subject"),
        ("brain_mask", "out_mask", "cerebellum_wf.register_template", "subject_mask"),
        ("cerebellum_wf.register_template", "transforms", "cerebellum_wf.remove_region",
         "transforms"),
    }  # fmt: skip
    if method == "template":  # brain extraction's registration is reused
        assert reuse in edges and not own & edges
    else:
        assert own <= edges and reuse not in edges


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
        "ds_entropy",
    ):
        assert sink in nodes, sink
    # a one-member bundle has no disagreement map; an ensemble has
    assert "ds_disagreement" not in nodes
    ensemble = base.init_session_wf(
        _config(tmp_path, skull_stripped=True, ensemble_members=3), unit
    )
    assert "ds_disagreement" in _nodes(ensemble)
    # the QC node sees the segmentation, its uncertainty and the T2w before registration
    qc = {e[2] for e in wiring(wf) if e[2].endswith("qc") or ".qc" in e[2]}
    assert qc, "no QC node in the session workflow"
    edges = {(e[0].rsplit(".", 1)[-1], e[3]) for e in wiring(wf) if e[2] in qc}
    assert {
        ("to_native", "uncertainty"),
        ("to_native", "labels"),
        ("validate_t2w", "t2w_unregistered"),
        ("remove_region", "segmented_mask"),  # judged where the model segmented: the cerebrum
    } <= edges, edges
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


@pytest.mark.parametrize(
    ("options", "removed"),
    [
        ({}, True),  # a 'cerebrum' bundle (iSeg-trained): removal on by default
        ({"keep_cerebellum": True}, False),
        ({"input_domain": "whole-brain"}, False),
    ],
    ids=["default", "keep-cerebellum", "whole-brain-bundle"],
)
def test_session_workflow_removal_switch(files, options, removed):
    tmp_path, t1, t2 = files
    unit = SessionInputs(subject="01", session="1", t1w=t1, t2w=t2, age_months=6.0)
    wf = base.init_session_wf(_config(tmp_path, skull_stripped=True, **options), unit)
    edges = wiring(wf)
    nodes = _nodes(wf)
    assert ("ds_removed" in nodes) == removed
    native = {e for e in edges if e[2] == "segmentation_wf.to_native" and e[3] == "mask"}
    assert len(native) == 1
    if removed:
        assert (
            "outputs_wf.ds_removed",
            "out_file",
            "outputs_wf.ds_volumes",
            "removed_mask",
        ) in edges
        assert next(iter(native))[:2] == ("preproc_wf.cerebellum_wf.remove_region", "cerebrum_mask")
        inputs = wf.get_node("inputnode").inputs
        assert inputs.template_region.endswith("desc-cerebellumbrainstem_mask.nii.gz")
    else:
        assert next(iter(native))[:2] == ("preproc_wf.brain_mask", "out_mask")


def test_missing_removal_mask_is_a_clear_error(files, tmp_path, monkeypatch):
    from infant_tissue.phantoms.templates import write_templateflow

    home = tmp_path / "home"
    write_templateflow(home, [3], shape=(40, 44, 40))
    region = next(home.rglob("*desc-cerebellumbrainstem_mask.nii.gz"))
    region.unlink()
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(home))
    _, t1, t2 = files
    unit = SessionInputs(subject="01", session="1", t1w=t1, t2w=t2, age_months=6.0)
    with pytest.raises(TemplateNotFoundError) as err:
        base.init_session_wf(_config(files[0], skull_stripped=True), unit)
    message = str(err.value)
    assert message.startswith(str(region)) and "\n" not in message
