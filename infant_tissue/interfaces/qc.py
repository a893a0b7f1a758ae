"""The QC node: a thin interface over :mod:`infant_tissue.qc.session`."""

from __future__ import annotations

import json

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from ..layout import derivative_path
from ..qc.norms import BrainVolumeNorms
from ..qc.session import session_metrics, write_session_qc


class _QCInputSpec(BaseInterfaceInputSpec):
    t1w = File(exists=True, mandatory=True, desc="corrected T1w (RAS+, T1w grid)")
    t2w = File(exists=True, mandatory=True, desc="registered, corrected T2w (T1w grid)")
    t2w_unregistered = File(exists=True, mandatory=True, desc="the T2w before registration")
    brain_mask = File(exists=True, mandatory=True, desc="brain mask (T1w grid)")
    segmented_mask = File(exists=True, mandatory=True, desc="what was segmented (T1w grid)")
    labels = File(exists=True, mandatory=True, desc="labels (model order, T1w grid)")
    uncertainty = File(exists=True, desc="disagreement and entropy maps (T1w grid)")
    segmentation_info = File(exists=True, mandatory=True, desc="JSON record of the segmentation")
    source_file = File(exists=True, mandatory=True, desc="BIDS T1w the entities come from")
    output_dir = traits.Directory(mandatory=True, desc="derivatives root")
    subject = traits.Str(mandatory=True, desc="subject label")
    session = traits.Either(None, traits.Str, default=None, usedefault=True, desc="session label")
    age_months = traits.Either(
        None, traits.Float, default=None, usedefault=True, desc="age at scan in months"
    )
    norms_file = File(exists=True, desc="brain-volume norms TSV (default: the literature's)")


class _QCOutputSpec(TraitedSpec):
    out_file = File(desc="the session's QC record (*_desc-tissue_qc.json)")
    verdict = traits.Str(desc="pass, warn or fail")


class SessionQualityControl(SimpleInterface):
    """Measure the session's QC metrics, judge them, write ``*_desc-tissue_qc.json``."""

    input_spec = _QCInputSpec
    output_spec = _QCOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        with open(inputs.segmentation_info) as fh:
            info = json.load(fh)
        norms = (
            BrainVolumeNorms.read(inputs.norms_file)
            if isdefined(inputs.norms_file)
            else BrainVolumeNorms.default()
        )
        metrics = session_metrics(
            t1w_file=inputs.t1w,
            t2w_file=inputs.t2w,
            t2w_unregistered_file=inputs.t2w_unregistered,
            brain_mask_file=inputs.brain_mask,
            segmented_mask_file=inputs.segmented_mask,
            labels_file=inputs.labels,
            uncertainty_file=inputs.uncertainty if isdefined(inputs.uncertainty) else None,
            segmentation_info=info,
            age_months=inputs.age_months,
            norms=norms,
        )
        path = derivative_path(
            inputs.output_dir, inputs.source_file, "qc", extension=".json", desc="tissue"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        record = write_session_qc(
            path,
            metrics,
            subject=inputs.subject,
            session=inputs.session,
            age_months=inputs.age_months,
            norms=norms,
            segmentation_info=info,
        )
        self._results.update(out_file=str(path), verdict=record.verdict)
        return runtime
