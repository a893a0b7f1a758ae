"""BIDS-Derivatives naming and writing: every output file of the participant level goes through
here (names from the source file's entities, JSON sidecars, atomic writes, dataset files)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from . import __version__
from .images import write_atomic

#: Entities kept from the source file name, in BIDS order.
_SOURCE_ENTITIES = ("sub", "ses", "acq", "ce", "rec", "run")
_ENTITY = re.compile(r"^(?P<key>[a-zA-Z]+)-(?P<value>[a-zA-Z0-9]+)$")
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9]+$")

DSEG_LOOKUP = "index\tname\tabbreviation\n1\tGray matter\tGM\n2\tWhite matter\tWM\n3\tCerebrospinal fluid\tCSF\n"
BIDSIGNORE = "*.html\ngroup\nlog\nfigures\n*_desc-tissue_volumes.tsv\n*_desc-tissue_volumes.json\n"
README = """# infant-tissue derivatives

Tissue segmentations (CSF, GM, WM) of infant T1w + T2w MRI made by infant-tissue (3D-MASNet).
Per session: `*_desc-preproc_T1w`, `*_space-T1w_desc-preproc_T2w`, `*_space-T1w_desc-brain_mask`,
`*_space-T1w_dseg` (1 GM, 2 WM, 3 CSF; see `dseg.tsv`), `*_space-T1w_label-{GM,WM,CSF}_probseg`
and `*_desc-tissue_volumes.tsv`; `group/` holds the cohort tables made by the group level.
QC reports: `sub-X[_ses-Y].html` (figures in `sub-X/figures/`) and `group/report.html`.
"""
CODE_URL = "https://github.com/infant-tissue/infant-tissue"


def source_entities(source_file: str | os.PathLike[str]) -> dict[str, str]:
    """Entities of a BIDS file name that carry over to its derivatives (sub, ses, acq, ...)."""
    name = Path(source_file).name.split(".")[0]
    found: dict[str, str] = {}
    for part in name.split("_")[:-1]:
        match = _ENTITY.match(part)
        if match and match["key"] in _SOURCE_ENTITIES:
            found[match["key"]] = match["value"]
    if "sub" not in found:
        raise ValueError(f"{source_file}: not a BIDS file name (no sub- entity)")
    return found


def derivative_path(
    output_dir: str | os.PathLike[str],
    source_file: str | os.PathLike[str],
    suffix: str,
    extension: str = ".nii.gz",
    **entities: str | None,
) -> Path:
    """``output_dir/sub-X[/ses-Y]/anat/sub-X[_ses-Y]..._<entities>_<suffix><extension>``.

    Derivative entities come in BIDS order: space, label, desc (after the source's). Values are
    checked to be alphanumeric, so no label can smuggle a path into the output folder.
    """
    src = source_entities(source_file)
    parts = [f"{k}-{src[k]}" for k in _SOURCE_ENTITIES if k in src]
    for key in ("space", "label", "desc"):
        value = entities.pop(key, None)
        if value is not None:
            if not _SAFE_VALUE.match(value):
                raise ValueError(f"unsafe BIDS entity value {key}-{value!r}")
            parts.append(f"{key}-{value}")
    if entities:
        raise ValueError(f"unsupported entities: {sorted(entities)}")
    if not _SAFE_VALUE.match(suffix):
        raise ValueError(f"unsafe BIDS suffix {suffix!r}")
    folder = Path(output_dir) / f"sub-{src['sub']}"
    if "ses" in src:
        folder = folder / f"ses-{src['ses']}"
    return folder / "anat" / ("_".join(parts) + f"_{suffix}{extension}")


def write_derivative(
    obj: nib.spatialimages.SpatialImage | str,
    path: Path,
    sidecar: Mapping[str, Any] | None = None,
) -> Path:
    """Write a derivative and its JSON sidecar atomically (sidecar first: a reader that finds the
    image always finds its description)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if sidecar is not None:
        json_path = path.with_name(path.name.split(".")[0] + ".json")
        write_atomic(json.dumps(dict(sidecar), indent=2) + "\n", json_path)
    write_atomic(obj, path)
    return path


def bids_relative(path: str | os.PathLike[str]) -> str:
    """Path from the ``sub-*`` folder on (``sub-01/ses-1/anat/x.nii.gz``), as BIDS URIs use."""
    parts = str(path).replace("\\", "/").split("/")
    for i, part in enumerate(parts):
        if part.startswith("sub-") and i < len(parts) - 1:
            return "/".join(parts[i:])
    return parts[-1]


def ensure_dataset_files(output_dir: str | os.PathLike[str], bids_dir: str | None = None) -> None:
    """Create ``dataset_description.json``, the dseg lookup tables and ``.bidsignore`` once.

    Many participants may run concurrently into the same folder (array jobs): each file is
    created with an exclusive link, so exactly one writer wins and nobody sees a partial file.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    description = {
        "Name": "infant-tissue outputs",
        "BIDSVersion": "1.10.0",
        "DatasetType": "derivative",
        "GeneratedBy": [
            {
                "Name": "infant-tissue",
                "Version": __version__,
                "CodeURL": CODE_URL,
                **(
                    {"Container": {"Type": "docker", "Tag": os.environ["INFANT_TISSUE_IMAGE"]}}
                    if os.environ.get("INFANT_TISSUE_IMAGE")
                    else {}
                ),
            }
        ],
    }
    if bids_dir:
        description["SourceDatasets"] = [{"URL": Path(bids_dir).resolve().as_uri()}]
    for name, content in (
        ("dataset_description.json", json.dumps(description, indent=2) + "\n"),
        ("desc-tissue_dseg.tsv", DSEG_LOOKUP),
        ("dseg.tsv", DSEG_LOOKUP),
        (".bidsignore", BIDSIGNORE),
        ("README.md", README),
    ):
        try:
            write_atomic(content, out / name, overwrite=False)
        except FileExistsError:
            pass


def tissue_volumes(
    dseg_nipreps: np.ndarray, probabilities_model: np.ndarray, affine: np.ndarray
) -> list[dict[str, Any]]:
    """Rows of the volume table: voxels and mm³ from the label map (NiPreps order) and
    partial-volume mm³ from the probabilities (model order: 0 bg, 1 CSF, 2 GM, 3 WM)."""
    voxel = float(abs(np.linalg.det(affine[:3, :3])))
    rows = []
    for name, label, model_class in (("GM", 1, 2), ("WM", 2, 3), ("CSF", 3, 1)):
        voxels = int((dseg_nipreps == label).sum())
        pv = float(probabilities_model[model_class].sum()) * voxel
        rows.append(
            {
                "tissue": name,
                "label": label,
                "voxels": voxels,
                "volume_mm3": round(voxels * voxel, 3),
                "volume_pv_mm3": round(pv, 3),
            }
        )
    rows.append(
        {
            "tissue": "brain",
            "label": "n/a",
            "voxels": sum(r["voxels"] for r in rows),
            "volume_mm3": round(sum(r["volume_mm3"] for r in rows), 3),
            "volume_pv_mm3": round(sum(r["volume_pv_mm3"] for r in rows), 3),
        }
    )
    return rows


#: ``tissue`` of the volume-table row of the region removed before segmentation
REMOVED_REGION = "cerebellum_brainstem"


def removed_region_row(removed: np.ndarray, affine: np.ndarray) -> dict[str, Any]:
    """Volume-table row of the cerebellum + brain-stem region removed before segmentation (not
    part of the 'brain' row, which totals the segmented cerebrum)."""
    voxel = float(abs(np.linalg.det(affine[:3, :3])))
    voxels = int(np.count_nonzero(removed))
    return {
        "tissue": REMOVED_REGION,
        "label": "n/a",
        "voxels": voxels,
        "volume_mm3": round(voxels * voxel, 3),
        "volume_pv_mm3": "n/a",
    }


VOLUME_COLUMNS = {
    "tissue": {
        "Description": "Tissue class (GM, WM, CSF), 'brain' for their total (the segmented "
        f"cerebrum), or '{REMOVED_REGION}' for the cerebellum + brain stem removed before "
        "segmentation (its own mask, not segmented)"
    },
    "label": {"Description": "Index of the tissue in the dseg image (NiPreps order)"},
    "voxels": {"Description": "Number of voxels with this label in the dseg image"},
    "volume_mm3": {"Description": "Volume from the label map", "Units": "mm^3"},
    "volume_pv_mm3": {
        "Description": "Partial-volume estimate: sum of the class probability times voxel volume",
        "Units": "mm^3",
    },
}


def volumes_tsv(rows: list[dict[str, Any]]) -> str:
    header = list(VOLUME_COLUMNS)
    lines = ["\t".join(header)]
    lines += ["\t".join(str(r[k]) for k in header) for r in rows]
    return "\n".join(lines) + "\n"
