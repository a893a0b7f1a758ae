"""Top of the participant level: one workflow per session (with ``app.py``, the only config
reader), and what the finished session's nodes left for its run record."""

from __future__ import annotations

import json
import re
from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from .. import layout
from ..config import RunConfig
from ..utils.bids import SessionInputs
from ..utils.precomputed import find_precomputed_mask
from ..utils.templates import infant_template, mniinfant_cohort, removal_template
from .outputs import init_outputs_wf
from .preproc import init_preproc_wf
from .qc import init_qc_wf
from .segmentation import init_segmentation_wf

#: Memory (GB) the segmentation node asks the scheduler for (activations and float32
#: accumulators of a full-width network on an infant volume, see docs/hpc.md).
SEGMENTATION_MEM_GB = 4.0


def workflow_name(unit: SessionInputs) -> str:
    return "session_" + re.sub(r"[^A-Za-z0-9]", "_", unit.prefix)


def mask_method(config: RunConfig, unit: SessionInputs) -> tuple[str, dict]:
    """How the session's brain mask is obtained, and the inputs that method needs."""
    if config.skull_stripped:
        return "skull-stripped", {}
    if config.derivatives is not None:
        mask = find_precomputed_mask(config.derivatives, unit.subject, unit.session, t1w=unit.t1w)
        if mask is not None:
            return "precomputed", {"mask_file": str(mask)}
    cohort = mniinfant_cohort(unit.age_months)
    template, template_mask = infant_template(cohort)
    return "template", {
        "template": str(template),
        "template_mask": str(template_mask),
        "cohort": cohort,
    }


def removal_inputs(config: RunConfig, unit: SessionInputs) -> dict:
    """Template files the cerebellum + brain-stem removal needs ({} when nothing is removed).

    Raises :class:`~infant_tissue.utils.templates.TemplateNotFoundError` (one line naming the file)
    when the age-matched cohort lacks one of them.
    """
    if not config.remove_cerebellum:
        return {}
    cohort = mniinfant_cohort(unit.age_months)
    template_t2w, template_mask, template_region = removal_template(cohort)
    return {
        "template_t2w": str(template_t2w),
        "template_mask": str(template_mask),
        "template_region": str(template_region),
        "cohort": cohort,
    }


def removal_description(config: RunConfig, unit: SessionInputs, mask_method: str) -> str:
    """How the session's cerebellum + brain stem are handled, for its run record and report."""
    if config.remove_cerebellum:
        how = (
            "brain extraction's template registration"
            if mask_method == "template"
            else "registration of the template T2w (affine + SyN)"
        )
        return f"removed: MNIInfant cohort {mniinfant_cohort(unit.age_months)} mask, {how}"
    if config.input_domain == "cerebrum":
        return "kept (--keep-cerebellum): the model was trained without them"
    return "kept: the model was trained on whole brains"


def removal_warnings(config: RunConfig, unit: SessionInputs) -> list[str]:
    """The removal's plausibility problems (recorded in the removed region's sidecar)."""
    if not config.remove_cerebellum:
        return []
    found = layout.find_session_derivatives(config.output_dir, unit.subject, unit.session)
    sidecar = (
        found["removed"].with_name(found["removed"].name.replace(".nii.gz", ".json"))
        if ("removed" in found)
        else None
    )
    try:
        problems = json.loads(sidecar.read_text()).get("Problems", []) if sidecar else []
    except (OSError, ValueError, AttributeError):
        return []
    return [f"cerebellum + brain-stem removal looks implausible: {p}" for p in problems]


def segmentation_warnings(session_work_dir: Path) -> list[str]:
    """Warnings the segmentation node recorded (it may have run in another process)."""
    info = Path(session_work_dir) / "segmentation_wf" / "segment" / "segmentation.json"
    try:
        return list(json.loads(info.read_text()).get("warnings", []))
    except (OSError, ValueError, AttributeError):
        return []


def uses_gpu(device: str) -> bool:
    """Whether the segmentation will run on a GPU (it then takes one of nipype's GPU slots)."""
    if device == "cpu":
        return False
    import torch  # only the parent process decides; the node resolves the device itself

    return torch.cuda.is_available()


def init_session_wf(config: RunConfig, unit: SessionInputs, name: str | None = None):
    """Preprocessing, segmentation and outputs of one session.

    Parameters
    ----------
    config
        The run configuration.
    unit
        The session's inputs (T1w, T2w, age) from :func:`infant_tissue.utils.bids.collect_sessions`.

    Inputs
    ------
    None: the session's files are set on the nodes when the workflow is built.

    Outputs
    -------
    dseg, volumes
        Stored derivative paths.
    """
    if unit.t1w is None or unit.t2w is None:
        raise ValueError(f"{unit.label}: cannot build a workflow without both T1w and T2w")
    method, mask_inputs = mask_method(config, unit)
    template_inputs = {**removal_inputs(config, unit), **mask_inputs}
    wf = pe.Workflow(name=name or workflow_name(unit))
    template_keys = ["template", "template_mask", "template_t2w", "template_region", "mask_file"]
    inputnode = pe.Node(niu.IdentityInterface(["t1w", "t2w", *template_keys]), name="inputnode")
    inputnode.inputs.t1w = str(unit.t1w)
    inputnode.inputs.t2w = str(unit.t2w)
    for key in template_keys:
        if key in template_inputs:
            setattr(inputnode.inputs, key, template_inputs[key])
    outputnode = pe.Node(niu.IdentityInterface(["dseg", "volumes", "qc"]), name="outputnode")
    preproc_wf = init_preproc_wf(
        mask_method=method,
        remove_cerebellum=config.remove_cerebellum,
        t2w_registered=config.t2w_registered,
        omp_nthreads=config.omp_nthreads,
    )
    segmentation_wf = init_segmentation_wf(
        bundle=str(config.bundle),
        mode=config.inference_mode,
        vote=config.vote,
        device=config.device,
        omp_nthreads=config.omp_nthreads,
        mem_gb=min(config.mem_gb or SEGMENTATION_MEM_GB, SEGMENTATION_MEM_GB),
        use_gpu=uses_gpu(config.device),
    )
    segmentation_wf.inputs.inputnode.t1w_source = str(unit.t1w)
    outputs_wf = init_outputs_wf(
        output_dir=str(config.output_dir),
        t1w_source=str(unit.t1w),
        t2w_source=str(unit.t2w),
        subject=unit.subject,
        session=unit.session,
        age_months=unit.age_months,
        age_source=unit.age_source,
        removal=config.remove_cerebellum,
        disagreement=config.ensemble_members > 1,
    )
    qc_wf = init_qc_wf(
        output_dir=str(config.output_dir),
        t1w_source=str(unit.t1w),
        subject=unit.subject,
        session=unit.session,
        age_months=unit.age_months,
        norms_file=str(config.qc_norms) if config.qc_norms else None,
    )
    wf.connect([
        (inputnode, preproc_wf, [("t1w", "inputnode.t1w"), ("t2w", "inputnode.t2w"),
                                 ("template", "inputnode.template"),
                                 ("template_mask", "inputnode.template_mask"),
                                 ("template_t2w", "inputnode.template_t2w"),
                                 ("template_region", "inputnode.template_region"),
                                 ("mask_file", "inputnode.mask_file")]),
        (preproc_wf, segmentation_wf, [("outputnode.t1w_model", "inputnode.t1w_model"),
                                       ("outputnode.t2w_model", "inputnode.t2w_model"),
                                       ("outputnode.mask_model", "inputnode.mask_model"),
                                       ("outputnode.cerebrum_mask", "inputnode.native_mask")]),
        (preproc_wf, outputs_wf, [("outputnode.t1w_preproc", "inputnode.t1w_preproc"),
                                  ("outputnode.t2w_preproc", "inputnode.t2w_preproc"),
                                  ("outputnode.brain_mask", "inputnode.brain_mask")]),
        (segmentation_wf, outputs_wf, [("outputnode.probabilities", "inputnode.probabilities"),
                                       ("outputnode.labels", "inputnode.labels"),
                                       ("outputnode.uncertainty", "inputnode.uncertainty"),
                                       ("outputnode.info", "inputnode.segmentation_info")]),
        (preproc_wf, qc_wf, [("outputnode.t1w_preproc", "inputnode.t1w_preproc"),
                             ("outputnode.t2w_preproc", "inputnode.t2w_preproc"),
                             ("outputnode.t2w_ras", "inputnode.t2w_unregistered"),
                             ("outputnode.brain_mask", "inputnode.brain_mask"),
                             ("outputnode.cerebrum_mask", "inputnode.segmented_mask")]),
        (segmentation_wf, qc_wf, [("outputnode.labels", "inputnode.labels"),
                                  ("outputnode.uncertainty", "inputnode.uncertainty"),
                                  ("outputnode.info", "inputnode.segmentation_info")]),
        (qc_wf, outputnode, [("outputnode.qc", "qc")]),
        (outputs_wf, outputnode, [("outputnode.dseg", "dseg"),
                                  ("outputnode.volumes", "volumes")]),
    ])  # fmt: skip
    if config.remove_cerebellum:
        wf.connect([(preproc_wf, outputs_wf, [
            ("outputnode.removed_mask", "inputnode.removed_mask"),
            ("outputnode.removal_report", "inputnode.removal_report")])])  # fmt: skip
    return wf
