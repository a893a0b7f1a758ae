"""Synthetic 6-month-old infant head phantoms for tests, the demo and training smoke runs.

Real infant data are gated, so the test suite and the README demo need data that look enough
like an isointense-phase (about 6 months) T1w/T2w pair to exercise the whole pipeline:

* geometry, in a head frame (mm, RAS, origin at the brain centre): an ellipsoidal brain hull
  with gentle bumps, an extra-cerebral CSF layer, skull and scalp shells; inside the hull a
  folded cortex: sulci are CSF clefts along the zero set of a smooth random field on the
  sphere, the cortical GM ribbon is every brain voxel within ``cortex_mm`` (2-3 mm, Euclidean,
  from a distance transform) of CSF, so it follows the folds and lines the interhemispheric
  fissure; WM fills the rest, with lateral ventricles (CSF) and deep GM nuclei inside;
* contrast of the isointense phase: GM and WM means within a few percent in T1w, CSF dark in
  T1w and bright in T2w, WM slightly darker than GM in T2w; intra-tissue texture, Gaussian
  partial-volume blur, a smooth multiplicative bias field and Rician noise.

The same subject renders into two forms, each with its own grids:

* the preprocessed iSeg form: skull-stripped T1/T2 and labels on one 1 mm grid
  (:func:`make_iseg_subject`, :func:`write_iseg_dataset`);
* the raw BIDS form: T1w with skull at 0.8-1 mm, T2w on a different grid (voxel size, FOV,
  sometimes orientation) with the head moved by a known rigid transform, oblique or
  left-right-flipped affines for some subjects, plus a manual ``dseg`` derivative in T1w space
  (:func:`make_bids_subject`, :func:`write_bids_dataset`).

Everything is drawn from ``numpy.random.Generator`` streams spawned from ``(seed, index)``, so
a subject is the same whichever form is rendered first and however many subjects are made.
Labels inside arrays use the model coding (0 bg, 1 CSF, 2 GM, 3 WM; skull and scalp are
background); writers convert to the iSeg (0/10/150/250) or NiPreps (1 GM, 2 WM, 3 CSF) coding.
"""

from .anatomy import (
    DEFAULT_SHAPE,
    MIN_SIDE,
    Acquisition,
    Anatomy,
    Contrast,
    PhantomSubject,
    sample_subject,
    sample_subjects,
)
from .forms import BidsVolumes, IsegVolumes, iseg_affine, make_bids_subject, make_iseg_subject
from .io import write_bids_dataset, write_iseg_dataset, write_iseg_subject
from .render import render_classes, render_image, tissue_labels, to_int16

__all__ = [
    "DEFAULT_SHAPE",
    "MIN_SIDE",
    "Acquisition",
    "Anatomy",
    "BidsVolumes",
    "Contrast",
    "IsegVolumes",
    "PhantomSubject",
    "iseg_affine",
    "make_bids_subject",
    "make_iseg_subject",
    "render_classes",
    "render_image",
    "sample_subject",
    "sample_subjects",
    "tissue_labels",
    "to_int16",
    "write_bids_dataset",
    "write_iseg_dataset",
    "write_iseg_subject",
]
