"""All image input/output and orientation handling of infant-tissue, in one place.

Why one module: the failures users report most often with segmentation tools are not in the
network but at its edges — a truncated download that crashes deep inside a workflow, a 4-D file
given where a 3-D one was expected, a left-right flip because an array was written back with the
wrong affine, or a half-written output left behind by a killed job. Keeping every read, every
reorientation and every write here lets each of those be checked once and tested once.

* :func:`load_image` reads an image *and its data* and rejects anything the pipeline cannot
  segment sensibly with one :class:`InputImageError` line that names the file and the problem.
* :func:`to_canonical` / :func:`reorient_like` move arrays between an image's own voxel grid and
  the closest RAS+ grid by axis permutations and flips only (no interpolation), so a result
  computed in canonical space comes back voxel-for-voxel onto the original grid.
* every write goes through :func:`infant_tissue.utils.atomic.write_atomic`: a temporary name
  beside the destination, then a rename, so no reader ever sees a partial file.
"""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError, SpatialImage

from ..errors import InfantTissueError

LOGGER = logging.getLogger(__name__)

#: Coarsest voxel edge accepted (mm); infant tissue boundaries are lost beyond this.
MAX_ZOOM_MM = 3.0
#: Finest voxel edge accepted (mm); smaller values almost always mean a wrong header unit.
MIN_ZOOM_MM = 0.1
#: Largest accepted ratio of the longest to the shortest voxel edge (thick-slice 2-D scans).
MAX_ANISOTROPY = 4.0
#: Smallest accepted number of voxels along any axis.
MIN_AXIS_VOXELS = 8

#: Errors nibabel, gzip and zlib raise when a file's bytes are damaged or cut short.
_READ_ERRORS = (EOFError, OSError, zlib.error, ValueError, HeaderDataError, ImageFileError)


class InputImageError(InfantTissueError, ValueError):
    """An input image cannot be used; the message is one line naming the file and the problem.

    Parameters
    ----------
    path
        The offending file.
    reason
        What is wrong with it, phrased for the user (no traceback needed to act on it).
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the exception picklable (nipype and multiprocessing ship errors between processes).
        return (type(self), (str(self.path), self.reason))


def _kind_from_name(path: Path) -> str:
    """The BIDS suffix of a file name (``T1w``, ``T2w``, ``mask``...) or ``image``."""
    stem = path.name.split(".", 1)[0]
    suffix = stem.rsplit("_", 1)[-1] if "_" in stem else ""
    return suffix or "image"


def _fmt_zooms(values: np.ndarray | tuple[float, ...]) -> str:
    return "×".join(f"{float(v):.3g}" for v in values)


def load_image(
    path: str | os.PathLike[str],
    *,
    kind: str | None = None,
    max_zoom: float = MAX_ZOOM_MM,
    min_zoom: float = MIN_ZOOM_MM,
    max_anisotropy: float = MAX_ANISOTROPY,
    min_axis: int = MIN_AXIS_VOXELS,
) -> nib.Nifti1Image:
    """Read a 3-D image with its data and check it is usable, or raise :class:`InputImageError`.

    The data are read here, not lazily later, because a truncated or corrupt gzip only shows up
    when the voxels are decompressed — and it should fail at the start of a run with the file's
    name rather than inside a registration hours later. A 4-D image with a single volume is
    squeezed to 3-D (scanner exports often add a singleton time axis).

    Parameters
    ----------
    path
        Image file (any format nibabel reads; the BIDS layer only offers NIfTI).
    kind
        Word used in messages for what is expected (``"T1w"``); defaults to the file's BIDS
        suffix.
    max_zoom, min_zoom
        Accepted range of voxel edge lengths in mm, computed from the affine.
    max_anisotropy
        Largest accepted ratio of the longest to the shortest voxel edge.
    min_axis
        Smallest accepted number of voxels along each axis.

    Returns
    -------
    nibabel image
        A 3-D image of the same class whose data are in memory (``img.dataobj`` is an array),
        with the file's affine and header.

    Raises
    ------
    InputImageError
        Missing or unreadable file, corrupt or truncated data, not 3-D, non-finite values,
        all-zero data, singular or non-finite affine, voxel size out of range, too anisotropic,
        or too small.
    """
    path = Path(path)
    kind = kind or _kind_from_name(path)
    if not path.exists():
        raise InputImageError(path, "file not found")
    if not path.is_file():
        raise InputImageError(path, "not a regular file")
    if not os.access(path, os.R_OK):
        raise InputImageError(path, "file is not readable (check its permissions)")
    try:
        _check_gzip_stream(path)
    except (*_READ_ERRORS, MemoryError) as exc:
        raise InputImageError(
            path, f"corrupt or truncated gzip file ({_one_line(exc, path)})"
        ) from exc
    try:
        img = nib.load(path)
    except _READ_ERRORS as exc:
        raise InputImageError(
            path, f"cannot read the image header ({_one_line(exc, path)})"
        ) from exc
    if not isinstance(img, SpatialImage):
        raise InputImageError(path, f"not a volume image ({type(img).__name__})")

    shape = tuple(int(s) for s in img.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) == 4:
        raise InputImageError(path, f"4-D image with {shape[3]} volumes; give one 3-D {kind}")
    if len(shape) != 3:
        raise InputImageError(
            path, f"{len(shape)}-D image of shape {_fmt_shape(shape)}; a 3-D {kind} is required"
        )

    affine = np.asarray(img.affine, dtype=float)
    if not np.all(np.isfinite(affine)):
        raise InputImageError(path, "the affine (sform/qform) contains NaN or infinite values")
    det = float(np.linalg.det(affine[:3, :3]))
    if not np.isfinite(det) or abs(det) < 1e-12:
        raise InputImageError(path, "singular affine (sform/qform): voxels have no volume")
    vox = nib.affines.voxel_sizes(affine)
    if np.any(vox > max_zoom):
        raise InputImageError(
            path,
            f"voxel size {_fmt_zooms(vox)} mm is coarser than {max_zoom:g} mm; "
            f"give a {kind} at {max_zoom:g} mm or finer",
        )
    if np.any(vox < min_zoom):
        raise InputImageError(
            path,
            f"voxel size {_fmt_zooms(vox)} mm is finer than {min_zoom:g} mm "
            "(a wrong unit in the header?)",
        )
    ratio = float(vox.max() / vox.min())
    if ratio > max_anisotropy:
        raise InputImageError(
            path,
            f"voxel size {_fmt_zooms(vox)} mm is too anisotropic "
            f"(ratio {ratio:.3g} > {max_anisotropy:g}); give a 3-D {kind}, not thick slices",
        )
    if min(shape) < min_axis:
        raise InputImageError(
            path,
            f"image of shape {_fmt_shape(shape)} is too small (< {min_axis} voxels on an axis)",
        )

    try:
        data = np.asanyarray(img.dataobj)
    except (*_READ_ERRORS, MemoryError) as exc:
        raise InputImageError(
            path, f"corrupt or truncated image data ({_one_line(exc, path)})"
        ) from exc
    if data.dtype.kind not in "biuf":
        raise InputImageError(path, f"unsupported voxel data type {data.dtype}")
    data = data.reshape(shape)
    if data.dtype.kind == "f":
        finite = np.isfinite(data)
        if not finite.all():
            n_nan = int(np.isnan(data).sum())
            n_inf = int(data.size - finite.sum()) - n_nan
            raise InputImageError(
                path, f"contains non-finite values ({n_nan} NaN, {n_inf} infinite voxels)"
            )
    if not data.any():
        raise InputImageError(path, "image is all zeros")

    header = img.header.copy()
    out = (
        img.__class__(data, affine, header)
        if isinstance(img, nib.Nifti1Image)
        else nib.Nifti1Image(data, affine)
    )
    LOGGER.debug("Loaded %s: shape %s, voxels %s mm", path, shape, _fmt_zooms(vox))
    return out


def _check_gzip_stream(path: Path, chunk: int = 1 << 24) -> None:
    """Decompress a gzip file to its end so that its CRC and length are verified.

    nibabel stops reading once it has the voxels it needs, before the gzip trailer, so a
    corrupted (not truncated) stream can decode into wrong voxels without any error. Reading in
    chunks keeps memory bounded; the cost is one extra decompression.
    """
    with open(path, "rb") as fobj:
        if fobj.read(2) != b"\x1f\x8b":
            return
    with gzip.open(path, "rb") as stream:
        while stream.read(chunk):
            pass


def _fmt_shape(shape: tuple[int, ...]) -> str:
    return "×".join(str(s) for s in shape)


def _one_line(exc: BaseException, path: Path | None = None) -> str:
    """The exception as one line, without repeating the file name the message starts with."""
    text = " ".join(str(exc).split())
    if path is not None:
        text = text.replace(str(path), path.name)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --- orientation -------------------------------------------------------------------------------


def zooms(img: SpatialImage) -> tuple[float, float, float]:
    """Voxel edge lengths (mm) from the affine, which, unlike header pixdims, is what resamplers use."""
    return tuple(float(v) for v in nib.affines.voxel_sizes(np.asarray(img.affine))[:3])


def same_grid(a: SpatialImage, b: SpatialImage, atol: float = 1e-4) -> bool:
    """Whether two images share a voxel grid: equal 3-D shape and affines equal within ``atol``.

    Used before combining arrays voxel-wise (a precomputed mask and its T1w, a label map and
    its source), where a silent mismatch would misplace every voxel.
    """
    if tuple(a.shape[:3]) != tuple(b.shape[:3]):
        return False
    return bool(np.allclose(np.asarray(a.affine), np.asarray(b.affine), rtol=0.0, atol=atol))


def to_canonical(img: SpatialImage) -> SpatialImage:
    """The image reoriented to the closest RAS+ voxel order, without interpolation.

    Only axes are permuted and flipped (``nibabel.as_closest_canonical``), so the voxel values
    are unchanged and an oblique affine stays oblique; :func:`reorient_like` undoes it exactly.
    """
    return nib.as_closest_canonical(img)


def _orientation_transform(source_affine: np.ndarray, target_affine: np.ndarray) -> np.ndarray:
    return nib.orientations.ornt_transform(
        nib.orientations.io_orientation(source_affine),
        nib.orientations.io_orientation(target_affine),
    )


def reorient_like(
    data: np.ndarray, canonical_img: SpatialImage, original_img: SpatialImage
) -> np.ndarray:
    """Bring an array computed on ``canonical_img``'s grid back to ``original_img``'s grid.

    The inverse of :func:`to_canonical`: axis permutations and flips only, so every voxel lands
    exactly where it came from and a left-right flipped input yields mirror-image results.
    Extra trailing axes (e.g. class probabilities ``(X, Y, Z, C)``) are carried along.

    Parameters
    ----------
    data
        Array whose first three axes match ``canonical_img.shape[:3]``.
    canonical_img
        The image the array was computed on (usually ``to_canonical(original_img)``).
    original_img
        The image whose grid the result must match.

    Returns
    -------
    numpy.ndarray
        Array whose first three axes match ``original_img.shape[:3]``; pair it with
        ``original_img.affine``.

    Raises
    ------
    ValueError
        When ``data`` does not fit ``canonical_img`` or the two images are not the same grid up
        to axis permutations and flips (then resampling, not reorientation, is needed).
    """
    data = np.asanyarray(data)
    cshape = tuple(canonical_img.shape[:3])
    if data.ndim < 3 or tuple(data.shape[:3]) != cshape:
        raise ValueError(f"array of shape {data.shape} does not fit the canonical grid {cshape}")
    caff = np.asarray(canonical_img.affine, dtype=float)
    oaff = np.asarray(original_img.affine, dtype=float)
    ornt = _orientation_transform(caff, oaff)
    out = nib.orientations.apply_orientation(data, ornt)
    # The affine this reorientation implies must be the original one; otherwise the arrays
    # belong to different grids and flipping axes would silently misplace every voxel.
    implied = caff @ nib.orientations.inv_ornt_aff(ornt, cshape)
    if tuple(out.shape[:3]) != tuple(original_img.shape[:3]) or not np.allclose(
        implied, oaff, rtol=0.0, atol=1e-4
    ):
        raise ValueError(
            "the canonical and original images are not the same voxel grid up to axis flips "
            "and permutations; resample instead of reorienting"
        )
    return np.ascontiguousarray(out)


# --- writing -----------------------------------------------------------------------------------
