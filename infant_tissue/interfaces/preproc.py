"""Nipype wrappers of :mod:`infant_tissue.anat.preprocessing` and :mod:`infant_tissue.anat.grid`
(ANTs registration, brain masks, N4, the model grid)."""

from __future__ import annotations

import os

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    OutputMultiObject,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from ..anat import grid
from ..anat import preprocessing as pp


def _out(runtime, name: str) -> str:
    return os.path.join(runtime.cwd, name)


def _set_threads(n: int) -> None:
    # ITK (ANTs) reads this variable for its thread pool.
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(max(1, int(n)))


class _ReorientInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="input T1w or T2w image")
    kind = traits.Str("image", usedefault=True, desc="what the image is, for error messages")


class _ReorientOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="validated image in RAS+ voxel order, float32")


class ValidateReorient(SimpleInterface):
    """Validate an input image (one-line errors) and reorient it to RAS+ without resampling."""

    input_spec = _ReorientInputSpec
    output_spec = _ReorientOutputSpec

    def _run_interface(self, runtime):
        self._results["out_file"] = pp.reorient_to_ras(
            self.inputs.in_file, _out(runtime, f"{self.inputs.kind}_ras.nii.gz"), self.inputs.kind
        )
        return runtime


class _RigidInputSpec(BaseInterfaceInputSpec):
    fixed = File(exists=True, mandatory=True, desc="reference image (T1w)")
    moving = File(exists=True, mandatory=True, desc="image to align (T2w)")
    num_threads = traits.Int(1, usedefault=True, desc="ITK threads")
    estimate = traits.Bool(
        True, usedefault=True, desc="estimate the transform (False: identity, already aligned)"
    )


class _RigidOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="moving image resampled onto the fixed grid")
    transform = File(exists=True, desc="ITK rigid transform (moving to fixed)")


class RigidRegistration(SimpleInterface):
    """Rigid registration with mutual information (antspyx)."""

    input_spec = _RigidInputSpec
    output_spec = _RigidOutputSpec

    def _run_interface(self, runtime):
        _set_threads(self.inputs.num_threads)
        out, xfm = _out(runtime, "moving_in_fixed.nii.gz"), _out(runtime, "moving_to_fixed.mat")
        pp.register_rigid(
            self.inputs.fixed, self.inputs.moving, out, xfm, estimate=self.inputs.estimate
        )
        self._results.update(out_file=out, transform=xfm)
        return runtime


class _MaskInputSpec(BaseInterfaceInputSpec):
    t1w = File(exists=True, mandatory=True, desc="T1w image (RAS+)")
    method = traits.Enum(
        "skull-stripped",
        "template",
        "precomputed",
        mandatory=True,
        desc="how to obtain the brain mask",
    )
    template = File(exists=True, desc="template T1w (method 'template')")
    template_mask = File(exists=True, desc="template brain mask (method 'template')")
    mask_file = File(exists=True, desc="precomputed brain mask (method 'precomputed')")
    num_threads = traits.Int(1, usedefault=True, desc="ITK threads")


class _MaskOutputSpec(TraitedSpec):
    out_mask = File(exists=True, desc="binary brain mask on the T1w grid")
    template_transforms = OutputMultiObject(
        File(exists=True), desc="template -> T1w transforms (method 'template'; ANTs order)"
    )


class BrainMask(SimpleInterface):
    """Brain mask of the T1w: its non-zero voxels, a warped template mask, or a given mask."""

    input_spec = _MaskInputSpec
    output_spec = _MaskOutputSpec

    def _run_interface(self, runtime):
        _set_threads(self.inputs.num_threads)
        out = _out(runtime, "brain_mask.nii.gz")
        method = self.inputs.method
        if method == "skull-stripped":
            pp.mask_from_skull_stripped(self.inputs.t1w, out)
        elif method == "template":
            self._results["template_transforms"] = pp.mask_from_template(
                self.inputs.t1w, self.inputs.template, self.inputs.template_mask, out
            )
        else:
            pp.mask_from_file(self.inputs.mask_file, self.inputs.t1w, out)
        self._results["out_mask"] = out
        return runtime


class _N4InputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="image to correct")
    mask = File(exists=True, mandatory=True, desc="brain mask: the region the field is fitted in")
    num_threads = traits.Int(1, usedefault=True, desc="ITK threads")


class _N4OutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="bias-field corrected image")


class N4BiasCorrection(SimpleInterface):
    """N4 bias field fitted in the brain mask, the whole image divided by it (antspyx)."""

    input_spec = _N4InputSpec
    output_spec = _N4OutputSpec

    def _run_interface(self, runtime):
        _set_threads(self.inputs.num_threads)
        out = _out(runtime, "n4.nii.gz")
        pp.n4_correct(self.inputs.in_file, self.inputs.mask, out)
        self._results["out_file"] = out
        return runtime


class _ResampleInputSpec(BaseInterfaceInputSpec):
    t1w = File(exists=True, mandatory=True, desc="bias-corrected T1w")
    t2w = File(exists=True, mandatory=True, desc="bias-corrected T2w in T1w space")
    mask = File(
        exists=True,
        mandatory=True,
        desc="mask of what the model sees (brain or cerebrum), T1w space",
    )
    voxel_mm = traits.Float(1.0, usedefault=True, desc="isotropic voxel size of the model grid")
    margin_mm = traits.Float(8.0, usedefault=True, desc="margin around the brain's bounding box")


class _ResampleOutputSpec(TraitedSpec):
    t1w = File(exists=True, desc="skull-stripped T1w on the model grid")
    t2w = File(exists=True, desc="skull-stripped T2w on the model grid")
    mask = File(exists=True, desc="brain mask on the model grid")


class ResampleToModelGrid(SimpleInterface):
    """Resample to 1 mm isotropic RAS and crop to the brain plus a margin."""

    input_spec = _ResampleInputSpec
    output_spec = _ResampleOutputSpec

    def _run_interface(self, runtime):
        outs = {k: _out(runtime, f"{k}_model_grid.nii.gz") for k in ("t1w", "t2w", "mask")}
        grid.resample_to_model_grid(
            self.inputs.t1w,
            self.inputs.t2w,
            self.inputs.mask,
            outs["t1w"],
            outs["t2w"],
            outs["mask"],
            margin_mm=self.inputs.margin_mm,
            voxel_mm=self.inputs.voxel_mm,
        )
        self._results.update(outs)
        return runtime
