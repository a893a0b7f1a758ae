"""Age norms of the phantom heads' brain-mask volume, for the QC verdict on phantom data.

Phantom heads are far smaller than real infant brains (a 64×72×64 grid holds about 100 mL of
brain, a real 6-month brain about 800 mL), so the QC's literature norms would call every
phantom session a failed brain extraction. :func:`phantom_norms` measures the generator's own
6-month brain-mask volume on an independent sample of heads and scales the literature's growth
curve to it; ``make-phantoms`` writes it as ``code/qc_norms.tsv`` for ``--qc-norms``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..qc.norms import BrainVolumeNorms, growth
from .anatomy import DEFAULT_SHAPE, sample_subject
from .render import brain_mask, render_classes

#: Heads measured, and the seed offset that keeps them apart from any cohort's own subjects.
SAMPLE_SIZE = 16
SAMPLE_SEED = 90_000


def brain_volume_ml(subject, voxel_mm: float = 1.0) -> float:
    """Brain-mask volume (mL) of one phantom head (cerebrum, cerebellum and brain stem with
    their CSF, as a brain mask holds), rendered at ``voxel_mm``."""
    axes = subject.anatomy.head_semi_axes()
    shape = tuple(int(np.ceil(2 * a / voxel_mm)) + 2 for a in axes)
    vox2head = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    vox2head[:3, 3] = -np.asarray(shape) * voxel_mm / 2
    classes = render_classes(subject.anatomy, shape, vox2head)
    return float(brain_mask(classes).sum()) * voxel_mm**3 / 1000.0


def phantom_norms(
    shape: Sequence[int] = DEFAULT_SHAPE, seed: int = 0, n: int = SAMPLE_SIZE
) -> BrainVolumeNorms:
    """The literature's growth curve scaled to the generator's mean 6-month brain-mask volume
    for heads drawn on the ``shape`` grid (``n`` heads from a seed independent of ``seed``)."""
    volumes = []
    for index in range(n):
        subject = sample_subject(SAMPLE_SEED + seed, index, shape)
        volumes.append(brain_volume_ml(subject, voxel_mm=1.5) / growth(subject.age_months))
    mean = float(np.mean(volumes))
    shape_text = "x".join(str(int(s)) for s in shape)
    return BrainVolumeNorms.scaled(
        mean,
        source=f"phantom generator, {shape_text} grid, mean of {n} heads "
        f"(SD {np.std(volumes) / mean:.1%})",
    )
