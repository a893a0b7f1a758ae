"""QC of one session from its files: load on one grid, measure, judge, write the record.

:func:`session_metrics` computes every metric of :mod:`.verdict`'s rules from the session's
images; :func:`write_session_qc` adds the verdict and writes ``*_desc-tissue_qc.json``. What
the metrics are and why (docs/qc.md has the table):

``disagreement_mean``, ``disagreement_high_share``, ``entropy_mean``
    The ensemble's own uncertainty in the segmented brain (members' label disagreement, entropy
    of the mean probabilities).
``registration_cr`` and ``registration_cr_before``
    Correlation ratio of the T2w given the tissue labels after the rigid registration, and of
    the T2w placed on the T1w grid by its header only (what the registration started from).
``t1w_t2w_correlation``
    Correlation of T1w and T2w intensities in the brain (a T1w given as the T2w).
``brain_mask_ml``, ``brain_mask_expected_ml``, ``brain_mask_ratio``
    The brain-mask volume against the age norm (:mod:`.norms`); ``None`` without an age.
``cnr_gm_wm_t1w``, ``cnr_gm_wm_t2w``
    Grey/white contrast-to-noise of the corrected images.
``window_coverage``
    Share of the segmented brain that the evaluated windows reached.
``csf_fraction``, ``gm_fraction``, ``wm_fraction``
    Composition of the segmented brain (recorded; judged at the group level against age).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.processing import resample_from_to

from ..utils.atomic import write_atomic
from ..utils.images import same_grid, to_canonical, zooms
from . import metrics as m
from .norms import BrainVolumeNorms
from .record import SessionQC
from .verdict import RULES, thresholds, verdict


def _load(path: str | os.PathLike[str], reference: nib.spatialimages.SpatialImage, what: str):
    img = to_canonical(nib.load(str(path)))
    if not same_grid(img, reference):
        raise ValueError(f"{path}: the {what} is not on the T1w's grid")
    return np.asanyarray(img.dataobj)


def session_metrics(
    *,
    t1w_file: str,
    t2w_file: str,
    t2w_unregistered_file: str,
    brain_mask_file: str,
    segmented_mask_file: str,
    labels_file: str,
    uncertainty_file: str | None,
    segmentation_info: dict[str, Any],
    age_months: float | None,
    norms: BrainVolumeNorms,
) -> dict[str, float | None]:
    """Every QC metric of a session (see the module docstring).

    All images are on the T1w's grid in any voxel order (they are brought to RAS+ without
    interpolation), except ``t2w_unregistered_file``, the T2w as given, which is placed on that
    grid through the headers alone. ``labels_file`` is in the model's order.
    """
    ref = to_canonical(nib.load(t1w_file))
    t1w = np.asanyarray(ref.dataobj, dtype=np.float32)
    t2w = _load(t2w_file, ref, "registered T2w").astype(np.float32)
    brain_mask = _load(brain_mask_file, ref, "brain mask") > 0
    segmented = _load(segmented_mask_file, ref, "segmented region") > 0
    labels = _load(labels_file, ref, "label map")
    t2w_given = np.asanyarray(
        resample_from_to(
            nib.load(t2w_unregistered_file), (ref.shape[:3], ref.affine), order=1
        ).dataobj,
        dtype=np.float32,
    )
    out: dict[str, float | None] = {}
    disagreement = entropy = None
    if uncertainty_file is not None:
        maps = _load(uncertainty_file, ref, "uncertainty map")
        entropy = maps[..., 1]
        if segmentation_info.get("disagreement_available", True):
            disagreement = maps[..., 0]
    out.update(m.disagreement_summary(disagreement, segmented))
    out["entropy_mean"] = None if entropy is None else m.mean_inside(entropy, segmented)
    out["registration_cr"] = m.correlation_ratio(t2w, labels, segmented)
    out["registration_cr_before"] = m.correlation_ratio(t2w_given, labels, segmented)
    out["t1w_t2w_correlation"] = m.intensity_correlation(t1w, t2w, segmented)
    voxel_ml = float(np.prod(zooms(ref))) / 1000.0
    out["brain_mask_ml"] = float(brain_mask.sum()) * voxel_ml
    if age_months is not None:
        expected = norms.expected_ml(float(age_months))
        out["brain_mask_expected_ml"] = expected
        out["brain_mask_ratio"] = out["brain_mask_ml"] / expected
    else:
        out["brain_mask_expected_ml"] = out["brain_mask_ratio"] = None
    out["cnr_gm_wm_t1w"] = m.contrast_to_noise(t1w, labels, segmented)
    out["cnr_gm_wm_t2w"] = m.contrast_to_noise(t2w, labels, segmented)
    coverage = segmentation_info.get("window_coverage")
    out["window_coverage"] = None if coverage is None else float(coverage)
    out.update(m.tissue_fractions(labels, segmented))
    return out


def write_session_qc(
    out_file: str | os.PathLike[str],
    metrics: dict[str, float | None],
    *,
    subject: str,
    session: str | None,
    age_months: float | None,
    norms: BrainVolumeNorms,
    segmentation_info: dict[str, Any],
) -> SessionQC:
    """Judge the metrics and write the session's QC record atomically."""
    result, reasons = verdict(metrics)
    if age_months is None:
        reasons.append("note: no age, the brain volume was not compared with the age norms")
    record = SessionQC(
        verdict=result,
        reasons=reasons,
        metrics=metrics,
        thresholds=thresholds(RULES),
        extra={
            "Subject": subject,
            "Session": session,
            "AgeMonths": age_months,
            "NormsSource": norms.source,
            "Members": segmentation_info.get("members_used"),
            "InferenceMode": segmentation_info.get("mode"),
            "ModelBundle": segmentation_info.get("bundle"),
        },
        path=Path(out_file),
    )
    write_atomic(json.dumps(record.to_json(), indent=2) + "\n", out_file)
    return record
