"""Nipype wrappers of :mod:`infant_tissue.anat.cerebellum` (cerebellum + brain-stem removal)."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    OutputMultiObject,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from ..anat import cerebellum as cb
from ..utils.atomic import write_atomic
from .preproc import _out, _set_threads


class _RegisterInputSpec(BaseInterfaceInputSpec):
    subject = File(exists=True, mandatory=True, desc="subject image (T2w in T1w space)")
    subject_mask = File(exists=True, mandatory=True, desc="subject brain mask")
    template = File(exists=True, mandatory=True, desc="template of the same contrast (T2w)")
    template_mask = File(exists=True, mandatory=True, desc="template brain mask")
    num_threads = traits.Int(1, usedefault=True, desc="ITK threads")


class _RegisterOutputSpec(TraitedSpec):
    transforms = OutputMultiObject(File(exists=True), desc="template -> subject (ANTs order)")


class RegisterTemplate(SimpleInterface):
    """Affine + SyN registration of the brain-extracted template to the brain-extracted subject
    (for inputs whose brain mask did not come from a template registration)."""

    input_spec = _RegisterInputSpec
    output_spec = _RegisterOutputSpec

    def _run_interface(self, runtime):
        _set_threads(self.inputs.num_threads)
        self._results["transforms"] = cb.register_template(
            self.inputs.subject,
            self.inputs.subject_mask,
            self.inputs.template,
            self.inputs.template_mask,
            _out(runtime, "template_to_t1w_"),
        )
        return runtime


class _RemoveInputSpec(BaseInterfaceInputSpec):
    reference = File(exists=True, mandatory=True, desc="the T1w (RAS+): grid of the results")
    brain_mask = File(exists=True, mandatory=True, desc="whole-brain mask on the T1w grid")
    template_region = File(
        exists=True, mandatory=True, desc="template's cerebellum + brain-stem mask"
    )
    transforms = InputMultiObject(
        File(exists=True), mandatory=True, desc="template -> T1w transforms (ANTs order)"
    )
    registration = traits.Str(mandatory=True, desc="how the transforms were obtained (recorded)")
    num_threads = traits.Int(1, usedefault=True, desc="ITK threads")


class _RemoveOutputSpec(TraitedSpec):
    removed_mask = File(exists=True, desc="cerebellum + brain stem within the brain mask")
    cerebrum_mask = File(exists=True, desc="the rest of the brain: what the model segments")
    report = File(exists=True, desc="JSON: volumes, share of the brain, plausibility problems")


class RemoveCerebellum(SimpleInterface):
    """Warp the template's cerebellum + brain-stem mask to the T1w and split the brain mask into
    that region and the cerebrum; the plausibility checks are recorded, never fatal."""

    input_spec = _RemoveInputSpec
    output_spec = _RemoveOutputSpec

    def _run_interface(self, runtime):
        _set_threads(self.inputs.num_threads)
        warped = _out(runtime, "region_warped.nii.gz")
        removed, cerebrum = _out(runtime, "removed_mask.nii.gz"), _out(runtime, "cerebrum.nii.gz")
        cb.warp_to_subject(
            self.inputs.template_region, self.inputs.reference, self.inputs.transforms, warped
        )
        cb.split_brain(self.inputs.brain_mask, warped, removed, cerebrum)
        self._results["report"] = write_removal_report(
            removed, self.inputs.brain_mask, self.inputs.registration, _out(runtime, "removal.json")
        )
        self._results.update(removed_mask=removed, cerebrum_mask=cerebrum)
        return runtime


def write_removal_report(removed_file: str, brain_file: str, registration: str, out: str) -> str:
    """JSON record of a removal: volumes, share of the brain, plausibility problems."""
    removed_img = nib.load(removed_file)
    removed = np.asanyarray(removed_img.dataobj) > 0
    brain = np.asanyarray(nib.load(brain_file).dataobj) > 0
    voxel = float(abs(np.linalg.det(removed_img.affine[:3, :3])))
    problems = cb.check_removed_region(removed, brain, removed_img.affine)
    report = {
        "Registration": registration,
        "RemovedVoxels": int(removed.sum()),
        "RemovedVolume_mm3": round(int(removed.sum()) * voxel, 3),
        "BrainVolume_mm3": round(int(brain.sum()) * voxel, 3),
        "ShareOfBrain": round(float(removed.sum() / max(int(brain.sum()), 1)), 4),
        "PlausibleShare": list(cb.PLAUSIBLE_SHARE),
        "Problems": problems,
    }
    write_atomic(json.dumps(report, indent=2) + "\n", out)
    return os.path.abspath(out)
