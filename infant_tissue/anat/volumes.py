"""Tissue volumes of a session: the rows of ``*_desc-tissue_volumes.tsv``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..labels import TISSUE_TABLE
from ..utils.tsv import tsv_text

#: ``tissue`` of the volume-table row of the region removed before segmentation
REMOVED_REGION = "cerebellum_brainstem"

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


def voxel_volume(affine: np.ndarray) -> float:
    """mm³ of one voxel of an image with this affine."""
    return float(abs(np.linalg.det(np.asarray(affine)[:3, :3])))


def tissue_volumes(
    dseg_nipreps: np.ndarray, probabilities_model: np.ndarray, affine: np.ndarray
) -> list[dict[str, Any]]:
    """Rows of the volume table: voxels and mm³ from the label map (NiPreps order) and
    partial-volume mm³ from the probabilities (model order: 0 bg, 1 CSF, 2 GM, 3 WM)."""
    voxel = voxel_volume(affine)
    rows = []
    for tissue in TISSUE_TABLE:
        voxels = int((dseg_nipreps == tissue.nipreps_index).sum())
        pv = float(probabilities_model[tissue.model_class].sum()) * voxel
        rows.append(
            {
                "tissue": tissue.name,
                "label": tissue.nipreps_index,
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


def removed_region_row(removed: np.ndarray, affine: np.ndarray) -> dict[str, Any]:
    """Volume-table row of the cerebellum + brain-stem region removed before segmentation (not
    part of the 'brain' row, which totals the segmented cerebrum)."""
    voxels = int(np.count_nonzero(removed))
    return {
        "tissue": REMOVED_REGION,
        "label": "n/a",
        "voxels": voxels,
        "volume_mm3": round(voxels * voxel_volume(affine), 3),
        "volume_pv_mm3": "n/a",
    }


def volumes_tsv(rows: list[dict[str, Any]]) -> str:
    """The volume table's text."""
    header = list(VOLUME_COLUMNS)
    return tsv_text(header, ([r[k] for k in header] for r in rows))
