"""The segmentation nodes: the only place the workflow reaches the model code (inference/), and the
way back to the T1w grid (anat/grid.py)."""

from __future__ import annotations

import os

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from ..anat.grid import to_native_grid
from ..inference.files import run_segmentation


class _SegmentInputSpec(BaseInterfaceInputSpec):
    t1w = File(exists=True, mandatory=True, desc="skull-stripped T1w on the model grid")
    t2w = File(exists=True, mandatory=True, desc="skull-stripped T2w on the model grid")
    mask = File(exists=True, desc="brain mask on the model grid (background outside it)")
    bundle = traits.Directory(exists=True, mandatory=True, desc="weight bundle folder")
    mode = traits.Str("faithful", usedefault=True, desc="inference mode of the engine")
    vote = traits.Enum("hard", "soft", usedefault=True, desc="ensemble vote rule")
    device = traits.Str("auto", usedefault=True, desc="auto, cpu or cuda[:N]")
    num_threads = traits.Int(1, usedefault=True, desc="CPU threads for PyTorch")
    use_gpu = traits.Bool(
        False, usedefault=True, desc="runs on a GPU: nipype's MultiProc gives it a GPU slot"
    )


class _SegmentOutputSpec(TraitedSpec):
    probabilities = File(exists=True, desc="4-D class probabilities (bg, CSF, GM, WM)")
    labels = File(exists=True, desc="voted labels (model order)")
    uncertainty = File(exists=True, desc="4-D: members' disagreement, entropy of the mean")
    info = File(exists=True, desc="JSON record: bundle, mode, vote, device, timings")


class Segment(SimpleInterface):
    """Sliding-window ensemble segmentation (:func:`infant_tissue.inference.segment_with_info`)."""

    input_spec = _SegmentInputSpec
    output_spec = _SegmentOutputSpec

    def _run_interface(self, runtime):
        prob = os.path.join(runtime.cwd, "probabilities.nii.gz")
        info = os.path.join(runtime.cwd, "segmentation.json")
        inputs = self.inputs
        engine = {k: getattr(inputs, k) for k in ("mode", "vote", "device", "num_threads")}
        mask = inputs.mask if isdefined(inputs.mask) else None
        run_segmentation(
            inputs.t1w, inputs.t2w, inputs.bundle, prob, info, mask_file=mask, **engine
        )
        self._results.update(
            probabilities=prob,
            labels=prob.replace(".nii.gz", "_labels.nii.gz"),
            uncertainty=prob.replace(".nii.gz", "_uncertainty.nii.gz"),
            info=info,
        )
        return runtime


class _NativeInputSpec(BaseInterfaceInputSpec):
    probabilities = File(exists=True, mandatory=True, desc="model-grid probabilities")
    labels = File(exists=True, mandatory=True, desc="model-grid voted labels")
    uncertainty = File(exists=True, desc="model-grid uncertainty maps (4-D, values in [0, 1])")
    reference = File(exists=True, mandatory=True, desc="the original T1w (native grid)")
    mask = File(exists=True, desc="what the model segmented, on the T1w grid (background outside)")


class _NativeOutputSpec(TraitedSpec):
    probabilities = File(exists=True, desc="probabilities on the native T1w grid")
    labels = File(exists=True, desc="labels on the native T1w grid (model order)")
    uncertainty = File(desc="uncertainty maps on the native T1w grid")


class ToNativeGrid(SimpleInterface):
    """Resample results back onto the T1w's own grid and affine."""

    input_spec = _NativeInputSpec
    output_spec = _NativeOutputSpec

    def _run_interface(self, runtime):
        prob = os.path.join(runtime.cwd, "probabilities_native.nii.gz")
        labels = os.path.join(runtime.cwd, "labels_native.nii.gz")
        maps = self.inputs.uncertainty if isdefined(self.inputs.uncertainty) else None
        maps_out = os.path.join(runtime.cwd, "uncertainty_native.nii.gz") if maps else None
        to_native_grid(
            self.inputs.probabilities,
            self.inputs.labels,
            self.inputs.reference,
            prob,
            labels,
            mask_file=self.inputs.mask if isdefined(self.inputs.mask) else None,
            uncertainty_file=maps,
            out_uncertainty=maps_out,
        )
        self._results.update(probabilities=prob, labels=labels)
        if maps_out:
            self._results["uncertainty"] = maps_out
        return runtime
