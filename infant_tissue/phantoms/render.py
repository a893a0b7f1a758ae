"""Rendering: tissue classes on any voxel grid, and T1w/T2w images of them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from .anatomy import AIR, CSF, DEEP_GM, GM, SCALP, SKULL, WM, Anatomy, Contrast

_LABEL_OF_CLASS = np.array([0, 1, 2, 3, 0, 0, 2], dtype=np.uint8)
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


def render_classes(anatomy: Anatomy, shape: Sequence[int], vox2head: np.ndarray) -> np.ndarray:
    """Internal tissue classes (air, CSF, GM, WM, skull, scalp, deep GM) on a voxel grid.

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
    extra_max = anatomy.extra_csf_mm * 1.5
    r_in = a.min() * (1 - anatomy.hull_bump_amp) - anatomy.sulcal_depth_mm - 1.0
    r_out = (
        a.max() * (1 + anatomy.hull_bump_amp)
        + extra_max
        + anatomy.skull_mm
        + anatomy.scalp_mm
        + 1.0
    )
    classes = np.full(r.shape, AIR, dtype=np.uint8)
    classes[r <= r_in] = WM  # provisional: every brain-tissue voxel starts as WM
    shell = np.flatnonzero((r > r_in) & (r < r_out))
    rs = r[shell]
    u = xyz[:, shell] / np.maximum(rs, 1e-6)
    hull = 1.0 / np.sqrt(((u / a[:, None].astype(np.float32)) ** 2).sum(axis=0))
    hull *= 1 + np.float32(anatomy.hull_bump_amp) * anatomy.hull_bumps(u)
    depth = hull - rs  # mm below the brain hull
    del hull
    cls = np.full(shell.shape, WM, dtype=np.uint8)
    outside = np.flatnonzero(depth < 0)
    extra = np.clip(
        anatomy.extra_csf_mm * (1 + 0.35 * anatomy.extra_csf_field(u[:, outside])), 1.0, extra_max
    )
    d_out = depth[outside]
    shells = np.full(outside.shape, AIR, dtype=np.uint8)
    shells[d_out > -(extra + anatomy.skull_mm + anatomy.scalp_mm)] = SCALP
    shells[d_out > -(extra + anatomy.skull_mm)] = SKULL
    shells[d_out > -extra] = CSF
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
    del u, un, depth, extra, d_out, shells, cls, rs
    x, y, z = xyz
    floor = np.where(np.abs(y) < anatomy.callosum_half_length_mm, anatomy.fissure_floor_mm, -np.inf)
    fissure = (np.abs(x) < anatomy.fissure_half_width_mm) & (z > floor) & (classes == WM)
    classes[fissure] = CSF
    brain = (classes == WM).reshape(shape)
    # The ribbon's distance transform only needs the brain's bounding box plus one voxel: the
    # nearest non-brain voxel of a brain voxel is never outside it (projecting onto the box
    # only brings points closer), so the result equals the full-grid one.
    box = _bounding_box(brain, margin=1)
    inner = ndimage.distance_transform_edt(brain[box], sampling=_zooms(vox2head))
    cortex = np.zeros(shape, dtype=bool)
    cortex[box] = brain[box] & (inner <= anatomy.cortex_mm)
    classes[cortex.ravel()] = GM
    for nucleus in anatomy.deep_gm:
        inside = classes == WM
        inside[inside] = nucleus.contains(xyz[:, inside])
        classes[inside] = DEEP_GM
    for ventricle in anatomy.ventricles:
        inside = (classes == WM) | (classes == DEEP_GM)
        inside[inside] = ventricle.contains(xyz[:, inside])
        classes[inside] = CSF
    return classes.reshape(shape)


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
    if modality not in ("T1w", "T2w"):
        raise ValueError(f"modality must be 'T1w' or 'T2w', got {modality!r}")
    means = np.asarray(contrast.t1w if modality == "T1w" else contrast.t2w, dtype=np.float32)
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
