"""Phantom stand-ins for the TemplateFlow ``tpl-MNIInfant`` files the app reads.

The BIDS-App reads its infant templates from ``TEMPLATEFLOW_HOME`` and never downloads them.
Tests, ``make demo`` and the offline image build need a home that holds the same file names
without the real templates: one phantom head per cohort, rendered without noise or bias field on
a 1 mm RAS grid (as the real templates are), with its brain mask (cerebellum and brain stem
included, as MNIInfant's) and the cerebellum + brain-stem mask of the file contract in
:mod:`infant_tissue.templates`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from ..utils.atomic import write_atomic
from .anatomy import DEFAULT_SHAPE, sample_subject
from .forms import _grid
from .render import brain_mask, hindbrain_mask, render_classes, render_image, to_int16

#: Template folder name and the files written per cohort (suffix -> what it is)
TEMPLATE = "MNIInfant"
FILES = ("T1w", "T2w", "desc-brain_mask", "desc-cerebellumbrainstem_mask")


def template_stem(home: Path, cohort: int) -> Path:
    """``HOME/tpl-MNIInfant/cohort-N/tpl-MNIInfant_cohort-N_res-1`` (add ``_<suffix>.nii.gz``)."""
    return (
        Path(home)
        / f"tpl-{TEMPLATE}"
        / f"cohort-{cohort}"
        / f"tpl-{TEMPLATE}_cohort-{cohort}_res-1"
    )


def write_templateflow(
    home: str | Path,
    cohorts: Sequence[int] = (3,),
    seed: int = 77,
    shape: Sequence[int] = DEFAULT_SHAPE,
) -> list[Path]:
    """Write phantom ``tpl-MNIInfant`` cohorts into the TemplateFlow folder ``home``.

    Parameters
    ----------
    home : path
        TemplateFlow home to create or complete.
    cohorts : sequence of int
        Cohorts to write (cohort 3 covers 5-8 months).
    seed : int
        Cohort seed; cohort ``N`` is subject 0 of seed ``seed + N``.
    shape : sequence of 3 int
        Phantom size (the iSeg-form grid the brain is scaled to, see
        :func:`infant_tissue.phantoms.sample_subject`).

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    home = Path(home)
    written = []
    description = home / f"tpl-{TEMPLATE}" / "template_description.json"
    text = json.dumps({"Name": "phantom stand-in for MNIInfant (tests and demo only)"}, indent=2)
    write_atomic(text + "\n", description)
    written.append(description)
    for cohort in cohorts:
        subject = sample_subject(seed + int(cohort), 0, shape)
        # a template is an average: no noise, no bias field, little texture
        contrast = dataclasses.replace(subject.contrast, noise=0.002, bias=0.0, texture=0.005)
        head = subject.anatomy.head_semi_axes()
        grid_shape, affine = _grid(np.eye(3), (1.0, 1.0, 1.0), np.zeros(3), np.eye(3), head, 4.0)
        classes = render_classes(subject.anatomy, grid_shape, affine)
        rng = np.random.default_rng([seed, cohort])
        images = {
            "T1w": to_int16(render_image(classes, contrast, "T1w", (1, 1, 1), rng)),
            "T2w": to_int16(render_image(classes, contrast, "T2w", (1, 1, 1), rng)),
            "desc-brain_mask": brain_mask(classes).astype(np.uint8),
            "desc-cerebellumbrainstem_mask": hindbrain_mask(classes).astype(np.uint8),
        }
        stem = template_stem(home, cohort)
        for suffix in FILES:
            path = stem.with_name(f"{stem.name}_{suffix}.nii.gz")
            image = nib.Nifti1Image(images[suffix], affine)
            image.set_qform(affine, code=4)  # template space
            image.set_sform(affine, code=4)
            write_atomic(image, path)
            written.append(path)
    return written
