"""All derivative writers of a session (``ds_*`` nodes): BIDS-Derivatives usable by NiBabies."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ..interfaces.outputs import DerivativesSink, TissueVolumesTable
from ..layout import bids_relative
from ..utils.templates import REMOVAL_DESC

#: probseg volume of each tissue in the model's probability maps (bg, CSF, GM, WM)
PROBSEG_COMPONENTS = {"GM": 2, "WM": 3, "CSF": 1}
#: ``desc`` of the removed region's mask (the same as the template's, see templates.py)
REMOVED_DESC = REMOVAL_DESC
REMOVED_DESCRIPTION = (
    "Cerebellum, brain stem and fourth ventricle removed before tissue segmentation (the "
    "published 3D-MASNet was trained on iSeg images without them): the age-matched "
    "MNIInfant cohort's cerebellum + brain-stem mask warped to the T1w (ANTs), within the brain "
    "mask"
)
#: What the uncertainty maps are (their sidecars' Description), by volume of the node's 4-D file.
UNCERTAINTY_MAPS = {
    "disagreement": (
        0,
        "Ensemble disagreement: per voxel, the share of the ensemble members whose own label "
        "(argmax of the member's averaged window softmax) differs from the ensemble's voted "
        "label; 0 where all agree, 0 outside the segmented region. Computed from the members "
        "the segmentation ran, no extra network pass.",
    ),
    "entropy": (
        1,
        "Entropy of the ensemble's mean class probabilities (background, CSF, GM, WM) divided "
        "by log(4): 0 certain, 1 uniform; 0 outside the segmented region.",
    ),
}
REMOVED_NOTE = (
    "; cerebrum only: cerebellum and brain stem were removed before segmentation "
    f"(desc-{REMOVAL_DESC}_mask)"
)


def init_outputs_wf(
    *,
    output_dir: str,
    t1w_source: str,
    t2w_source: str,
    subject: str,
    session: str | None,
    age_months: float | None,
    age_source: str,
    removal: bool = False,
    disagreement: bool = True,
    name: str = "outputs_wf",
):
    """Write a session's derivatives on the T1w's native grid.

    Parameters
    ----------
    output_dir
        Derivatives root.
    t1w_source, t2w_source
        The BIDS inputs (entities of every output come from the T1w).
    subject, session, age_months, age_source
        Recorded in the volume table's sidecar.
    removal
        Cerebellum and brain stem were removed: store their mask (``space-T1w_desc-
        cerebellumbrainstem_mask``) and add its volume to the table; dseg, probsegs and the tissue
        rows describe the cerebrum.
    disagreement
        The ensemble has several members: store the disagreement map (the entropy map is stored
        for every bundle).

    Inputs
    ------
    t1w_preproc, t2w_preproc, brain_mask
        RAS+ images on the T1w grid (written back in the T1w's own orientation).
    probabilities, labels
        Native-grid segmentation (model order).
    uncertainty
        Native-grid disagreement and entropy (volumes 0 and 1).
    segmentation_info
        JSON record of the segmentation.
    removed_mask, removal_report
        The removed region (RAS+ on the T1w grid) and the removal's JSON record (``removal``).

    Outputs
    -------
    dseg, volumes
        Paths of the stored dseg and the tissue volume table.
    """
    wf = pe.Workflow(name=name)
    inputnode = pe.Node(
        niu.IdentityInterface(
            [
                "t1w_preproc",
                "t2w_preproc",
                "brain_mask",
                "probabilities",
                "labels",
                "uncertainty",
                "segmentation_info",
                "removed_mask",
                "removal_report",
            ]
        ),
        name="inputnode",
    )
    outputnode = pe.Node(niu.IdentityInterface(["dseg", "volumes"]), name="outputnode")
    t1w_raw = "bids:raw:" + bids_relative(t1w_source)
    t2w_raw = "bids:raw:" + bids_relative(t2w_source)
    common = dict(output_dir=str(output_dir), source_file=t1w_source)

    ds_t1w = pe.Node(
        DerivativesSink(
            suffix="T1w",
            desc="preproc",
            from_canonical=True,
            sidecar={
                "Sources": [t1w_raw],
                "SkullStripped": False,
                "Description": "N4 bias-field corrected T1w, native grid",
            },
            **common,
        ),
        name="ds_t1w",
    )
    ds_t2w = pe.Node(
        DerivativesSink(
            suffix="T2w",
            desc="preproc",
            space="T1w",
            from_canonical=True,
            sidecar={
                "Sources": [t2w_raw, t1w_raw],
                "SkullStripped": False,
                "Description": "T2w rigidly registered to the T1w (mutual "
                "information), resampled on the T1w grid, N4 corrected",
            },
            **common,
        ),
        name="ds_t2w",
    )
    ds_mask = pe.Node(
        DerivativesSink(
            suffix="mask",
            desc="brain",
            space="T1w",
            from_canonical=True,
            dtype="uint8",
            sidecar={"Type": "Brain", "Sources": [t1w_raw]},
            **common,
        ),
        name="ds_mask",
    )
    ds_dseg = pe.Node(
        DerivativesSink(
            suffix="dseg",
            space="T1w",
            to_nipreps_dseg=True,
            dtype="uint8",
            sidecar={
                "Sources": [t1w_raw, t2w_raw],
                "Description": "Tissue labels 1 GM, 2 WM, 3 CSF (dseg.tsv)"
                + (REMOVED_NOTE if removal else ""),
            },
            **common,
        ),
        name="ds_dseg",
    )
    wf.connect([
        (inputnode, ds_t1w, [("t1w_preproc", "in_file")]),
        (inputnode, ds_t2w, [("t2w_preproc", "in_file")]),
        (inputnode, ds_mask, [("brain_mask", "in_file")]),
        (inputnode, ds_dseg, [("labels", "in_file"), ("segmentation_info", "segmentation_info")]),
        (ds_dseg, outputnode, [("out_file", "dseg")]),
    ])  # fmt: skip
    for tissue, component in PROBSEG_COMPONENTS.items():
        ds_prob = pe.Node(
            DerivativesSink(
                suffix="probseg",
                space="T1w",
                label=tissue,
                component=component,
                sidecar={"Sources": [t1w_raw, t2w_raw]},
                **common,
            ),
            name=f"ds_probseg_{tissue.lower()}",
        )
        wf.connect([(inputnode, ds_prob, [("probabilities", "in_file"),
                                          ("segmentation_info", "segmentation_info")])])  # fmt: skip
    for kind, (component, description) in UNCERTAINTY_MAPS.items():
        if kind == "disagreement" and not disagreement:
            continue  # one member cannot disagree with itself
        ds_map = pe.Node(
            DerivativesSink(
                suffix="probseg",
                space="T1w",
                desc=kind,
                component=component,
                sidecar={"Sources": [t1w_raw, t2w_raw], "Description": description},
                **common,
            ),
            name=f"ds_{kind}",
        )
        wf.connect([(inputnode, ds_map, [("uncertainty", "in_file"),
                                         ("segmentation_info", "segmentation_info")])])  # fmt: skip
    ds_volumes = pe.Node(
        TissueVolumesTable(
            subject=subject, session=session, age_months=age_months, age_source=age_source, **common
        ),
        name="ds_volumes",
    )
    if removal:
        ds_removed = pe.Node(
            DerivativesSink(
                suffix="mask",
                desc=REMOVED_DESC,
                space="T1w",
                from_canonical=True,
                dtype="uint8",
                sidecar={
                    "Type": "ROI",
                    "Sources": [t1w_raw, t2w_raw],
                    "Description": REMOVED_DESCRIPTION,
                },
                **common,
            ),
            name="ds_removed",
        )
        wf.connect([
            (inputnode, ds_removed, [("removed_mask", "in_file"),
                                     ("removal_report", "extra_sidecar")]),
            (ds_removed, ds_volumes, [("out_file", "removed_mask")]),
        ])  # fmt: skip
    wf.connect([
        (ds_dseg, ds_volumes, [("out_file", "dseg")]),
        (inputnode, ds_volumes, [("probabilities", "probabilities"),
                                 ("segmentation_info", "segmentation_info")]),
        (ds_volumes, outputnode, [("out_file", "volumes")]),
    ])  # fmt: skip
    # Sinks write outside the work folder: they always run, so a deleted output folder is
    # written again by a rerun whose work folder still holds their cached results.
    for node_name in wf.list_node_names():
        if node_name.startswith("ds_"):
            wf.get_node(node_name).overwrite = True
    return wf
