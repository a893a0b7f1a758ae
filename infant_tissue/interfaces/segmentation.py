"""The segmentation node: the only place the workflow reaches the model code (inference/)."""

from __future__ import annotations

import json
import logging
import os

import nibabel as nib
import numpy as np
from nibabel.processing import resample_from_to
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from ..images import write_atomic


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
    """Segment model-grid images with an ensemble bundle; write 4-D probabilities (model order)
    and a JSON record of how they were obtained."""
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
    if mask_file is not None:
        # Tissue exists only inside the brain mask: outside it the network's guesses (it never
        # saw such voxels in training) must not reach the label map or the volumes.
        outside = np.asanyarray(nib.load(mask_file).dataobj) == 0
        labels = np.where(outside, 0, labels)
        probs = probs.copy()
        probs[:, outside] = 0
        probs[0, outside] = 1
    probs = np.moveaxis(probs, 0, -1).astype(np.float32)
    # The vote decides the labels, so they are stored beside the (mean) probabilities.
    write_atomic(nib.Nifti1Image(probs, t1.affine), out_prob)
    write_atomic(
        nib.Nifti1Image(labels.astype(np.uint8), t1.affine),
        out_prob.replace(".nii.gz", "_labels.nii.gz"),
    )
    info = {
        **result.info,
        "bundle": bundle.name,
        "bundle_sha256": bundle.sha256,
        "bundle_members": len(bundle),
        "bundle_licence": bundle.metadata.get("licence", ""),
        "warnings": caught.messages,
    }
    write_atomic(json.dumps(info, indent=2, default=str), out_info)
    return info


def to_native_grid(
    prob_file: str,
    labels_file: str,
    reference_file: str,
    out_prob: str,
    out_labels: str,
    mask_file: str | None = None,
) -> None:
    """Bring model-grid results back to the T1w's own grid and affine.

    Probabilities are resampled linearly (never the labels with nearest neighbour); the label of
    a native voxel is the vote's label where the vote and the resampled probabilities agree on
    the grid, i.e. the argmax of the resampled hard-vote one-hot maps, with ties to the lowest
    label as the vote itself. With ``mask_file`` (what the model segmented, on the T1w grid in
    any voxel order) every voxel outside it is background, so no tissue leaks across its edge
    (into a removed cerebellum) through the linear resampling.
    """
    ref = nib.load(reference_file)
    target = (ref.shape[:3], ref.affine)
    probs_img = nib.load(prob_file)
    probs = np.stack(
        [
            np.asanyarray(resample_from_to(probs_img.slicer[..., c], target, order=1).dataobj)
            for c in range(probs_img.shape[-1])
        ],
        axis=0,
    ).astype(np.float32)
    labels_img = nib.load(labels_file)
    labels = np.asanyarray(labels_img.dataobj)
    onehot = np.stack(
        [
            np.asanyarray(
                resample_from_to(
                    nib.Nifti1Image((labels == c).astype(np.float32), labels_img.affine),
                    target,
                    order=1,
                ).dataobj
            )
            for c in range(probs.shape[0])
        ],
        axis=0,
    )
    native = np.argmax(onehot, axis=0).astype(np.uint8)
    native[onehot.max(0) <= 0] = 0
    if mask_file is not None:
        outside = np.asanyarray(resample_from_to(nib.load(mask_file), target, order=0).dataobj) == 0
        native[outside] = 0
        probs[:, outside] = 0
        probs[0, outside] = 1
    write_atomic(nib.Nifti1Image(np.moveaxis(probs, 0, -1), ref.affine), out_prob)
    write_atomic(nib.Nifti1Image(native, ref.affine), out_labels)


class _SegmentInputSpec(BaseInterfaceInputSpec):
    t1w = File(exists=True, mandatory=True, desc="skull-stripped T1w on the model grid")
    t2w = File(exists=True, mandatory=True, desc="skull-stripped T2w on the model grid")
    mask = File(exists=True, desc="brain mask on the model grid (background outside it)")
    bundle = traits.Directory(exists=True, mandatory=True, desc="weight bundle folder")
    mode = traits.Str("faithful", usedefault=True, desc="inference mode of the engine")
    vote = traits.Enum("hard", "soft", usedefault=True, desc="ensemble vote rule")
    device = traits.Str("auto", usedefault=True, desc="auto, cpu or cuda[:N]")
    num_threads = traits.Int(1, usedefault=True, desc="CPU threads for PyTorch")


class _SegmentOutputSpec(TraitedSpec):
    probabilities = File(exists=True, desc="4-D class probabilities (bg, CSF, GM, WM)")
    labels = File(exists=True, desc="voted labels (model order)")
    info = File(exists=True, desc="JSON record: bundle, mode, vote, device, timings")


class Segment(SimpleInterface):
    """Sliding-window ensemble segmentation (:func:`infant_tissue.inference.segment_with_info`)."""

    input_spec = _SegmentInputSpec
    output_spec = _SegmentOutputSpec

    def _run_interface(self, runtime):
        prob = os.path.join(runtime.cwd, "probabilities.nii.gz")
        info = os.path.join(runtime.cwd, "segmentation.json")
        run_segmentation(
            self.inputs.t1w,
            self.inputs.t2w,
            self.inputs.bundle,
            prob,
            info,
            mask_file=self.inputs.mask if isdefined(self.inputs.mask) else None,
            mode=self.inputs.mode,
            vote=self.inputs.vote,
            device=self.inputs.device,
            num_threads=self.inputs.num_threads,
        )
        self._results.update(
            probabilities=prob, labels=prob.replace(".nii.gz", "_labels.nii.gz"), info=info
        )
        return runtime


class _NativeInputSpec(BaseInterfaceInputSpec):
    probabilities = File(exists=True, mandatory=True, desc="model-grid probabilities")
    labels = File(exists=True, mandatory=True, desc="model-grid voted labels")
    reference = File(exists=True, mandatory=True, desc="the original T1w (native grid)")
    mask = File(exists=True, desc="what the model segmented, on the T1w grid (background outside)")


class _NativeOutputSpec(TraitedSpec):
    probabilities = File(exists=True, desc="probabilities on the native T1w grid")
    labels = File(exists=True, desc="labels on the native T1w grid (model order)")


class ToNativeGrid(SimpleInterface):
    """Resample results back onto the T1w's own grid and affine."""

    input_spec = _NativeInputSpec
    output_spec = _NativeOutputSpec

    def _run_interface(self, runtime):
        prob = os.path.join(runtime.cwd, "probabilities_native.nii.gz")
        labels = os.path.join(runtime.cwd, "labels_native.nii.gz")
        to_native_grid(
            self.inputs.probabilities,
            self.inputs.labels,
            self.inputs.reference,
            prob,
            labels,
            mask_file=self.inputs.mask if isdefined(self.inputs.mask) else None,
        )
        self._results.update(probabilities=prob, labels=labels)
        return runtime
