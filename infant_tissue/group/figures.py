"""The group figures: tissue volume against age, and the distribution of every measure.

Each figure is written as PNG and SVG, with outliers marked and labelled. They are drawn on a
matplotlib ``Figure`` with the Agg canvas (no pyplot, no global backend); a fixed SVG hash salt
and a fixed jitter make reruns byte-identical, and every file is saved under a temporary name
and renamed, so an interrupted run never leaves half a figure.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..labels import BRAIN_COLOUR, TISSUE_TABLE
from ..utils.atomic import write_atomic
from ._common import _unit_label
from .read import SessionVolumes
from .stats import Outlier, lowess

LOGGER = logging.getLogger(__name__)


#: Figure file stems written to ``group/`` (each as ``.png`` and ``.svg``).
FIGURE_VS_AGE = "tissue_volumes_vs_age"
FIGURE_DISTRIBUTIONS = "tissue_volumes_distributions"
FIGURE_FORMATS: tuple[str, ...] = ("png", "svg")

#: Fewest aged sessions (and distinct ages) for a linear fit; for a LOWESS curve.
MIN_POINTS_LINEAR, MIN_POINTS_LOWESS = 3, 10


# --- figures ---------------------------------------------------------------------------------------


def _save_figure(fig: Any, path: Path) -> Path:
    """Save a matplotlib figure atomically; no date or software in the file, so reruns give
    byte-identical figures."""
    fmt = path.suffix.lstrip(".")
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    return write_atomic(lambda tmp: fig.savefig(tmp, format=fmt, metadata=metadata, dpi=120), path)


def _flag_set(flagged: Iterable[Outlier]) -> set[tuple[str, str | None, str]]:
    return {(o.subject, o.session, o.measure) for o in flagged}


_PANELS_VOLUME = (("CSF", "csf_mm3"), ("GM", "gm_mm3"), ("WM", "wm_mm3"), ("brain", "brain_mm3"))
_PANELS_FRACTION = (("CSF", "csf_fraction"), ("GM", "gm_fraction"), ("WM", "wm_fraction"))
#: One colour per tissue, the same as in the session reports (labels.TISSUE_TABLE).
_COLORS = {**{t.name: t.colour for t in TISSUE_TABLE}, "brain": BRAIN_COLOUR}
_OUTLIER_COLOR = "#d62728"


def _plot_vs_age(
    records: Sequence[SessionVolumes], flagged: Iterable[Outlier], stem: Path
) -> list[Path]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    flags = _flag_set(flagged)
    aged = [r for r in records if r.age_months is not None]
    fig = Figure(figsize=(10, 8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2).ravel()
    for ax, (tissue, measure) in zip(axes, _PANELS_VOLUME, strict=True):
        ages = np.array([r.age_months for r in aged], dtype=float)
        vols = np.array([r.measures()[measure] for r in aged], dtype=float) / 1000.0
        out = np.array([(r.subject, r.session, measure) in flags for r in aged], dtype=bool)
        by_subject: dict[str, list[int]] = {}
        for i, r in enumerate(aged):
            by_subject.setdefault(r.subject, []).append(i)
        for idx in by_subject.values():
            if len(idx) > 1:
                order = sorted(idx, key=lambda i: ages[i])
                ax.plot(ages[order], vols[order], color="#bbbbbb", lw=0.8, zorder=1)
        ax.scatter(ages[~out], vols[~out], s=22, color=_COLORS[tissue], zorder=2, label="session")
        if out.any():
            ax.scatter(
                ages[out],
                vols[out],
                s=60,
                marker="X",
                color=_OUTLIER_COLOR,
                zorder=3,
                label="outlier",
            )
            for i in np.flatnonzero(out):
                ax.annotate(
                    _unit_label(aged[i].subject, aged[i].session),
                    (ages[i], vols[i]),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=7,
                    color=_OUTLIER_COLOR,
                )
        keep = ~out
        fit_x, fit_y = ages[keep], vols[keep]
        distinct = np.unique(fit_x).size
        if fit_x.size >= MIN_POINTS_LOWESS and distinct >= 4:
            order = np.argsort(fit_x, kind="stable")
            smooth = lowess(fit_x[order], fit_y[order])
            ax.plot(fit_x[order], smooth, color="black", lw=1.5, zorder=2, label="LOWESS")
        elif fit_x.size >= MIN_POINTS_LINEAR and distinct >= 2:
            slope, intercept = np.polyfit(fit_x, fit_y, 1)
            grid = np.array([fit_x.min(), fit_x.max()])
            ax.plot(
                grid, intercept + slope * grid, color="black", lw=1.5, zorder=2, label="linear fit"
            )
        ax.set_title(f"{tissue} volume")
        ax.set_xlabel("age (months)")
        ax.set_ylabel("volume (cm³)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    unknown = len(records) - len(aged)
    title = f"Tissue volume vs age ({len(aged)} sessions"
    title += f"; {unknown} without age not shown)" if unknown else ")"
    fig.suptitle(title)
    # Fixed margins: a layout engine would re-measure every text at each save (slow, and
    # the figures' content is fixed).
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.07, top=0.91, wspace=0.25, hspace=0.32)
    return [_save_figure(fig, stem.with_suffix(f".{fmt}")) for fmt in FIGURE_FORMATS]


def _plot_distributions(
    records: Sequence[SessionVolumes], flagged: Iterable[Outlier], stem: Path
) -> list[Path]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    flags = _flag_set(flagged)
    rng = np.random.default_rng(0)  # fixed jitter: same data, same figure
    fig = Figure(figsize=(12, 7))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 4)
    panels = [(axes[0, i], *p, 1e-3, "volume (cm³)") for i, p in enumerate(_PANELS_VOLUME)]
    panels += [(axes[1, i], *p, 1.0, "fraction of brain") for i, p in enumerate(_PANELS_FRACTION)]
    axes[1, 3].set_axis_off()
    for ax, tissue, measure, scale, ylabel in panels:
        vals = np.array([r.measures()[measure] for r in records], dtype=float) * scale
        out = np.array([(r.subject, r.session, measure) in flags for r in records], dtype=bool)
        ax.boxplot(vals, widths=0.5, showfliers=False, medianprops={"color": "black"})
        x = 1.0 + rng.uniform(-0.15, 0.15, size=vals.size)
        ax.scatter(x[~out], vals[~out], s=16, color=_COLORS[tissue], alpha=0.8, zorder=3)
        if out.any():
            ax.scatter(x[out], vals[out], s=50, marker="X", color=_OUTLIER_COLOR, zorder=4)
            for i in np.flatnonzero(out):
                ax.annotate(
                    _unit_label(records[i].subject, records[i].session),
                    (x[i], vals[i]),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=7,
                    color=_OUTLIER_COLOR,
                )
        what = "volume" if scale != 1.0 else "fraction"
        ax.set_title(f"{tissue} {what}")
        ax.set_ylabel(ylabel)
        ax.set_xticks([])
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"Tissue volumes and fractions ({len(records)} sessions; outliers marked X)")
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.04, top=0.9, wspace=0.4, hspace=0.25)
    return [_save_figure(fig, stem.with_suffix(f".{fmt}")) for fmt in FIGURE_FORMATS]


def make_figures(
    records: Sequence[SessionVolumes], flagged: Iterable[Outlier], group_dir: str | os.PathLike[str]
) -> list[Path]:
    """Write the distribution figures, and the volume-vs-age figures when any age is known.

    A stale volume-vs-age figure from an earlier run is removed when no age is known now, so
    the folder never shows a figure of other data.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    import matplotlib

    group = Path(group_dir)
    group.mkdir(parents=True, exist_ok=True)
    flagged = list(flagged)
    written: list[Path] = []
    with matplotlib.rc_context({"svg.hashsalt": "infant-tissue", "svg.fonttype": "none"}):
        written += _plot_distributions(records, flagged, group / FIGURE_DISTRIBUTIONS)
        if any(r.age_months is not None for r in records):
            written += _plot_vs_age(records, flagged, group / FIGURE_VS_AGE)
        else:
            LOGGER.info("no session has a known age: the volume-vs-age figure is not made")
            for fmt in FIGURE_FORMATS:
                (group / f"{FIGURE_VS_AGE}.{fmt}").unlink(missing_ok=True)
    return written
