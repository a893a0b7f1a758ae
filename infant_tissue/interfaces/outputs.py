"""Derivative sinks: name outputs from the source file's entities and write them atomically."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from ..anat.volumes import VOLUME_COLUMNS, removed_region_row, tissue_volumes, volumes_tsv
from ..labels import from_model
from ..layout import bids_relative, derivative_path, write_derivative
from ..utils.images import reorient_like, to_canonical


class _SinkInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="image to store")
    source_file = File(exists=True, mandatory=True, desc="BIDS T1w the entities come from")
    output_dir = traits.Directory(mandatory=True, desc="derivatives root")
    suffix = traits.Str(mandatory=True, desc="BIDS suffix (T1w, T2w, mask, dseg, probseg)")
    space = traits.Str(desc="space entity")
    desc = traits.Str(desc="desc entity")
    label = traits.Str(desc="label entity")
    component = traits.Int(-1, usedefault=True, desc="volume of a 4-D input to store (-1: all)")
    from_canonical = traits.Bool(
        False, usedefault=True, desc="input is on the RAS+ version of source_file's grid"
    )
    to_nipreps_dseg = traits.Bool(False, usedefault=True, desc="recode model labels to NiPreps")
    dtype = traits.Enum("float32", "uint8", "int16", usedefault=True, desc="stored data type")
    sidecar = traits.Dict(desc="JSON sidecar content")
    segmentation_info = File(exists=True, desc="segmentation record to cite in the sidecar")
    extra_sidecar = File(exists=True, desc="JSON object merged into the sidecar")


class _SinkOutputSpec(TraitedSpec):
    out_file = File(desc="the derivative written")


class DerivativesSink(SimpleInterface):
    """Store one derivative on the source T1w's own grid and affine, with its JSON sidecar."""

    input_spec = _SinkInputSpec
    output_spec = _SinkOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        entities = {
            k: getattr(inputs, k)
            for k in ("space", "desc", "label")
            if isdefined(getattr(inputs, k))
        }
        path = derivative_path(inputs.output_dir, inputs.source_file, inputs.suffix, **entities)
        img = nib.load(inputs.in_file)
        data = np.asanyarray(img.dataobj)
        if inputs.component >= 0:
            data = data[..., inputs.component]
        source = nib.load(inputs.source_file)
        if inputs.from_canonical:
            data = reorient_like(data, to_canonical(source), source)
        elif not np.allclose(img.affine, source.affine, atol=1e-4):
            raise ValueError(f"{inputs.in_file}: not on the grid of {inputs.source_file}")
        if inputs.to_nipreps_dseg:
            data = from_model(data, "nipreps")
        out = nib.Nifti1Image(data.astype(inputs.dtype), source.affine, source.header)
        out.set_data_dtype(inputs.dtype)
        if inputs.dtype != "float32":
            out.header.set_slope_inter(1, 0)
        sidecar = dict(inputs.sidecar) if isdefined(inputs.sidecar) else {}
        sidecar.setdefault("SpatialReference", "bids:raw:" + bids_relative(inputs.source_file))
        if isdefined(inputs.segmentation_info):
            sidecar.update(segmentation_sidecar(inputs.segmentation_info))
        if isdefined(inputs.extra_sidecar):
            with open(inputs.extra_sidecar) as fh:
                sidecar.update(json.load(fh))
        write_derivative(out, path, sidecar)
        self._results["out_file"] = str(path)
        return runtime


def segmentation_sidecar(info_file: str) -> dict:
    """Sidecar fields that say which model made a dseg/probseg and how."""
    with open(info_file) as fh:
        info = json.load(fh)
    return {
        "ModelBundle": info.get("bundle"),
        "ModelBundleSHA256": info.get("bundle_sha256"),
        "EnsembleMembers": info.get("bundle_members"),
        "EnsembleMembersUsed": info.get("members_used"),
        "Vote": info.get("vote"),
        "InferenceMode": info.get("mode"),
        "Device": info.get("device"),
    }


class _VolumesInputSpec(BaseInterfaceInputSpec):
    dseg = File(exists=True, mandatory=True, desc="stored dseg (NiPreps order), native grid")
    probabilities = File(exists=True, mandatory=True, desc="native-grid probabilities (model)")
    source_file = File(exists=True, mandatory=True, desc="BIDS T1w the entities come from")
    output_dir = traits.Directory(mandatory=True, desc="derivatives root")
    segmentation_info = File(exists=True, mandatory=True, desc="JSON record of the segmentation")
    subject = traits.Str(mandatory=True, desc="subject label")
    session = traits.Either(None, traits.Str, default=None, usedefault=True, desc="session label")
    age_months = traits.Either(
        None, traits.Float, default=None, usedefault=True, desc="age at scan in months"
    )
    age_source = traits.Str("", usedefault=True, desc="where the age was read")
    removed_mask = File(exists=True, desc="stored cerebellum + brain-stem mask (native grid)")


class _VolumesOutputSpec(TraitedSpec):
    out_file = File(desc="tissue volume table (TSV)")


class TissueVolumesTable(SimpleInterface):
    """``desc-tissue_volumes.tsv``: voxels and mm³ per tissue, plus partial-volume estimates."""

    input_spec = _VolumesInputSpec
    output_spec = _VolumesOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        dseg = nib.load(inputs.dseg)
        probs = np.moveaxis(np.asanyarray(nib.load(inputs.probabilities).dataobj), -1, 0)
        rows = tissue_volumes(np.asanyarray(dseg.dataobj), probs, dseg.affine)
        if isdefined(inputs.removed_mask):
            removed = np.asanyarray(nib.load(inputs.removed_mask).dataobj) > 0
            rows.append(removed_region_row(removed, dseg.affine))
        info = json.loads(open(inputs.segmentation_info).read())
        path = derivative_path(
            inputs.output_dir, inputs.source_file, "volumes", extension=".tsv", desc="tissue"
        )
        sidecar = {
            "Subject": inputs.subject,
            "Session": inputs.session,
            "AgeMonths": inputs.age_months,
            "AgeSource": inputs.age_source,
            "ModelBundle": info.get("bundle"),
            "ModelBundleSHA256": info.get("bundle_sha256"),
            "InferenceMode": info.get("mode"),
            "Vote": info.get("vote"),
            "Sources": ["bids::" + bids_relative(inputs.dseg)],
            **VOLUME_COLUMNS,
        }
        write_derivative(volumes_tsv(rows), path, sidecar)
        self._results["out_file"] = str(path)
        return runtime
