"""Quality control of a session's segmentation (the QC record next to the volume table)."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ..interfaces.qc import SessionQualityControl


def init_qc_wf(
    *,
    output_dir: str,
    t1w_source: str,
    subject: str,
    session: str | None,
    age_months: float | None,
    norms_file: str | None = None,
    name: str = "qc_wf",
):
    """Measure a session's QC metrics and write its verdict (``*_desc-tissue_qc.json``).

    Parameters
    ----------
    output_dir, t1w_source
        Derivatives root and the BIDS T1w the record's name comes from.
    subject, session, age_months
        Recorded in the QC record; the age selects the expected brain volume.
    norms_file
        Brain-volume norms TSV (``--qc-norms``; default the literature's growth curve).

    Inputs
    ------
    t1w_preproc, t2w_preproc, t2w_unregistered, brain_mask
        Corrected T1w, registered T2w, the T2w as given (RAS+) and the brain mask.
    segmented_mask
        What was segmented (the cerebrum when cerebellum and brain stem were removed).
    labels, uncertainty, segmentation_info
        Native-grid labels (model order), disagreement + entropy maps and the JSON record.

    Outputs
    -------
    qc, verdict
        The record written and its verdict.
    """
    wf = pe.Workflow(name=name)
    fields = ["t1w_preproc", "t2w_preproc", "t2w_unregistered", "brain_mask", "segmented_mask",
              "labels", "uncertainty", "segmentation_info"]  # fmt: skip
    inputnode = pe.Node(niu.IdentityInterface(fields), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(["qc", "verdict"]), name="outputnode")
    ds_qc = pe.Node(
        SessionQualityControl(
            output_dir=str(output_dir),
            source_file=str(t1w_source),
            subject=subject,
            session=session,
            age_months=age_months,
        ),
        name="ds_qc",
        mem_gb=1.0,
    )
    if norms_file:
        ds_qc.inputs.norms_file = str(norms_file)
    ds_qc.overwrite = True  # it writes outside the work folder (see outputs.py)
    wf.connect([
        (inputnode, ds_qc, [("t1w_preproc", "t1w"), ("t2w_preproc", "t2w"),
                            ("t2w_unregistered", "t2w_unregistered"),
                            ("brain_mask", "brain_mask"), ("segmented_mask", "segmented_mask"),
                            ("labels", "labels"), ("uncertainty", "uncertainty"),
                            ("segmentation_info", "segmentation_info")]),
        (ds_qc, outputnode, [("out_file", "qc"), ("verdict", "verdict")]),
    ])  # fmt: skip
    return wf
