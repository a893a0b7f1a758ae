"""Methods text a user can paste into a paper, with the references it cites."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: key -> (short citation used in the text, full reference)
REFERENCES: dict[str, tuple[str, str]] = {
    "masnet": (
        "Zeng et al., 2023",
        "Zeng Z, Zhao T, Sun L, Zhang Y, Xia M, Liao X, Zhang J, Shen D, Wang L, He Y. "
        "3D-MASNet: 3D mixed-scale asymmetric convolutional segmentation network for "
        "6-month-old infant brain MR images. Human Brain Mapping. 2023;44(4):1779-1792. "
        "doi:10.1002/hbm.26174",
    ),
    "n4": (
        "Tustison et al., 2010",
        "Tustison NJ, Avants BB, Cook PA, Zheng Y, Egan A, Yushkevich PA, Gee JC. N4ITK: "
        "improved N3 bias correction. IEEE Transactions on Medical Imaging. "
        "2010;29(6):1310-1320. doi:10.1109/TMI.2010.2046908",
    ),
    "ants": (
        "Avants et al., 2008",
        "Avants BB, Epstein CL, Grossman M, Gee JC. Symmetric diffeomorphic image registration "
        "with cross-correlation: evaluating automated labeling of elderly and neurodegenerative "
        "brain. Medical Image Analysis. 2008;12(1):26-41. doi:10.1016/j.media.2007.06.004",
    ),
    "nipype": (
        "Gorgolewski et al., 2011",
        "Gorgolewski K, Burns CD, Madison C, Clark D, Halchenko YO, Waskom ML, Ghosh SS. Nipype: "
        "a flexible, lightweight and extensible neuroimaging data processing framework in "
        "Python. Frontiers in Neuroinformatics. 2011;5:13. doi:10.3389/fninf.2011.00013",
    ),
    "templateflow": (
        "Ciric et al., 2022",
        "Ciric R, Thompson WH, Lorenz R, Goncalves M, MacNicol EE, Markiewicz CJ, Halchenko YO, "
        "Ghosh SS, Gorgolewski KJ, Poldrack RA, Esteban O. TemplateFlow: FAIR-sharing of "
        "multi-scale, multi-species brain models. Nature Methods. 2022;19:1568-1571. "
        "doi:10.1038/s41592-022-01681-2",
    ),
    "mniinfant": (
        "Fonov et al., 2011",
        "Fonov V, Evans AC, Botteron K, Almli CR, McKinstry RC, Collins DL. Unbiased average "
        "age-appropriate atlases for pediatric studies. NeuroImage. 2011;54(1):313-327. "
        "doi:10.1016/j.neuroimage.2010.07.033",
    ),
}

VOTE_TEXT = {
    "hard": "combined by majority vote (ties to the lower label, as in the reference code)",
    "soft": "combined by averaging their class probabilities (soft vote)",
}


def methods_text(
    *,
    versions: Mapping[str, str],
    bundle: str,
    bundle_sha256: str,
    members: int | None,
    vote: str,
    inference_mode: str,
    mask_method: str,
    template: str = "",
    removal: str = "",
) -> tuple[str, list[str]]:
    """The methods paragraph and the full references it cites, in citation order."""
    cited: list[str] = []

    def cite(key: str) -> str:
        if key not in cited:
            cited.append(key)
        return REFERENCES[key][0]

    version = versions.get("infant-tissue", "unknown")
    parts = [
        f"Tissue segmentation was performed with infant-tissue {version}, a workflow built on "
        f"Nipype {versions.get('nipype', '')} ({cite('nipype')}). ",
        "The T2-weighted image was rigidly registered to the T1-weighted image (mutual "
        f"information, ANTs; {cite('ants')}), and both were corrected for intensity "
        f"non-uniformity with N4 ({cite('n4')}). ",
    ]
    if mask_method == "template":
        parts.append(
            "A brain mask was obtained by registering (affine and SyN, ANTs) the age-matched "
            f"infant template {template or 'MNIInfant'} ({cite('mniinfant')}), distributed "
            f"by TemplateFlow ({cite('templateflow')}), to the T1-weighted image and "
            "projecting its brain mask. "
        )
    elif mask_method == "precomputed":
        parts.append("A precomputed brain mask (from a previous NiBabies run) was used. ")
    else:
        parts.append("The inputs were already brain-extracted; the brain mask is their support. ")
    if removal.startswith("removed"):
        parts.append(
            "As in the iSeg data the network was trained on, the cerebellum and the brain stem "
            "were removed before segmentation: a cerebellum and brain-stem mask of the "
            f"age-matched infant template ({cite('mniinfant')}; {cite('templateflow')}) was "
            f"warped to the subject (ANTs; {cite('ants')}) and excluded from the brain mask; "
            "tissue labels and volumes therefore refer to the cerebrum. "
        )
    n = f"{members} " if members else ""
    parts.append(
        "Images were resampled to 1 mm isotropic voxels, z-scored within the brain, and "
        "segmented into cerebrospinal fluid, gray matter and white matter by 3D-MASNet "
        f"({cite('masnet')}), a dense 3D U-Net whose mixed-scale asymmetric convolutions "
        f"were fused into plain convolutions for inference, using 32-voxel patches "
        f"(inference mode '{inference_mode}'). The predictions of an ensemble of {n}networks "
        f"(weight bundle '{bundle}', sha256 {bundle_sha256[:12]}...) were "
        f"{VOTE_TEXT.get(vote, vote)}. Labels and probability maps were resampled back to the "
        "T1-weighted image's grid, and tissue volumes were computed from the label map and, as "
        "partial-volume estimates, from the probability maps."
    )
    return "".join(parts), [REFERENCES[k][1] for k in cited]


def methods_from_info(info: Mapping[str, Any], record: Any | None) -> tuple[str, list[str]]:
    """:func:`methods_text` from a dseg sidecar and a run record (either may be sparse)."""
    versions = dict(getattr(record, "versions", None) or {})
    return methods_text(
        versions=versions,
        bundle=str(info.get("ModelBundle", "unknown")),
        bundle_sha256=str(info.get("ModelBundleSHA256", "")),
        members=info.get("EnsembleMembersUsed") or info.get("EnsembleMembers"),
        vote=str(info.get("Vote", "hard")),
        inference_mode=str(info.get("InferenceMode", "faithful")),
        mask_method=getattr(record, "mask_method", "") or "",
        template=getattr(record, "template", "") or "",
        removal=getattr(record, "removal", "") or "",
    )
