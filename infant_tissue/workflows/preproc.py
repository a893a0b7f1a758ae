"""Anatomical preprocessing: validation, T2w-to-T1w registration, brain mask, N4, model grid."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from .._types import MASK_METHODS, MaskMethod
from ..interfaces.preproc import (
    BrainMask,
    N4BiasCorrection,
    ResampleToModelGrid,
    RigidRegistration,
    ValidateReorient,
)
from .cerebellum import ANTS_MEM_GB, init_cerebellum_removal_wf


def init_preproc_wf(
    *,
    mask_method: MaskMethod,
    remove_cerebellum: bool = False,
    t2w_registered: bool = False,
    omp_nthreads: int = 1,
    name: str = "preproc_wf",
):
    """Build the preprocessing of one session.

    Parameters
    ----------
    mask_method : {"skull-stripped", "template", "precomputed"}
        Non-zero voxels of already brain-extracted inputs (iSeg-like data), an infant template's
        brain mask registered to the subject (affine + SyN), or a given mask (NiBabies).
    remove_cerebellum : bool
        Remove cerebellum and brain stem before the model grid
        (:func:`~infant_tissue.workflows.cerebellum.init_cerebellum_removal_wf`), reusing the
        template registration of ``mask_method="template"``, else registering the template's T2w.
    t2w_registered : bool
        The T2w is already aligned with the T1w (``--t2w-registered``, e.g. iSeg-form or
        NiBabies-preprocessed inputs): it is only resampled onto the T1w grid through the
        headers, not registered. The QC record's registration measure tells whether it was.
    omp_nthreads : int
        Threads for ANTs in each node.

    Inputs
    ------
    t1w, t2w
        Raw BIDS images (any orientation; the T2w on its own grid).
    template, template_mask
        Template T1w and brain mask (``mask_method="template"``; the mask also for the removal).
    template_t2w, template_region
        Template T2w and cerebellum + brain-stem mask (``remove_cerebellum``).
    mask_file
        Precomputed brain mask (``mask_method="precomputed"``).

    Outputs
    -------
    t1w_ras, t1w_preproc, t2w_preproc, brain_mask
        RAS+ copies of the T1w grid: validated T1w, N4-corrected T1w and T2w (the T2w rigidly
        registered to the T1w), and the brain mask.
    t2w_ras
        The validated T2w on its own grid (RAS+), before registration (for QC).
    cerebrum_mask, removed_mask, removal_report
        What the model segments (the brain mask when nothing is removed), the removed region and
        the removal's JSON record (``remove_cerebellum`` only).
    t1w_model, t2w_model, mask_model
        Skull-stripped images and mask (of the cerebrum when the cerebellum is removed) on the
        1 mm model grid around it.
    """
    if mask_method not in MASK_METHODS:
        raise ValueError(f"mask_method must be one of {MASK_METHODS}, got {mask_method!r}")
    wf = pe.Workflow(name=name)
    inputnode = pe.Node(
        niu.IdentityInterface(
            ["t1w", "t2w", "template", "template_mask", "template_t2w", "template_region",
             "mask_file"]
        ),
        name="inputnode",
    )  # fmt: skip
    outputnode = pe.Node(
        niu.IdentityInterface(
            [
                "t1w_ras",
                "t2w_ras",
                "t1w_preproc",
                "t2w_preproc",
                "brain_mask",
                "t1w_model",
                "t2w_model",
                "mask_model",
                "t2w_to_t1w",
                "cerebrum_mask",
                "removed_mask",
                "removal_report",
            ]
        ),
        name="outputnode",
    )
    validate_t1w = pe.Node(ValidateReorient(kind="T1w"), name="validate_t1w")
    validate_t2w = pe.Node(ValidateReorient(kind="T2w"), name="validate_t2w")
    register_t2w = pe.Node(
        RigidRegistration(num_threads=omp_nthreads, estimate=not t2w_registered),
        name="register_t2w",
        n_procs=omp_nthreads,
        mem_gb=ANTS_MEM_GB,
    )
    brain_mask = pe.Node(
        BrainMask(method=mask_method, num_threads=omp_nthreads),
        name="brain_mask",
        n_procs=omp_nthreads,
        mem_gb=ANTS_MEM_GB,
    )
    n4_t1w = pe.Node(
        N4BiasCorrection(num_threads=omp_nthreads),
        name="n4_t1w",
        n_procs=omp_nthreads,
        mem_gb=ANTS_MEM_GB,
    )
    n4_t2w = pe.Node(
        N4BiasCorrection(num_threads=omp_nthreads),
        name="n4_t2w",
        n_procs=omp_nthreads,
        mem_gb=ANTS_MEM_GB,
    )
    model_grid = pe.Node(ResampleToModelGrid(), name="model_grid")

    wf.connect([
        (inputnode, validate_t1w, [("t1w", "in_file")]),
        (inputnode, validate_t2w, [("t2w", "in_file")]),
        (validate_t1w, register_t2w, [("out_file", "fixed")]),
        (validate_t2w, register_t2w, [("out_file", "moving")]),
        (validate_t1w, brain_mask, [("out_file", "t1w")]),
        (validate_t1w, n4_t1w, [("out_file", "in_file")]),
        (brain_mask, n4_t1w, [("out_mask", "mask")]),
        (register_t2w, n4_t2w, [("out_file", "in_file")]),
        (brain_mask, n4_t2w, [("out_mask", "mask")]),
        (n4_t1w, model_grid, [("out_file", "t1w")]),
        (n4_t2w, model_grid, [("out_file", "t2w")]),
        (validate_t1w, outputnode, [("out_file", "t1w_ras")]),
        (validate_t2w, outputnode, [("out_file", "t2w_ras")]),
        (n4_t1w, outputnode, [("out_file", "t1w_preproc")]),
        (n4_t2w, outputnode, [("out_file", "t2w_preproc")]),
        (register_t2w, outputnode, [("transform", "t2w_to_t1w")]),
        (brain_mask, outputnode, [("out_mask", "brain_mask")]),
        (model_grid, outputnode, [("t1w", "t1w_model"), ("t2w", "t2w_model"),
                                  ("mask", "mask_model")]),
    ])  # fmt: skip
    if mask_method == "template":
        wf.connect([(inputnode, brain_mask, [("template", "template"),
                                             ("template_mask", "template_mask")])])  # fmt: skip
    elif mask_method == "precomputed":
        wf.connect([(inputnode, brain_mask, [("mask_file", "mask_file")])])  # fmt: skip
    if not remove_cerebellum:
        wf.connect([(brain_mask, model_grid, [("out_mask", "mask")]),
                    (brain_mask, outputnode, [("out_mask", "cerebrum_mask")])])  # fmt: skip
        return wf
    registration = "brain-extraction" if mask_method == "template" else "template-t2w"
    cerebellum_wf = init_cerebellum_removal_wf(registration=registration, omp_nthreads=omp_nthreads)
    wf.connect([
        (validate_t1w, cerebellum_wf, [("out_file", "inputnode.t1w")]),
        (brain_mask, cerebellum_wf, [("out_mask", "inputnode.brain_mask")]),
        (inputnode, cerebellum_wf, [("template_region", "inputnode.template_region")]),
        (cerebellum_wf, model_grid, [("outputnode.cerebrum_mask", "mask")]),
        (cerebellum_wf, outputnode, [("outputnode.cerebrum_mask", "cerebrum_mask"),
                                     ("outputnode.removed_mask", "removed_mask"),
                                     ("outputnode.report", "removal_report")]),
    ])  # fmt: skip
    if registration == "brain-extraction":
        wf.connect([(brain_mask, cerebellum_wf, [("template_transforms",
                                                  "inputnode.template_transforms")])])  # fmt: skip
    else:
        wf.connect([
            (register_t2w, cerebellum_wf, [("out_file", "inputnode.t2w")]),
            (inputnode, cerebellum_wf, [("template_t2w", "inputnode.template_t2w"),
                                        ("template_mask", "inputnode.template_mask")]),
        ])  # fmt: skip
    return wf
