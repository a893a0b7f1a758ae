"""Optional clean-up of a label map (off by default; the paper does none).

Seed 001 (Nie et al., multi-stream FCN) follows its prediction with "morphological operations to
remove isolated small volumes and internal holes"; this module offers the three steps separately
and together. Each works on a label map with 0 = background and tissues 1..K-1 and returns a new
array; the input is never modified.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage

LOGGER = logging.getLogger(__name__)

#: Islands smaller than this (voxels, 1 mm³ each) are relabelled by default.
DEFAULT_MIN_ISLAND = 64


def _structure(connectivity: int) -> np.ndarray:
    if connectivity not in (1, 2, 3):
        raise ValueError(
            f"connectivity must be 1 (faces), 2 (edges) or 3 (corners), got {connectivity}"
        )
    return ndimage.generate_binary_structure(3, connectivity)


def _check_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 3 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 3-D integer array, got {labels.dtype} {labels.shape}")
    return labels


def keep_largest_component(labels: np.ndarray, connectivity: int = 1) -> np.ndarray:
    """Set to background every tissue voxel outside the largest connected brain component.

    The brain is all voxels with a label > 0; scraps of "tissue" in the background (eyes,
    residual skull, noise) become 0.
    """
    labels = _check_labels(labels)
    components, count = ndimage.label(labels > 0, structure=_structure(connectivity))
    if count <= 1:
        return labels.copy()
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    keep = components == int(np.argmax(sizes))
    out = np.where(keep, labels, 0).astype(labels.dtype)
    LOGGER.debug("largest component kept; %d voxels removed", int((labels > 0).sum() - keep.sum()))
    return out


def relabel_small_islands(
    labels: np.ndarray,
    min_size: int = DEFAULT_MIN_ISLAND,
    connectivity: int = 1,
    classes: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Give each small connected island of a tissue the majority label of its surroundings.

    For every tissue label ``c`` (default: every label > 0 present) the connected components of
    ``labels == c`` with fewer than ``min_size`` voxels are found; each takes the most frequent
    label among the voxels touching it (the one-voxel shell of the island, with the same
    connectivity), ties to the lowest label. An isolated island in the background thus becomes
    background. Islands are judged against the input map, not against earlier relabellings, so
    the result does not depend on the order of the classes.
    """
    labels = _check_labels(labels)
    if min_size < 1:
        raise ValueError(f"min_size must be at least 1, got {min_size}")
    structure = _structure(connectivity)
    out = labels.copy()
    todo = classes if classes is not None else tuple(int(c) for c in np.unique(labels) if c > 0)
    for c in todo:
        components, count = ndimage.label(labels == c, structure=structure)
        if count == 0:
            continue
        sizes = np.bincount(components.ravel())
        for index, box in enumerate(ndimage.find_objects(components), start=1):
            if box is None or sizes[index] >= min_size:
                continue
            voxels, label = _majority_around(labels, components, index, box, structure)
            out[voxels] = label
    return out


def fill_holes(labels: np.ndarray, connectivity: int = 1) -> np.ndarray:
    """Fill background cavities enclosed by brain with the majority label around each cavity.

    A hole is a connected set of background voxels not connected to the volume's border
    (``scipy.ndimage.binary_fill_holes`` of the brain mask).
    """
    labels = _check_labels(labels)
    structure = _structure(connectivity)
    brain = labels > 0
    holes = ndimage.binary_fill_holes(brain, structure=structure) & ~brain
    if not holes.any():
        return labels.copy()
    out = labels.copy()
    components, _count = ndimage.label(holes, structure=structure)
    for index, box in enumerate(ndimage.find_objects(components), start=1):
        if box is None:
            continue
        voxels, label = _majority_around(labels, components, index, box, structure)
        out[voxels] = label
    return out


def postprocess(
    labels: np.ndarray,
    *,
    largest_component: bool = True,
    min_island: int | None = DEFAULT_MIN_ISLAND,
    holes: bool = True,
    connectivity: int = 1,
) -> np.ndarray:
    """Largest brain component, then small-island relabelling, then hole filling.

    Parameters
    ----------
    labels
        Integer label map (0 background).
    largest_component
        Keep only the largest connected brain component.
    min_island
        Relabel islands smaller than this many voxels (``None`` or 0: skip).
    holes
        Fill enclosed background cavities.
    connectivity
        1 (6-neighbourhood, default), 2 (18) or 3 (26).
    """
    out = _check_labels(labels)
    if largest_component:
        out = keep_largest_component(out, connectivity)
    if min_island:
        out = relabel_small_islands(out, min_island, connectivity)
    if holes:
        out = fill_holes(out, connectivity)
    return out.copy() if out is labels else out


def _majority_around(
    labels: np.ndarray,
    components: np.ndarray,
    index: int,
    box: tuple[slice, ...],
    structure: np.ndarray,
) -> tuple[tuple[np.ndarray, ...], int]:
    """Voxel indices of component ``index`` and the majority label of the voxels touching it.

    Works inside the component's bounding box grown by one voxel, so the cost is proportional
    to the component, not to the volume.
    """
    grown = tuple(
        slice(max(s.start - 1, 0), min(s.stop + 1, n))
        for s, n in zip(box, labels.shape, strict=True)
    )
    region = components[grown] == index
    shell = ndimage.binary_dilation(region, structure=structure) & ~region
    around = labels[grown][shell]
    if around.size:
        label = int(np.argmax(np.bincount(around.astype(np.int64))))  # ties: lowest label
    else:  # the component fills the whole volume: nothing to compare with
        label = int(labels[grown][region][0])
    where = np.nonzero(region)
    return tuple(w + s.start for w, s in zip(where, grown, strict=True)), label
