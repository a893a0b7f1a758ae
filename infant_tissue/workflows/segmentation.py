"""Segmentation of the model-grid images and return to the native T1w grid."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ..interfaces.segmentation import Segment, ToNativeGrid


def init_segmentation_wf(
    *,
    bundle: str,
    mode: str = "faithful",
    vote: str = "hard",
    device: str = "auto",
    omp_nthreads: int = 1,
    mem_gb: float = 4.0,
    use_gpu: bool = False,
    name: str = "segmentation_wf",
):
    """Build the ensemble segmentation and its resampling back to the T1w grid.

    Parameters
    ----------
    bundle
        Weight bundle folder.
    mode, vote, device
        Inference mode, ensemble vote rule and device (see :mod:`infant_tissue.inference`).
    omp_nthreads, mem_gb, use_gpu
        Resources of the segmentation node, passed to the nipype scheduler (a GPU node takes one
        of MultiProc's GPU slots: one segmentation per visible GPU at a time).

    Inputs
    ------
    t1w_model, t2w_model, mask_model
        Skull-stripped images and brain mask on the 1 mm model grid (labels and probabilities
        are background outside the mask).
    t1w_source
        The original T1w (its grid and affine receive the results).
    native_mask
        What the model segments on the T1w grid (brain or cerebrum): background outside.

    Outputs
    -------
    probabilities, labels
        Class probabilities (bg, CSF, GM, WM) and labels (model order) on the T1w grid.
    uncertainty
        The ensemble's disagreement (volume 0) and normalised entropy (volume 1) on the T1w
        grid, 0 outside what was segmented.
    info
        JSON record of the segmentation (bundle, members, mode, vote, device, timings).
    """
    wf = pe.Workflow(name=name)
    inputnode = pe.Node(
        niu.IdentityInterface(
            ["t1w_model", "t2w_model", "mask_model", "t1w_source", "native_mask"]
        ),
        name="inputnode",
    )
    outputnode = pe.Node(
        niu.IdentityInterface(["probabilities", "labels", "uncertainty", "info"]),
        name="outputnode",
    )
    segment = pe.Node(
        Segment(
            bundle=str(bundle),
            mode=mode,
            vote=vote,
            device=device,
            num_threads=omp_nthreads,
            use_gpu=use_gpu,
        ),
        name="segment",
        n_procs=omp_nthreads,
        mem_gb=mem_gb,
    )
    to_native = pe.Node(ToNativeGrid(), name="to_native")
    wf.connect([
        (inputnode, segment, [("t1w_model", "t1w"), ("t2w_model", "t2w"),
                              ("mask_model", "mask")]),
        (segment, to_native, [("probabilities", "probabilities"), ("labels", "labels"),
                              ("uncertainty", "uncertainty")]),
        (inputnode, to_native, [("t1w_source", "reference"), ("native_mask", "mask")]),
        (to_native, outputnode, [("probabilities", "probabilities"), ("labels", "labels"),
                                 ("uncertainty", "uncertainty")]),
        (segment, outputnode, [("info", "info")]),
    ])  # fmt: skip
    return wf
