"""Segmentation of one session from files: what the segmentation node runs (no nipype here)."""

from __future__ import annotations

import json
import logging

import nibabel as nib
import numpy as np

from ..utils.atomic import write_atomic


class _WarningCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def run_segmentation(
    t1w_file: str,
    t2w_file: str,
    bundle_dir: str,
    out_prob: str,
    out_info: str,
    *,
    mask_file: str | None = None,
    mode: str = "faithful",
    vote: str = "hard",
    device: str = "auto",
    num_threads: int | None = None,
) -> dict:
    """Segment model-grid images with an ensemble bundle; write 4-D probabilities (model order),
    the voted labels (``*_labels``), the ensemble's uncertainty (``*_uncertainty``: volume 0 the
    members' disagreement, 0 for a single member; volume 1 the normalised entropy of the mean
    probabilities) and a JSON record of how they were obtained (with ``window_coverage``, the
    share of the brain the evaluated windows reached)."""
    from ..bundle import load_bundle
    from ..inference import segment_with_info

    t1 = nib.load(t1w_file)
    t2 = nib.load(t2w_file)
    bundle = load_bundle(bundle_dir)
    # Warnings (device fallback, members skipped...) are logged in this node's process, which
    # under MultiProc is not the one writing the report: keep them in the JSON record.
    caught = _WarningCollector()
    logging.getLogger("infant_tissue").addHandler(caught)
    try:
        result = segment_with_info(
            np.asanyarray(t1.dataobj, dtype=np.float32),
            np.asanyarray(t2.dataobj, dtype=np.float32),
            bundle,
            mode=mode,
            vote=vote,
            device=device,
            num_threads=num_threads,
            progress=False,
        )
    finally:
        logging.getLogger("infant_tissue").removeHandler(caught)
    labels, probs = result.labels, result.probabilities
    entropy = result.entropy if result.entropy is not None else np.zeros(labels.shape, np.float32)
    disagreement = (
        result.disagreement if result.disagreement is not None else np.zeros_like(entropy)
    )
    covered = probs.sum(axis=0) > 0  # no window reached the others: their probabilities are 0
    inside = np.ones(labels.shape, bool)
    if mask_file is not None:
        # Tissue exists only inside the brain mask: outside it the network's guesses (it never
        # saw such voxels in training) must not reach the label map or the volumes.
        inside = np.asanyarray(nib.load(mask_file).dataobj) > 0
        outside = ~inside
        labels = np.where(outside, 0, labels)
        probs = probs.copy()
        probs[:, outside] = 0
        probs[0, outside] = 1
        entropy = np.where(outside, 0, entropy)
        disagreement = np.where(outside, 0, disagreement)
    probs = np.moveaxis(probs, 0, -1).astype(np.float32)
    # The vote decides the labels, so they are stored beside the (mean) probabilities.
    write_atomic(nib.Nifti1Image(probs, t1.affine), out_prob)
    write_atomic(
        nib.Nifti1Image(labels.astype(np.uint8), t1.affine),
        out_prob.replace(".nii.gz", "_labels.nii.gz"),
    )
    uncertainty = np.stack([disagreement, entropy], axis=-1).astype(np.float32)
    write_atomic(
        nib.Nifti1Image(uncertainty, t1.affine), out_prob.replace(".nii.gz", "_uncertainty.nii.gz")
    )
    info = {
        **result.info,
        "window_coverage": float(covered[inside].mean()) if inside.any() else 0.0,
        "disagreement_available": result.disagreement is not None,
        "bundle": bundle.name,
        "bundle_sha256": bundle.sha256,
        "bundle_members": len(bundle),
        "bundle_licence": bundle.metadata.get("licence", ""),
        "warnings": caught.messages,
    }
    write_atomic(json.dumps(info, indent=2, default=str), out_info)
    return info
