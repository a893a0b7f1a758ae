"""Cerebellum and brain-stem removal: recreate the iSeg input domain before segmentation."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ..interfaces.cerebellum import RegisterTemplate, RemoveCerebellum

#: How the template reaches the subject: reuse the registration that made the brain mask, or
#: register the template's T2w to the subject's T2w (skull-stripped inputs, precomputed masks).
REGISTRATIONS = ("brain-extraction", "template-t2w")
#: Memory (GB) an ANTs node asks the scheduler for: registration and N4 of a 0.8 mm 320³ infant
#: image peak at 1-1.5 GB above the interpreter (benchmarks/README.md, preprocessing).
ANTS_MEM_GB = 1.5


def init_cerebellum_removal_wf(
    *, registration: str, omp_nthreads: int = 1, name: str = "cerebellum_wf"
):
    """Build the removal of cerebellum and brain stem from the brain mask (iBEAT-like).

    The template's cerebellum + brain-stem mask (:func:`infant_tissue.utils.templates.
    removal_template`) is warped to the subject; inside the brain mask it becomes the removed
    region and the rest of the brain the cerebrum, which is all the network sees (it was trained
    on iSeg images, whose organisers removed that region). Runs after brain extraction, beside N4
    (which still fits its field in the whole brain), before resampling to the model grid.

    Parameters
    ----------
    registration : {"brain-extraction", "template-t2w"}
        Reuse the template registration of template-based brain extraction, or register the
        cohort's T2w template to the subject's T2w (affine + SyN at 2 mm, both brain-extracted).
    omp_nthreads : int
        Threads for ANTs in each node.

    Inputs
    ------
    t1w
        RAS+ T1w (grid of the results).
    t2w
        T2w registered to the T1w (``registration="template-t2w"``).
    brain_mask
        Whole-brain mask on the T1w grid.
    template_t2w, template_mask
        The cohort's T2w template and brain mask (``registration="template-t2w"``).
    template_region
        The cohort's cerebellum + brain-stem mask.
    template_transforms
        Template -> T1w transforms of brain extraction (``registration="brain-extraction"``).

    Outputs
    -------
    cerebrum_mask
        Brain minus the removed region: what the model segments.
    removed_mask
        Cerebellum + brain stem inside the brain mask.
    report
        JSON record: registration, volumes, share of the brain, plausibility problems.
    """
    if registration not in REGISTRATIONS:
        raise ValueError(f"registration must be one of {REGISTRATIONS}, got {registration!r}")
    wf = pe.Workflow(name=name)
    inputnode = pe.Node(
        niu.IdentityInterface(
            [
                "t1w",
                "t2w",
                "brain_mask",
                "template_t2w",
                "template_mask",
                "template_region",
                "template_transforms",
            ]
        ),
        name="inputnode",
    )
    outputnode = pe.Node(
        niu.IdentityInterface(["cerebrum_mask", "removed_mask", "report"]), name="outputnode"
    )
    remove_region = pe.Node(
        RemoveCerebellum(registration=registration, num_threads=omp_nthreads),
        name="remove_region",
        n_procs=omp_nthreads,
        mem_gb=ANTS_MEM_GB,
    )
    wf.connect([
        (inputnode, remove_region, [("t1w", "reference"), ("brain_mask", "brain_mask"),
                                    ("template_region", "template_region")]),
        (remove_region, outputnode, [("cerebrum_mask", "cerebrum_mask"),
                                     ("removed_mask", "removed_mask"), ("report", "report")]),
    ])  # fmt: skip
    if registration == "brain-extraction":
        wf.connect([(inputnode, remove_region, [("template_transforms", "transforms")])])  # fmt: skip
    else:
        register_template = pe.Node(
            RegisterTemplate(num_threads=omp_nthreads),
            name="register_template",
            n_procs=omp_nthreads,
            mem_gb=ANTS_MEM_GB,
        )
        wf.connect([
            (inputnode, register_template, [("t2w", "subject"), ("brain_mask", "subject_mask"),
                                            ("template_t2w", "template"),
                                            ("template_mask", "template_mask")]),
            (register_template, remove_region, [("transforms", "transforms")]),
        ])  # fmt: skip
    return wf
