"""What defines one synthetic subject (geometry, contrast, acquisition) and how it is drawn."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..qc.norms import growth
from .geometry import Ellipsoid, SphereField, _random_rotation, rotation_matrix

#: default iSeg-form grid (1 mm): LR x AP x SI
DEFAULT_SHAPE: tuple[int, int, int] = (96, 112, 96)
#: smallest grid side that still leaves room for a folded cortex and ventricles
MIN_SIDE = 32

# internal tissue classes (rendering only); labels map them onto the model coding. The last four
# form the hindbrain region (cerebellar cortex and white matter, brain stem, fourth ventricle and
# cerebellar fissures) that iSeg's preprocessing removes.
AIR, CSF, GM, WM, SKULL, SCALP, DEEP_GM, CB_GM, CB_WM, STEM, HB_CSF = range(11)
HINDBRAIN_CLASSES = (CB_GM, CB_WM, STEM, HB_CSF)
ORIENTATIONS = ("ras", "las", "oblique")
SESSION = "01"


@dataclass(frozen=True)
class Anatomy:
    """Geometry of one head in its own frame (mm, RAS, origin at the brain centre)."""

    brain_axes: np.ndarray  # semi-axes of the brain hull
    hull_bump_amp: float
    hull_bumps: SphereField
    extra_csf_mm: float
    extra_csf_field: SphereField
    skull_mm: float
    scalp_mm: float
    cortex_mm: float
    sulcal_depth_mm: float
    sulcal_half_width_mm: float  # of the CSF cleft, at the brain surface
    folds: SphereField  # sulci run along its zero set
    sulcal_depth_field: SphereField  # modulates the depth along each sulcus
    fissure_half_width_mm: float
    fissure_floor_mm: float  # the corpus callosum's top, above which the hemispheres part
    callosum_half_length_mm: float
    ventricles: tuple[Ellipsoid, ...]
    deep_gm: tuple[Ellipsoid, ...]
    hindbrain: Hindbrain | None = None

    def scaled(self, factor: float) -> Anatomy:
        """The head grown (or shrunk) by ``factor`` in every length that grows with the brain
        (hull, sulcal depth, structures); cortex, CSF, skull and scalp keep their thickness."""
        return dataclasses.replace(
            self,
            brain_axes=self.brain_axes * factor,
            sulcal_depth_mm=self.sulcal_depth_mm * factor,
            fissure_floor_mm=self.fissure_floor_mm * factor,
            callosum_half_length_mm=self.callosum_half_length_mm * factor,
            ventricles=tuple(v.scaled(factor) for v in self.ventricles),
            deep_gm=tuple(d.scaled(factor) for d in self.deep_gm),
            hindbrain=None if self.hindbrain is None else self.hindbrain.scaled(factor),
        )

    def head_semi_axes(self) -> np.ndarray:
        """Semi-axes of an ellipsoid that contains the whole head (scalp included)."""
        outer = self.extra_csf_mm * 1.5 + self.skull_mm + self.scalp_mm + 1.0
        reach = self.brain_axes * (1 + self.hull_bump_amp)
        if self.hindbrain is not None:
            reach = np.maximum(reach, self.hindbrain.reach())
        return reach + outer


@dataclass(frozen=True)
class Hindbrain:
    """Cerebellum, brain stem and fourth ventricle, below and behind the cerebrum.

    iSeg's organisers removed exactly this region from their images, so the iSeg form of a
    phantom leaves it out while the raw BIDS form keeps it (with its own truth mask).
    """

    cerebellum: Ellipsoid
    brainstem: Ellipsoid
    fourth_ventricle: Ellipsoid
    cortex_mm: float  # cerebellar cortex thickness
    folia: int  # number of folia around the cerebellum in a sagittal section
    folia_phase: float
    tentorium_mm: float  # CSF gap between the cerebrum and the cerebellum

    def scaled(self, factor: float) -> Hindbrain:
        """Structures scaled about the head origin; cortex and tentorium keep their thickness."""
        return dataclasses.replace(
            self,
            cerebellum=self.cerebellum.scaled(factor),
            brainstem=self.brainstem.scaled(factor),
            fourth_ventricle=self.fourth_ventricle.scaled(factor),
        )

    def reach(self) -> np.ndarray:
        """Largest distance from the head origin reached along each axis (mm)."""
        reach = np.zeros(3)
        for part in (self.cerebellum, self.brainstem):
            half = np.sqrt(((part.rotation * part.semi_axes[None, :]) ** 2).sum(axis=1))
            reach = np.maximum(reach, np.abs(part.center) + half)
        return reach


@dataclass(frozen=True)
class Contrast:
    """Mean intensity per internal class and the degradation parameters of one subject."""

    t1w: tuple[float, ...]  # indexed by class: AIR, CSF, GM, WM, SKULL, SCALP, DEEP_GM
    t2w: tuple[float, ...]
    blur_mm: float
    noise: float  # Rician sigma relative to the mean of GM and WM
    bias: float  # amplitude of the log bias field
    texture: float  # relative amplitude of the smooth intra-tissue texture


@dataclass(frozen=True)
class Acquisition:
    """Raw BIDS grids: voxel sizes, orientations, FOV margins and the T1w -> T2w head motion."""

    orientation: str  # "ras", "las" (left-right flipped) or "oblique"
    t1w_voxel: tuple[float, float, float]
    t2w_voxel: tuple[float, float, float]
    t1w_rotation: np.ndarray  # grid axes in T1w world (may be improper: flipped)
    t2w_rotation: np.ndarray
    t1w_margin_mm: float
    t2w_margin_mm: float
    t1w_offset_mm: np.ndarray
    t2w_offset_mm: np.ndarray
    t1w_to_t2w: np.ndarray  # 4x4 rigid: T1w scanner mm -> T2w scanner mm of the same point


@dataclass(frozen=True)
class PhantomSubject:
    """Everything that defines one synthetic subject; rendering adds only noise."""

    seed: int
    index: int
    age_months: float
    sex: str
    shape: tuple[int, int, int]  # the iSeg-form grid (1 mm)
    anatomy: Anatomy
    contrast: Contrast
    acquisition: Acquisition

    @property
    def participant(self) -> str:
        """BIDS participant label (without ``sub-``), 1-based and zero-padded."""
        return f"{self.index + 1:02d}"

    @property
    def iseg_number(self) -> int:
        """Number in the iSeg file names ``subject-N-*``, 1-based."""
        return self.index + 1

    def rng(self, purpose: str) -> np.random.Generator:
        """Independent generator for one rendering step, reproducible in any call order."""
        purposes = ("iseg", "t1w", "t2w")
        return np.random.default_rng([self.seed, self.index, 1 + purposes.index(purpose)])


def _check_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    values = tuple(int(s) for s in shape)
    if len(values) != 3 or any(s < MIN_SIDE for s in values):
        raise ValueError(
            f"phantom shape must be three sides of at least {MIN_SIDE} voxels, got {tuple(shape)}"
        )
    return values  # type: ignore[return-value]


def _sample_anatomy(rng: np.random.Generator, shape: tuple[int, int, int]) -> Anatomy:
    # extra-cerebral CSF is thinner on small test grids, else it would dominate their volume
    size = float(np.clip(min(shape) / 90.0, 0.5, 1.0))
    extra_csf = 1.0 + rng.uniform(0.2, 1.2) * size
    bump = rng.uniform(0.02, 0.04)
    # the brain mask (extra-cerebral CSF included) fills most of the grid but never touches it
    room = np.asarray(shape, dtype=float) / 2 - 1.5 * extra_csf - 1.5
    a = room * rng.uniform(0.9, 0.98, 3) / (1 + bump)
    mean_r = float(a.mean())
    cortex = rng.uniform(2.2, 3.0)
    ventricles, deep_gm = [], []
    for side in (-1.0, 1.0):
        # lateral ventricles: elongated front to back, just off the midline, yawed outwards
        yaw = rotation_matrix((0, 0, 1), side * rng.uniform(3, 10))
        centre = a * [
            side * rng.uniform(0.12, 0.17),
            rng.uniform(-0.1, 0.0),
            rng.uniform(-0.05, 0.05),
        ]
        axes = a * [rng.uniform(0.05, 0.08), rng.uniform(0.28, 0.38), rng.uniform(0.08, 0.12)]
        ventricles.append(Ellipsoid(centre, np.maximum(axes, 1.2), yaw))
        # deep GM (thalamus / basal ganglia): lateral and below the ventricles
        centre = a * [
            side * rng.uniform(0.18, 0.24),
            rng.uniform(-0.12, -0.02),
            rng.uniform(-0.3, -0.2),
        ]
        axes = a * [rng.uniform(0.10, 0.14), rng.uniform(0.14, 0.20), rng.uniform(0.10, 0.14)]
        deep_gm.append(Ellipsoid(centre, axes, np.eye(3)))
    # sulci about 8-11 mm apart whatever the brain size (zero-set spacing ~ pi r / frequency)
    fold_freq = (np.pi * mean_r / 11.0, np.pi * mean_r / 8.0)
    return Anatomy(
        brain_axes=a,
        hull_bump_amp=bump,
        hull_bumps=SphereField.sample(rng, 8, (1.0, 2.5)),
        extra_csf_mm=extra_csf,
        extra_csf_field=SphereField.sample(rng, 8, (1.0, 3.0)),
        skull_mm=rng.uniform(1.5, 2.5),
        scalp_mm=rng.uniform(2.5, 4.0),
        cortex_mm=cortex,
        sulcal_depth_mm=mean_r * rng.uniform(0.24, 0.3),
        sulcal_half_width_mm=rng.uniform(0.5, 0.8),
        folds=SphereField.sample(rng, 24, fold_freq),
        sulcal_depth_field=SphereField.sample(rng, 8, (2.0, 4.0)),
        fissure_half_width_mm=0.8,
        fissure_floor_mm=a[2] * rng.uniform(0.3, 0.38) + cortex + 1.0,
        callosum_half_length_mm=a[1] * rng.uniform(0.35, 0.45),
        ventricles=tuple(ventricles),
        deep_gm=tuple(deep_gm),
    )


def _sample_contrast(rng: np.random.Generator) -> Contrast:
    gm1, gm2 = rng.uniform(0.60, 0.66), rng.uniform(0.55, 0.62)
    # GM loses a few percent to partial volume with CSF: WM is drawn slightly darker than GM
    t1 = (0.0, rng.uniform(0.25, 0.35), gm1, gm1 * rng.uniform(0.92, 0.97), 0.12, 0.85, gm1 * 1.04)
    t2 = (0.0, rng.uniform(0.90, 1.00), gm2, gm2 * rng.uniform(0.85, 0.93), 0.10, 0.45, gm2 * 0.95)
    return Contrast(
        t1w=tuple(float(v) for v in t1),
        t2w=tuple(float(v) for v in t2),
        blur_mm=rng.uniform(0.4, 0.7),
        noise=rng.uniform(0.015, 0.035),
        bias=rng.uniform(0.05, 0.15),
        texture=0.02,
    )


def _sample_acquisition(rng: np.random.Generator, index: int) -> Acquisition:
    orientation = ORIENTATIONS[index % len(ORIENTATIONS)]
    v1 = float(rng.choice([0.8, 0.9, 1.0]))
    t2_options = [(1.0, 1.0, 1.0), (1.1, 1.1, 1.1), (0.9, 0.9, 1.2), (1.0, 1.0, 1.25)]
    t2_options = [v for v in t2_options if v != (v1, v1, v1)]
    v2 = t2_options[int(rng.integers(len(t2_options)))]
    if orientation == "ras":
        r1, r2 = np.eye(3), np.eye(3)
    elif orientation == "las":
        r1 = r2 = np.diag([-1.0, 1.0, 1.0])
    else:
        r1, r2 = _random_rotation(rng, (6, 15)), _random_rotation(rng, (4, 12))
    motion = np.eye(4)
    motion[:3, :3] = _random_rotation(rng, (2, 5))
    motion[:3, 3] = rng.uniform(-5, 5, 3)
    return Acquisition(
        orientation=orientation,
        t1w_voxel=(v1, v1, v1),
        t2w_voxel=v2,
        t1w_rotation=r1,
        t2w_rotation=r2,
        t1w_margin_mm=rng.uniform(6, 10),
        t2w_margin_mm=rng.uniform(10, 16),
        t1w_offset_mm=rng.uniform(-3, 3, 3),
        t2w_offset_mm=rng.uniform(-3, 3, 3),
        t1w_to_t2w=motion,
    )


def _sample_hindbrain(rng: np.random.Generator, a: np.ndarray) -> Hindbrain:
    """Cerebellum tucked under the occipital lobes, brain stem descending in front of it (both
    reach a little below the cerebrum), the fourth ventricle between them; about 9-12 % of the
    brain, as at 6 months."""
    cerebellum = Ellipsoid(
        a * [0.0, -rng.uniform(0.50, 0.56), -rng.uniform(0.64, 0.70)],
        a * [rng.uniform(0.72, 0.78), rng.uniform(0.40, 0.44), rng.uniform(0.34, 0.38)],
        rotation_matrix((1, 0, 0), -rng.uniform(5, 12)),
    )
    brainstem = Ellipsoid(
        a * [0.0, -rng.uniform(0.10, 0.14), -rng.uniform(0.66, 0.72)],
        a * [rng.uniform(0.15, 0.18), rng.uniform(0.13, 0.16), rng.uniform(0.42, 0.48)],
        # the brain stem's long axis leans: its lower end (medulla) lies further back
        rotation_matrix((1, 0, 0), -rng.uniform(10, 18)),
    )
    ventricle = Ellipsoid(
        a * [0.0, -rng.uniform(0.26, 0.29), -rng.uniform(0.64, 0.68)],
        np.maximum(a * [0.07, 0.035, 0.07], 1.2),
        np.eye(3),
    )
    return Hindbrain(
        cerebellum=cerebellum,
        brainstem=brainstem,
        fourth_ventricle=ventricle,
        cortex_mm=rng.uniform(1.6, 2.2),
        folia=int(rng.integers(18, 26)),
        folia_phase=rng.uniform(0, 2 * np.pi),
        tentorium_mm=1.0,
    )


def sample_subject(
    seed: int,
    index: int,
    shape: Sequence[int] = DEFAULT_SHAPE,
    age_months: float | None = None,
) -> PhantomSubject:
    """Draw subject ``index`` of the cohort generated by ``seed``.

    Parameters
    ----------
    seed : int
        Cohort seed; subjects of different seeds (or indices) differ.
    index : int
        0-based subject index.
    shape : sequence of 3 int
        iSeg-form grid at 1 mm (LR, AP, SI); a 6-month brain is scaled to fill about 80 % of
        it, and the raw BIDS grids grow around the head as needed.
    age_months : float, optional
        Age of the subject (default: drawn around 6 months, the head as sampled). When given,
        the head is scaled as total brain volume grows in infancy
        (:func:`infant_tissue.qc.norms.growth`, 1 at 6 months): a 12-month head has 1.24 times
        the volume, a 3-month head 0.85 times.

    Returns
    -------
    PhantomSubject
    """
    if index < 0:
        raise ValueError(f"subject index must be non-negative, got {index}")
    shape = _check_shape(shape)
    rng = np.random.default_rng([int(seed), int(index), 0])
    anatomy = _sample_anatomy(rng, shape)
    # the hindbrain has a stream of its own, so the rest of the subject is what it always was
    hindbrain = _sample_hindbrain(
        np.random.default_rng([int(seed), int(index), 7]), anatomy.brain_axes
    )
    anatomy = dataclasses.replace(anatomy, hindbrain=hindbrain)
    contrast = _sample_contrast(rng)
    acquisition = _sample_acquisition(rng, index)
    age = float(np.round(np.clip(rng.normal(6.0, 0.4), 5.0, 7.0), 1))
    sex = str(rng.choice(["F", "M"]))
    if age_months is not None:
        if not 0 <= float(age_months) <= 60:
            raise ValueError(f"phantom age must be 0-60 months, got {age_months}")
        age = float(age_months)
        # Only an asked-for age rescales the head: the default cohort stays bit-identical.
        anatomy = anatomy.scaled(growth(age) ** (1 / 3))
    return PhantomSubject(int(seed), int(index), age, sex, shape, anatomy, contrast, acquisition)


def sample_subjects(
    n_subjects: int, seed: int, shape: Sequence[int] = DEFAULT_SHAPE
) -> list[PhantomSubject]:
    """The first ``n_subjects`` subjects of the cohort ``seed`` (see :func:`sample_subject`)."""
    if n_subjects < 1:
        raise ValueError(f"n_subjects must be at least 1, got {n_subjects}")
    return [sample_subject(seed, i, shape) for i in range(n_subjects)]
