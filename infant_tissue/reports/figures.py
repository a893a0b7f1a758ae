"""Report figures, drawn with nilearn's plotting on matplotlib (headless: Agg).

Every function takes image paths, writes one PNG and returns its path. Slices are placed
evenly across the brain mask, in world coordinates, so the same anatomy is shown for every
session whatever the field of view or the orientation of the file.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)

import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from nilearn import plotting  # noqa: E402

from ..labels import TISSUE_TABLE  # noqa: E402
from ..utils.atomic import write_atomic  # noqa: E402

#: Orientation name -> nilearn display mode and the world axis it cuts along.
ORIENTATIONS = {"sagittal": ("x", 0), "coronal": ("y", 1), "axial": ("z", 2)}
#: Colours of the tissues (and of the NiPreps dseg labels, in their order), from the tissue table.
TISSUE_COLOURS = {t.name: t.colour for t in TISSUE_TABLE}
DSEG_CMAP = ListedColormap([t.colour for t in sorted(TISSUE_TABLE, key=lambda t: t.nipreps_index)])
#: How the captions name them.
TISSUE_COLOUR_NAMES = "GM orange, WM green, CSF blue"
ROW_HEIGHT = 2.3
WIDTH = 12.0
DPI = 90


#: Images larger than this (after cropping to the brain) are shown at a coarser grid: nilearn
#: resamples every layer of every panel, which takes minutes per figure on 0.8 mm 320³ data.
MAX_DISPLAY_VOXELS = 2_500_000

Image = str | Path | nib.Nifti1Image


def as_image(image: Image) -> nib.Nifti1Image:
    return image if isinstance(image, nib.Nifti1Image) else nib.load(str(image))


def display_images(
    files: dict[str, Path], mask_key: str = "mask", margin: int = 6
) -> dict[str, nib.Nifti1Image]:
    """The session's images (all on the T1w grid) cropped to the brain mask's bounding box and,
    when still larger than :data:`MAX_DISPLAY_VOXELS`, subsampled by an integer step, in memory.

    Only what is shown changes: crop and step are voxel slices, so world coordinates (and the
    cut positions) are those of the stored files.
    """
    mask = nib.load(str(files[mask_key]))
    inside = np.argwhere(np.asanyarray(mask.dataobj) > 0)
    shape = np.array(mask.shape[:3])
    lo = np.maximum(inside.min(0) - margin, 0) if inside.size else np.zeros(3, int)
    hi = np.minimum(inside.max(0) + margin + 1, shape) if inside.size else shape
    n_voxels = float(np.prod(hi - lo))
    step = max(1, int(np.ceil((n_voxels / MAX_DISPLAY_VOXELS) ** (1 / 3))))
    window = tuple(slice(int(a), int(b), step) for a, b in zip(lo, hi, strict=True))
    images = {}
    for key, path in files.items():
        if not str(path).endswith((".nii", ".nii.gz")):
            continue
        img = nib.load(str(path))
        if img.shape[:3] != mask.shape[:3]:
            images[key] = img
            continue
        part = img.slicer[window]
        data = np.asanyarray(part.dataobj)
        data = data.astype(np.uint8 if data.dtype.kind in "ui" and data.max() < 256 else np.float32)
        images[key] = nib.Nifti1Image(data, part.affine)
    return images


def brain_cuts(mask_file: Image, axis: int, n_cuts: int) -> list[float]:
    """``n_cuts`` world coordinates along ``axis`` spread over the mask's 10th–90th percentile."""
    img = as_image(mask_file)
    ijk = np.argwhere(np.asanyarray(img.dataobj) > 0)
    if ijk.size == 0:
        ijk = np.argwhere(np.ones(img.shape[:3], dtype=bool))
    world = nib.affines.apply_affine(img.affine, ijk[:: max(1, len(ijk) // 20000)])
    low, high = np.percentile(world[:, axis], [10, 90])
    return [float(c) for c in np.linspace(low, high, n_cuts)]


def brain_window(image: Image, mask: Image) -> tuple[float, float]:
    """Grey-level window from the 1st–99th percentiles inside the brain: the automatic window of
    a skull-stripped or bias-corrected infant image is set by a few bright voxels (vessels, CSF
    in T2w) and shows the tissue as a flat white or black."""
    data = np.asanyarray(as_image(image).dataobj)
    inside = np.asanyarray(as_image(mask).dataobj) > 0
    values = data[inside] if inside.shape == data.shape[:3] and inside.any() else data[data > 0]
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(values, [1, 99])
    return float(low), float(max(high, low + 1e-6))


def _brain_smoothed(image_file: Image, mask_file: Image) -> nib.Nifti1Image:
    from nilearn.image import resample_to_img, smooth_img
    from scipy.ndimage import binary_dilation

    img = as_image(image_file)
    mask = resample_to_img(
        as_image(mask_file), img, interpolation="nearest", force_resample=True, copy_header=True
    )
    inside = binary_dilation(np.asanyarray(mask.dataobj) > 0, iterations=3)
    smoothed = smooth_img(img, fwhm=2.0)
    data = np.where(inside, np.asanyarray(smoothed.dataobj), 0).astype(np.float32)
    return nib.Nifti1Image(data, img.affine)


def _rows_figure(n_rows: int):
    fig = plt.figure(figsize=(WIDTH, ROW_HEIGHT * n_rows), facecolor="black")
    axes = [fig.add_axes((0, 1 - (i + 1) / n_rows, 1, 1 / n_rows)) for i in range(n_rows)]
    return fig, axes


def _save(fig, out_file: str | Path) -> Path:
    try:
        return write_atomic(
            lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, facecolor=fig.get_facecolor()),
            out_file,
        )
    finally:
        plt.close(fig)


def _anat_in_three_orientations(
    anat_file: Image,
    mask_file: Image,
    out_file: str | Path,
    title: str,
    overlay: Callable[[Any], None],
    cuts_mask: Image | None = None,
) -> Path:
    """Seven slices per orientation of ``anat_file``, each row's display passed to ``overlay``;
    slices spread over ``cuts_mask`` (default: the brain mask)."""
    fig, axes = _rows_figure(3)
    vmin, vmax = brain_window(anat_file, mask_file)
    for ax, (name, (mode, axis)) in zip(axes, ORIENTATIONS.items(), strict=True):
        display = plotting.plot_anat(
            as_image(anat_file),
            display_mode=mode,
            cut_coords=brain_cuts(cuts_mask if cuts_mask is not None else mask_file, axis, 7),
            axes=ax,
            figure=fig,
            draw_cross=False,
            title=f"{title} ({name})",
            vmin=vmin,
            vmax=vmax,
            dim=0,
            colorbar=False,  # a grey-level bar of the anatomy would read as the overlay's scale
        )
        overlay(display)
    return _save(fig, out_file)


def plot_registration(
    t1w_file: Image, t2w_file: Image, mask_file: Image, out_file: str | Path
) -> Path:
    """T2w edges (red) drawn over the T1w in three orientations: a slipped registration shows
    as edges off the T1w's boundaries.

    The T2w is smoothed (FWHM 2 mm) and cut to the dilated brain mask first: edge detection on
    the raw image outlines noise outside the head rather than the anatomy.
    """
    edges = _brain_smoothed(t2w_file, mask_file)
    return _anat_in_three_orientations(
        t1w_file, mask_file, out_file, "T2w edges on T1w", lambda d: d.add_edges(edges, color="r")
    )


def plot_mask_contours(
    anat_file: Image, mask_file: Image, out_file: str | Path, label: str
) -> Path:
    """The brain mask's outline on an anatomical image, in three orientations."""
    return _anat_in_three_orientations(
        anat_file,
        mask_file,
        out_file,
        f"brain mask on {label}",
        lambda d: d.add_contours(as_image(mask_file), levels=[0.5], colors="r", linewidths=1.2),
    )


def plot_removed_region(
    t1w_file: Image, mask_file: Image, removed_file: Image, out_file: str | Path
) -> Path:
    """The removed cerebellum + brain-stem region's outline (blue) with the brain mask's (red)
    on the T1w, in three orientations, slices spread over the removed region."""

    def overlay(display) -> None:
        display.add_contours(as_image(mask_file), levels=[0.5], colors="r", linewidths=0.8)
        display.add_contours(as_image(removed_file), levels=[0.5], colors="b", linewidths=1.4)

    return _anat_in_three_orientations(
        t1w_file, mask_file, out_file, "removed region on T1w", overlay, cuts_mask=removed_file
    )


def plot_disagreement(
    t1w_file: Image, mask_file: Image, map_file: Image, out_file: str | Path, what: str
) -> Path:
    """An uncertainty map (disagreement or entropy, 0-1) over the T1w in three orientations,
    shown above 0.1 with the brain mask's outline: where the ensemble should not be trusted."""

    def overlay(display) -> None:
        display.add_overlay(
            as_image(map_file), cmap="hot", vmin=0.0, vmax=1.0, threshold=0.1, colorbar=True
        )
        display.add_contours(as_image(mask_file), levels=[0.5], colors="c", linewidths=0.6)

    return _anat_in_three_orientations(t1w_file, mask_file, out_file, what, overlay)


def plot_tissue_mosaic(
    t1w_file: Image,
    dseg_file: Image,
    mask_file: Image,
    out_file: str | Path,
    orientation: str,
    n_cuts: int = 14,
) -> Path:
    """The dseg (1 GM, 2 WM, 3 CSF) over the T1w, ``n_cuts`` slices of one orientation in two
    rows."""
    mode, axis = ORIENTATIONS[orientation]
    cuts = brain_cuts(mask_file, axis, n_cuts)
    half = (len(cuts) + 1) // 2
    fig, axes = _rows_figure(2)
    for i, (ax, row_cuts) in enumerate(zip(axes, (cuts[:half], cuts[half:]), strict=True)):
        plotting.plot_roi(
            as_image(dseg_file),
            bg_img=as_image(t1w_file),
            display_mode=mode,
            cut_coords=row_cuts,
            axes=ax,
            figure=fig,
            cmap=DSEG_CMAP,
            vmin=0.5,
            vmax=3.5,
            alpha=0.45,
            colorbar=False,
            draw_cross=False,
            title=f"tissues ({orientation}): GM orange, WM green, CSF blue" if i == 0 else None,
        )
    return _save(fig, out_file)


def plot_probability_maps(
    t1w_file: Image,
    probseg_files: dict[str, Image],
    out_file: str | Path,
) -> Path:
    """One orthogonal view per tissue probability map (threshold 0.05), over the T1w."""
    fig, axes = _rows_figure(len(probseg_files))
    for ax, (tissue, path) in zip(axes, probseg_files.items(), strict=True):
        plotting.plot_img(
            as_image(path),
            bg_img=as_image(t1w_file),
            display_mode="ortho",
            axes=ax,
            figure=fig,
            cmap="inferno",
            vmin=0.0,
            vmax=1.0,
            threshold=0.05,
            colorbar=True,
            draw_cross=False,
            black_bg=True,
            title=f"{tissue} probability",
        )
    return _save(fig, out_file)


def read_cohort_table(path: str | Path) -> list[dict[str, str]]:
    """Rows of ``group/tissue_volumes.tsv``."""
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "", "n/a") else None
    except ValueError:
        return None


def plot_session_vs_cohort(
    cohort_rows: Sequence[dict[str, str]],
    subject: str,
    session: str | None,
    out_file: str | Path,
) -> Path:
    """Each tissue's volume against age for the cohort (grey), this session in red."""
    measures = [("CSF", "csf_mm3"), ("GM", "gm_mm3"), ("WM", "wm_mm3"), ("brain", "brain_mm3")]
    fig, axes = plt.subplots(1, len(measures), figsize=(WIDTH, 3.0), layout="constrained")
    this = [
        r
        for r in cohort_rows
        if r.get("subject") == f"sub-{subject}"
        and (r.get("session") or "n/a") == (f"ses-{session}" if session else "n/a")
    ]
    rng = np.random.default_rng(0)
    for ax, (name, column) in zip(axes, measures, strict=True):
        ages = [_number(r.get("age_months")) for r in cohort_rows]
        values = [_number(r.get(column)) for r in cohort_rows]
        have_age = all(a is not None for a in ages)
        xs = ages if have_age else list(rng.uniform(-0.2, 0.2, len(values)))
        pts = [(x, v / 1000) for x, v in zip(xs, values, strict=True) if v is not None]
        if pts:
            ax.scatter(*zip(*pts, strict=True), s=14, c="0.6", label=f"cohort (n={len(pts)})")
        for row in this:
            value = _number(row.get(column))
            if value is None:
                continue
            x = _number(row.get("age_months")) if have_age else 0.0
            ax.scatter([x], [value / 1000], s=80, c="red", marker="*", label="this session")
        ax.set_title(name)
        ax.set_xlabel("age (months)" if have_age else "")
        if not have_age:
            ax.set_xticks([])
        ax.set_ylabel("volume (cm³)")
    axes[0].legend(fontsize=7, loc="best")
    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=DPI)
    plt.close(fig)
    tmp.replace(out)
    return out
