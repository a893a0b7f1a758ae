"""Phantom sessions with known defects, to calibrate and test the QC verdict.

Each :class:`Degradation` turns a clean phantom session into what a lab may really hand over:
noise, thick slices, ghosting, a T1w given as the T2w, a T2w that is declared registered but is
not, or a wrong age. Two severities each (``mild``, ``severe``); the numbers are in
:data:`SEVERITY`. Images are degraded as acquired (the whole field of view) and, for
skull-stripped sessions, masked again with the brain afterwards, as a lab's brain extraction
would.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .anatomy import PhantomSubject, sample_subject
from .forms import BidsVolumes, make_bids_subject
from .render import render_classes, render_image, to_int16

SEVERITIES: tuple[str, ...] = ("mild", "severe")

#: The parameter of each degradation at each severity (see the functions for units).
SEVERITY: dict[str, dict[str, float]] = {
    # noise SD relative to the median head intensity of each image
    "gaussian_noise": {"mild": 0.08, "severe": 0.20},
    "rician_noise": {"mild": 0.08, "severe": 0.20},
    # slice thickness (mm) along the acquisition's third axis, as averaged thick slices
    "thick_slices": {"mild": 3.0, "severe": 6.0},
    # amplitude of the N/2 ghost along the phase-encoding (second) axis
    "ghosting": {"mild": 0.15, "severe": 0.35},
    # mild: a second T1w acquisition named T2w; severe: the T1w file itself copied as the T2w
    "t1w_as_t2w": {"mild": 1.0, "severe": 2.0},
    # shift (mm) of a T2w declared already registered (run with --t2w-registered)
    "misaligned_t2w": {"mild": 2.0, "severe": 5.0},
    # months between the true age and the age in sessions.tsv (the head grows with the true age)
    "wrong_age": {"mild": 5.0, "severe": 10.0},
}
DEGRADATIONS: tuple[str, ...] = tuple(SEVERITY)


@dataclass(frozen=True)
class DegradedSession:
    """A rendered session: its images, the age to declare and how to run it."""

    volumes: BidsVolumes
    stated_age_months: float
    true_age_months: float
    t2w_registered: bool
    degradation: str  # "clean" or one of DEGRADATIONS
    severity: str  # "none" or one of SEVERITIES


def aligned_acquisition(subject: PhantomSubject) -> PhantomSubject:
    """The subject with its T2w acquired on the T1w's grid without head motion (iSeg-like
    inputs whose T2w is already registered)."""
    acq = subject.acquisition
    same = dataclasses.replace(
        acq,
        t2w_voxel=acq.t1w_voxel,
        t2w_rotation=acq.t1w_rotation,
        t2w_margin_mm=acq.t1w_margin_mm,
        t2w_offset_mm=acq.t1w_offset_mm,
        t1w_to_t2w=np.eye(4),
    )
    return dataclasses.replace(subject, acquisition=same)


def _brain_scale(image: np.ndarray) -> float:
    """Median intensity of the head (voxels above a tenth of the 99th percentile: not air)."""
    inside = image[image > 0.1 * np.percentile(image, 99)]
    return float(np.median(inside)) if inside.size else 1.0


def _keep_mask(degraded: np.ndarray, brain: np.ndarray | None) -> np.ndarray:
    out = np.clip(degraded, 0, np.iinfo(np.int16).max)
    if brain is not None:  # brain extraction after the acquisition: brain voxels stay > 0
        out = np.where(brain, np.maximum(out, 1), 0)
    return np.rint(out).astype(np.int16)


def gaussian_noise(image: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """Add zero-mean Gaussian noise of SD ``level`` × the median head intensity."""
    sigma = level * _brain_scale(image)
    return image + sigma * rng.standard_normal(image.shape)


def rician_noise(image: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of the image plus complex Gaussian noise (SD ``level`` × median intensity)."""
    sigma = level * _brain_scale(image)
    real = image + sigma * rng.standard_normal(image.shape)
    return np.hypot(real, sigma * rng.standard_normal(image.shape))


def thick_slices(image: np.ndarray, thickness_mm: float, zooms: np.ndarray) -> np.ndarray:
    """Average blocks of slices ``thickness_mm`` thick along the third axis (a thick-slice
    acquisition interpolated back to the original grid)."""
    block = max(1, int(round(thickness_mm / float(zooms[2]))))
    n = image.shape[2]
    out = np.empty_like(image, dtype=np.float64)
    for start in range(0, n, block):
        stop = min(start + block, n)
        out[:, :, start:stop] = image[:, :, start:stop].mean(axis=2, keepdims=True)
    return ndimage.uniform_filter1d(out, size=max(1, block // 2), axis=2)


def ghosting(image: np.ndarray, amplitude: float) -> np.ndarray:
    """Add an N/2 ghost: the image shifted by half the field of view along the second axis."""
    return image + amplitude * np.roll(image, image.shape[1] // 2, axis=1)


def shifted(image: np.ndarray, shift_mm: float, zooms: np.ndarray) -> np.ndarray:
    """The image translated by ``shift_mm`` along a diagonal of the first two axes (voxel data
    moved, header kept: what a failed or skipped registration leaves)."""
    step = shift_mm / np.sqrt(2.0)
    return ndimage.shift(image, (step / zooms[0], step / zooms[1], 0.0), order=1)


def _zooms(affine: np.ndarray) -> np.ndarray:
    return np.linalg.norm(affine[:3, :3], axis=0)


def degrade_session(
    subject: PhantomSubject,
    degradation: str,
    severity: str,
    *,
    skull_stripped: bool = True,
) -> DegradedSession:
    """Render ``subject`` as a BIDS session with ``degradation`` at ``severity`` (``"clean"``
    and ``"none"`` for an unchanged session)."""
    if degradation != "clean" and degradation not in SEVERITY:
        raise ValueError(f"unknown degradation {degradation!r}; one of {', '.join(DEGRADATIONS)}")
    if degradation != "clean" and severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    level = SEVERITY.get(degradation, {}).get(severity, 0.0)
    age = subject.age_months
    stated = age
    if degradation == "wrong_age":
        # a young head declared older is the common slip (months vs weeks, a later visit's age)
        age = 3.0
        subject = sample_subject(subject.seed, subject.index, subject.shape, age_months=age)
        stated = age + level
    registered = degradation == "misaligned_t2w"
    if registered:
        subject = aligned_acquisition(subject)
    # degrade the whole field of view (a ghost of the scalp lands in the brain), then extract
    volumes = make_bids_subject(subject, skull_stripped=False)
    brain1 = brain2 = None
    if skull_stripped:
        stripped = make_bids_subject(subject, skull_stripped=True)
        brain1, brain2 = stripped.t1w > 0, stripped.t2w > 0
    t1w, t2w = volumes.t1w.astype(np.float64), volumes.t2w.astype(np.float64)
    z1, z2 = _zooms(volumes.t1w_affine), _zooms(volumes.t2w_affine)
    rng = np.random.default_rng([subject.seed, subject.index, 99])
    edit: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
        "gaussian_noise": lambda im, z: gaussian_noise(im, level, rng),
        "rician_noise": lambda im, z: rician_noise(im, level, rng),
        "thick_slices": lambda im, z: thick_slices(im, level, z),
        "ghosting": lambda im, z: ghosting(im, level),
    }
    t2w_affine = volumes.t2w_affine
    t1w_out, t2w_out = _keep_mask(t1w, brain1), _keep_mask(t2w, brain2)
    if degradation in edit:
        t1w_out = _keep_mask(edit[degradation](t1w, z1), brain1)
        t2w_out = _keep_mask(edit[degradation](t2w, z2), brain2)
    elif degradation == "misaligned_t2w":
        moved = None if brain2 is None else shifted(brain2.astype(float), level, z2) > 0.5
        t2w_out = _keep_mask(shifted(t2w, level, z2), moved)
    elif degradation == "t1w_as_t2w" and severity == "severe":
        t2w_out, t2w_affine = t1w_out.copy(), volumes.t1w_affine
    elif degradation == "t1w_as_t2w":
        # a second T1w run, on the T2w's grid and with its own noise, named T2w
        classes = render_classes(
            subject.anatomy, volumes.t2w.shape, volumes.t2w_to_t1w @ volumes.t2w_affine
        )
        second = to_int16(render_image(classes, subject.contrast, "T1w", z2, rng))
        t2w_out = _keep_mask(second.astype(np.float64), brain2)
    out = dataclasses.replace(volumes, t1w=t1w_out, t2w=t2w_out, t2w_affine=t2w_affine)
    return DegradedSession(
        out, float(stated), float(age), registered, degradation, severity if level else "none"
    )
