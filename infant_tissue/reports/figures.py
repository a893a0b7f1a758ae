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

#: Orientation name -> nilearn display mode and the world axis it cuts along.
ORIENTATIONS = {"sagittal": ("x", 0), "coronal": ("y", 1), "axial": ("z", 2)}
#: Colours of the NiPreps dseg labels 1 GM, 2 WM, 3 CSF (and the probability maps).
TISSUE_COLOURS = {"GM": "#f0a030", "WM": "#3ec46d", "CSF": "#3a8ee6"}
DSEG_CMAP = ListedColormap([TISSUE_COLOURS["GM"], TISSUE_COLOURS["WM"], TISSUE_COLOURS["CSF"]])
ROW_HEIGHT = 2.3
WIDTH = 12.0
DPI = 90


def brain_cuts(mask_file: str | Path, axis: int, n_cuts: int) -> list[float]:
    """``n_cuts`` world coordinates along ``axis`` spread over the mask's 10th–90th percentile."""
    img = nib.load(mask_file)
    ijk = np.argwhere(np.asanyarray(img.dataobj) > 0)
    if ijk.size == 0:
        ijk = np.argwhere(np.ones(img.shape[:3], dtype=bool))
    world = nib.affines.apply_affine(img.affine, ijk[:: max(1, len(ijk) // 20000)])
    low, high = np.percentile(world[:, axis], [10, 90])
    return [float(c) for c in np.linspace(low, high, n_cuts)]


def _brain_smoothed(image_file: str | Path, mask_file: str | Path) -> nib.Nifti1Image:
    from nilearn.image import resample_to_img, smooth_img
    from scipy.ndimage import binary_dilation

    img = nib.load(image_file)
    mask = resample_to_img(
        nib.load(mask_file), img, interpolation="nearest", force_resample=True, copy_header=True
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
    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=DPI, facecolor=fig.get_facecolor())
    plt.close(fig)
    tmp.replace(out)
    return out


def _anat_in_three_orientations(
    anat_file: str | Path,
    mask_file: str | Path,
    out_file: str | Path,
    title: str,
    overlay: Callable[[Any], None],
) -> Path:
    """Seven slices per orientation of ``anat_file``, each row's display passed to ``overlay``."""
    fig, axes = _rows_figure(3)
    for ax, (name, (mode, axis)) in zip(axes, ORIENTATIONS.items(), strict=True):
        display = plotting.plot_anat(
            str(anat_file),
            display_mode=mode,
            cut_coords=brain_cuts(mask_file, axis, 7),
            axes=ax,
            figure=fig,
            draw_cross=False,
            title=f"{title} ({name})",
            dim=-0.3,
        )
        overlay(display)
    return _save(fig, out_file)


def plot_registration(
    t1w_file: str | Path, t2w_file: str | Path, mask_file: str | Path, out_file: str | Path
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
    anat_file: str | Path, mask_file: str | Path, out_file: str | Path, label: str
) -> Path:
    """The brain mask's outline on an anatomical image, in three orientations."""
    return _anat_in_three_orientations(
        anat_file,
        mask_file,
        out_file,
        f"brain mask on {label}",
        lambda d: d.add_contours(str(mask_file), levels=[0.5], colors="r", linewidths=1.2),
    )


def plot_tissue_mosaic(
    t1w_file: str | Path,
    dseg_file: str | Path,
    mask_file: str | Path,
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
            str(dseg_file),
            bg_img=str(t1w_file),
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
    t1w_file: str | Path,
    probseg_files: dict[str, str | Path],
    out_file: str | Path,
) -> Path:
    """One orthogonal view per tissue probability map (threshold 0.05), over the T1w."""
    fig, axes = _rows_figure(len(probseg_files))
    for ax, (tissue, path) in zip(axes, probseg_files.items(), strict=True):
        plotting.plot_img(
            str(path),
            bg_img=str(t1w_file),
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
