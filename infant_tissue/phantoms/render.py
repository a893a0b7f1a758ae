"""Rendering: tissue classes on any voxel grid, and T1w/T2w images of them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from .anatomy import (
    AIR,
    CB_GM,
    CB_WM,
    CSF,
    DEEP_GM,
    GM,
    HB_CSF,
    HINDBRAIN_CLASSES,
    SCALP,
    SKULL,
    STEM,
    WM,
    Anatomy,
    Contrast,
    Hindbrain,
)
from .geometry import Ellipsoid

# the hindbrain classes carry no cerebral tissue label: their region has a mask of its own
_LABEL_OF_CLASS = np.array([0, 1, 2, 3, 0, 0, 2, 0, 0, 0, 0], dtype=np.uint8)
_INTENSITY_SCALE = 1000.0


def _zooms(vox2mm: np.ndarray) -> np.ndarray:
    return np.linalg.norm(vox2mm[:3, :3], axis=0)


def _bounding_box(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    """Slices of the bounding box of a non-empty ``mask`` grown by ``margin`` (clamped)."""
    box = []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(j for j in range(mask.ndim) if j != axis)))
        box.append(
            slice(max(int(hit[0]) - margin, 0), min(int(hit[-1]) + 1 + margin, mask.shape[axis]))
        )
    return tuple(box)


def _ellipsoid_depth(part: Ellipsoid, xyz: np.ndarray) -> np.ndarray:
    """First-order signed distance (mm) below the surface of ``part``: positive inside.

    ``(1 - q) / |∇q|`` with ``q`` the ellipsoid's normalised radius; exact on a sphere and
    accurate within a few mm of any surface, which is all the shells and the tentorium need.
    """
    local = part.rotation.T.astype(np.float32) @ (xyz - part.center[:, None].astype(np.float32))
    axes = part.semi_axes[:, None].astype(np.float32)
    q = np.sqrt(((local / axes) ** 2).sum(axis=0))
    grad = np.sqrt(((local / axes**2) ** 2).sum(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = (1 - q) * q / grad
    return np.where(q > 1e-6, depth, np.float32(part.semi_axes.min()))


def render_classes(anatomy: Anatomy, shape: Sequence[int], vox2head: np.ndarray) -> np.ndarray:
    """Internal tissue classes (air, CSF, GM, WM, skull, scalp, deep GM, hindbrain) on a grid.

    Parameters
    ----------
    anatomy : Anatomy
        Head geometry.
    shape : sequence of 3 int
        Grid shape.
    vox2head : numpy.ndarray
        4x4 affine from voxel indices to the head frame (mm); its columns must be orthogonal
        (any rotation, flip and voxel size), so that the cortical ribbon, defined by a
        Euclidean distance transform with ``sampling`` = voxel size, is the same in mm on any
        grid.

    Returns
    -------
    numpy.ndarray
        ``uint8`` classes of shape ``shape``.
    """
    shape = tuple(int(s) for s in shape)
    idx = np.indices(shape, dtype=np.float32).reshape(3, -1)
    xyz = vox2head[:3, :3].astype(np.float32) @ idx + vox2head[:3, 3:4].astype(np.float32)
    del idx
    r = np.sqrt((xyz**2).sum(axis=0))
    a = anatomy.brain_axes
    hindbrain = anatomy.hindbrain
    extra_max = anatomy.extra_csf_mm * 1.5
    outer = extra_max + anatomy.skull_mm + anatomy.scalp_mm + 1.0
    r_in = a.min() * (1 - anatomy.hull_bump_amp) - anatomy.sulcal_depth_mm - 1.0
    r_out = a.max() * (1 + anatomy.hull_bump_amp) + outer
    if hindbrain is not None:
        r_out = max(r_out, float(np.linalg.norm(hindbrain.reach())) + outer)
    classes = np.full(r.shape, AIR, dtype=np.uint8)
    classes[r <= r_in] = WM  # provisional: every brain-tissue voxel starts as WM
    shell = np.flatnonzero((r > r_in) & (r < r_out))
    rs = r[shell]
    u = xyz[:, shell] / np.maximum(rs, 1e-6)
    hull = 1.0 / np.sqrt(((u / a[:, None].astype(np.float32)) ** 2).sum(axis=0))
    hull *= 1 + np.float32(anatomy.hull_bump_amp) * anatomy.hull_bumps(u)
    depth = hull - rs  # mm below the brain hull
    del hull
    # the head's shells wrap the union of cerebrum and hindbrain
    outline, below_tentorium = depth, None
    if hindbrain is not None:
        hind_depth = np.maximum(
            _ellipsoid_depth(hindbrain.cerebellum, xyz[:, shell]),
            _ellipsoid_depth(hindbrain.brainstem, xyz[:, shell]),
        )
        outline = np.maximum(depth, hind_depth)
        below_tentorium = hind_depth > depth  # nearer the hindbrain than the cerebrum
    cls = np.full(shell.shape, WM, dtype=np.uint8)
    outside = np.flatnonzero(outline < 0)
    extra = np.clip(
        anatomy.extra_csf_mm * (1 + 0.35 * anatomy.extra_csf_field(u[:, outside])), 1.0, extra_max
    )
    d_out = outline[outside]
    shells = np.full(outside.shape, AIR, dtype=np.uint8)
    shells[d_out > -(extra + anatomy.skull_mm + anatomy.scalp_mm)] = SCALP
    shells[d_out > -(extra + anatomy.skull_mm)] = SKULL
    shells[d_out > -extra] = CSF
    if below_tentorium is not None:
        # the CSF around cerebellum and brain stem (cisterns) goes with them
        shells[(shells == CSF) & below_tentorium[outside]] = HB_CSF
    cls[outside] = shells
    # sulci: CSF clefts with parallel walls along the fold field's zero set
    near = np.flatnonzero((depth >= 0) & (depth < anatomy.sulcal_depth_mm))
    un = u[:, near]
    in_cleft = anatomy.folds.distance_to_zero_set(un) * rs[near] < anatomy.sulcal_half_width_mm
    cleft_depth = anatomy.sulcal_depth_mm * np.clip(
        0.75 + 0.25 * anatomy.sulcal_depth_field(un[:, in_cleft]), 0.3, 1.0
    )
    cleft = near[in_cleft][depth[near[in_cleft]] < cleft_depth]
    cls[cleft] = CSF
    classes[shell] = cls
    del u, un, depth, outline, below_tentorium, extra, d_out, shells, cls, rs
    if hindbrain is not None:
        cerebellum_depth = _place_hindbrain(classes, hindbrain, xyz)
    x, y, z = xyz
    floor = np.where(np.abs(y) < anatomy.callosum_half_length_mm, anatomy.fissure_floor_mm, -np.inf)
    fissure = (np.abs(x) < anatomy.fissure_half_width_mm) & (z > floor) & (classes == WM)
    classes[fissure] = CSF
    # The brain stem counts as brain for the cortical ribbon: cerebral WM that meets it (the
    # midbrain) is no cortex.
    brain = ((classes == WM) | (classes == STEM)).reshape(shape)
    # The ribbon's distance transform only needs the brain's bounding box plus one voxel: the
    # nearest non-brain voxel of a brain voxel is never outside it (projecting onto the box
    # only brings points closer), so the result equals the full-grid one.
    box = _bounding_box(brain, margin=1)
    inner = ndimage.distance_transform_edt(brain[box], sampling=_zooms(vox2head))
    cortex = np.zeros(shape, dtype=bool)
    cortex[box] = brain[box] & (inner <= anatomy.cortex_mm)
    classes[cortex.ravel() & (classes == WM)] = GM
    del brain, inner, cortex
    if hindbrain is not None:
        _fold_cerebellum(classes, hindbrain, xyz, cerebellum_depth, shape, vox2head)
    for nucleus in anatomy.deep_gm:
        inside = classes == WM
        inside[inside] = nucleus.contains(xyz[:, inside])
        classes[inside] = DEEP_GM
    for ventricle in anatomy.ventricles:
        inside = (classes == WM) | (classes == DEEP_GM)
        inside[inside] = ventricle.contains(xyz[:, inside])
        classes[inside] = CSF
    return classes.reshape(shape)


def _place_hindbrain(classes: np.ndarray, hindbrain: Hindbrain, xyz: np.ndarray) -> np.ndarray:
    """Carve cerebellum (provisional CB_WM) and brain stem out of the brain, with the tentorium:
    a CSF gap between the cerebellum and the cerebrum. Returns the cerebellum depth map."""
    in_brain = (classes == WM) | (classes == CSF)  # CSF: sulci and the shell around the brain
    cerebellum_depth = _ellipsoid_depth(hindbrain.cerebellum, xyz)
    stem = _ellipsoid_depth(hindbrain.brainstem, xyz) >= 0
    cerebellum = (cerebellum_depth >= 0) & ~stem
    tentorium = (
        (classes == WM)
        & (cerebellum_depth < 0)
        & (cerebellum_depth >= -hindbrain.tentorium_mm)
        & ~stem
    )
    classes[tentorium] = CSF
    classes[cerebellum & in_brain] = CB_WM
    classes[stem & in_brain] = STEM
    return cerebellum_depth


def _fold_cerebellum(
    classes: np.ndarray,
    hindbrain: Hindbrain,
    xyz: np.ndarray,
    cerebellum_depth: np.ndarray,
    shape: tuple[int, ...],
    vox2head: np.ndarray,
) -> None:
    """Cerebellar cortex over a white-matter core, folia radiating in sagittal sections (GM
    lamellae with CSF fissures in their middle, the arbor vitae's look), the fourth ventricle."""
    core = (classes == CB_WM).reshape(shape)
    if core.any():
        box = _bounding_box(core, margin=1)
        inner = ndimage.distance_transform_edt(core[box], sampling=_zooms(vox2head))
        ribbon = np.zeros(shape, dtype=bool)
        ribbon[box] = core[box] & (inner <= hindbrain.cortex_mm)
        classes[ribbon.ravel()] = CB_GM
    part = hindbrain.cerebellum
    local = part.rotation.T.astype(np.float32) @ (xyz - part.center[:, None].astype(np.float32))
    angle = np.arctan2(local[2] / part.semi_axes[2], local[1] / part.semi_axes[1])
    wave = np.cos(hindbrain.folia * angle + np.float32(hindbrain.folia_phase))
    band = (cerebellum_depth < 0.45 * float(part.semi_axes[1:].min())) & (
        (classes == CB_WM) | (classes == CB_GM)
    )
    classes[band & (wave > 0.2)] = CB_GM
    classes[band & (wave > 0.9) & (cerebellum_depth > 0.6)] = HB_CSF
    inside = (classes == CB_WM) | (classes == CB_GM) | (classes == STEM)
    inside[inside] = hindbrain.fourth_ventricle.contains(xyz[:, inside])
    classes[inside] = HB_CSF


def hindbrain_mask(classes: np.ndarray) -> np.ndarray:
    """Cerebellum, brain stem and fourth ventricle: the region iSeg's preprocessing removes."""
    return np.isin(classes, HINDBRAIN_CLASSES)


def brain_mask(classes: np.ndarray) -> np.ndarray:
    """The whole brain: cerebral tissues (with extra-cerebral CSF) and the hindbrain."""
    return (_LABEL_OF_CLASS[classes] > 0) | hindbrain_mask(classes)


def class_means(contrast: Contrast, modality: str) -> np.ndarray:
    """Mean intensity of every internal class in one modality.

    The hindbrain's means derive from the cerebral ones (no extra random draw): cerebellar
    cortex like cortex, cerebellar WM and brain stem a little more myelinated at 6 months than
    cerebral WM (brighter in T1w, darker in T2w), fissures and fourth ventricle like CSF.
    """
    if modality not in ("T1w", "T2w"):
        raise ValueError(f"modality must be 'T1w' or 'T2w', got {modality!r}")
    base = list(contrast.t1w if modality == "T1w" else contrast.t2w)
    csf, gm, wm = base[CSF], base[GM], base[WM]
    if modality == "T1w":
        hind = [gm * 0.98, wm * 1.06, wm * 1.10, csf]
    else:
        hind = [gm * 1.00, wm * 0.92, wm * 0.86, csf]
    return np.asarray(base[: DEEP_GM + 1] + hind, dtype=np.float32)


def tissue_labels(classes: np.ndarray) -> np.ndarray:
    """Model-coded labels (0 bg, 1 CSF, 2 GM, 3 WM) of internal classes; skull/scalp are bg."""
    return _LABEL_OF_CLASS[classes]


def _bias_field(rng: np.random.Generator, shape: tuple[int, ...], amplitude: float) -> np.ndarray:
    """Smooth multiplicative field ``exp(p)``, ``p`` a random quadratic polynomial of the grid."""
    axes = [np.linspace(-1, 1, n, dtype=np.float32) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    terms = [x, y, z, x * x, y * y, z * z, x * y, x * z, y * z]
    coeffs = rng.normal(0, 1, len(terms))
    coeffs *= amplitude / np.sqrt((coeffs**2).sum())
    log_field = np.zeros(shape, dtype=np.float32)
    for c, t in zip(coeffs, terms, strict=True):
        log_field += np.float32(c) * t
    return np.exp(log_field - log_field.mean())


def render_image(
    classes: np.ndarray,
    contrast: Contrast,
    modality: str,
    zooms: Sequence[float],
    rng: np.random.Generator,
) -> np.ndarray:
    """A T1w or T2w image of a class map: means, texture, blur, bias field, Rician noise.

    Parameters
    ----------
    classes : numpy.ndarray
        Internal classes from :func:`render_classes`.
    contrast : Contrast
        Intensities and degradation parameters.
    modality : {"T1w", "T2w"}
        Which means to use.
    zooms : sequence of float
        Voxel size (mm), so that blur and texture are in mm whatever the grid.
    rng : numpy.random.Generator
        Source of texture, bias and noise.

    Returns
    -------
    numpy.ndarray
        ``float32`` image in units of about 1 (GM near 0.6); see :func:`to_int16`.
    """
    means = class_means(contrast, modality)
    zooms = np.asarray(zooms, dtype=float)
    image = means[classes]
    texture = ndimage.gaussian_filter(
        rng.standard_normal(classes.shape, dtype=np.float32), 1.5 / zooms
    )
    texture /= max(float(texture.std()), 1e-6)
    image *= 1 + np.float32(contrast.texture) * texture
    del texture
    image = ndimage.gaussian_filter(image, contrast.blur_mm / zooms)
    image *= _bias_field(rng, classes.shape, contrast.bias)
    sigma = np.float32(contrast.noise * 0.5 * (means[GM] + means[WM]))
    real = image + sigma * rng.standard_normal(classes.shape, dtype=np.float32)
    imag = sigma * rng.standard_normal(classes.shape, dtype=np.float32)
    return np.sqrt(real * real + imag * imag)


def to_int16(image: np.ndarray) -> np.ndarray:
    """Scale a rendered image (GM near 0.6) to the int16 range scanners write (GM near 600)."""
    return np.clip(np.rint(image * _INTENSITY_SCALE), 0, np.iinfo(np.int16).max).astype(np.int16)
