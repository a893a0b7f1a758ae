"""The group figures: growth curves (every volume and fraction against age), and distributions.

The growth curves show the age model's fitted median with its 5-95 % and 25-75 % centile bands
(:mod:`.agemodel`) where there is one, and fall back to a scatter with a LOWESS or straight
trend otherwise. Each figure is written as PNG and SVG, with outliers marked and labelled. They are drawn on a
matplotlib ``Figure`` with the Agg canvas (no pyplot, no global backend); a fixed SVG hash salt
and a fixed jitter make reruns byte-identical, and every file is saved under a temporary name
and renamed, so an interrupted run never leaves half a figure.
"""

from __future__ import annotations

import logging
import os
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..labels import BRAIN_COLOUR, TISSUE_TABLE
from ..utils.atomic import write_atomic
from ._common import _unit_label
from .agemodel import AgeModel
from .read import SessionVolumes
from .stats import Outlier

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
#: Centile bands drawn around the age model's median (outer first), in %.
CENTILE_BANDS: tuple[tuple[float, float], ...] = ((5.0, 95.0), (25.0, 75.0))


def trend_line(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, str] | None:
    """The trend drawn when there is no age model: statsmodels' LOWESS (Cleveland 1979: 2/3 of
    the points per local line, 2 robustness iterations) from :data:`MIN_POINTS_LOWESS` points
    and 4 distinct ages, a least-squares line from :data:`MIN_POINTS_LINEAR`, else None.

    Returns
    -------
    (ages, values, label) or None
        The curve, sorted by age, and its legend label.
    """
    distinct = np.unique(x).size
    if x.size >= MIN_POINTS_LOWESS and distinct >= 4:
        from statsmodels.nonparametric.smoothers_lowess import lowess

        fit = lowess(y, x, frac=2.0 / 3.0, it=2, return_sorted=True)
        return fit[:, 0], fit[:, 1], "LOWESS"
    if x.size >= MIN_POINTS_LINEAR and distinct >= 2:
        slope, intercept = np.polyfit(x, y, 1)
        grid = np.array([x.min(), x.max()])
        return grid, intercept + slope * grid, "linear fit"
    return None


def _draw_age_model(ax: Any, model: AgeModel, scale: float) -> None:
    """The model's median and centile bands over the ages it was fitted on."""
    grid = np.linspace(*model.age_range, 100)
    for (lo, hi), alpha in zip(CENTILE_BANDS, (0.12, 0.25), strict=True):
        ax.fill_between(
            grid,
            model.centile_curve(grid, lo) * scale,
            model.centile_curve(grid, hi) * scale,
            color="black",
            alpha=alpha,
            lw=0,
            zorder=1,
            label=f"{lo:g}-{hi:g} %",
        )
    ax.plot(grid, model.expected(grid) * scale, color="black", lw=1.5, zorder=2, label="median")


def _growth_panel(
    ax: Any,
    aged: Sequence[SessionVolumes],
    flags: set[tuple[str, str | None, str]],
    tissue: str,
    measure: str,
    model: AgeModel | None,
) -> None:
    fraction = measure.endswith("_fraction")
    scale = 1.0 if fraction else 1e-3  # mm³ -> cm³
    pairs = [(i, r.measures()[measure]) for i, r in enumerate(aged)]
    pairs = [(i, v) for i, v in pairs if v is not None]
    idx = [i for i, _ in pairs]
    ages = np.array([aged[i].age_months for i in idx], dtype=float)
    vals = np.array([v for _, v in pairs], dtype=float) * scale
    out = np.array([(aged[i].subject, aged[i].session, measure) in flags for i in idx], bool)
    by_subject: dict[str, list[int]] = {}
    for k, i in enumerate(idx):
        by_subject.setdefault(aged[i].subject, []).append(k)
    for ks in by_subject.values():  # the sessions of one infant, joined
        if len(ks) > 1:
            order = sorted(ks, key=lambda k: ages[k])
            ax.plot(ages[order], vals[order], color="#bbbbbb", lw=0.8, zorder=1)
    if model is not None:
        _draw_age_model(ax, model, scale)
    else:
        trend = trend_line(ages[~out], vals[~out])
        if trend is not None:
            ax.plot(trend[0], trend[1], color="black", lw=1.5, zorder=2, label=trend[2])
    ax.scatter(ages[~out], vals[~out], s=22, color=_COLORS[tissue], zorder=3, label="session")
    if out.any():
        ax.scatter(
            ages[out], vals[out], s=60, marker="X", color=_OUTLIER_COLOR, zorder=4, label="outlier"
        )
        for k in np.flatnonzero(out):
            ax.annotate(
                _unit_label(aged[idx[k]].subject, aged[idx[k]].session),
                (ages[k], vals[k]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=7,
                color=_OUTLIER_COLOR,
            )
    ax.set_title(f"{tissue} {'fraction' if fraction else 'volume'}")
    ax.set_xlabel("age (months)")
    ax.set_ylabel("fraction of brain" if fraction else "volume (cm³)")
    ax.grid(alpha=0.3)


def _plot_vs_age(
    records: Sequence[SessionVolumes],
    flagged: Iterable[Outlier],
    stem: Path,
    models: Mapping[str, AgeModel],
    note: str,
) -> list[Path]:
    """Growth curves: every volume and fraction against age, with the age model's median and
    centile bands where there is one (else a LOWESS or straight trend), outliers marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    flags = _flag_set(flagged)
    aged = [r for r in records if r.age_months is not None]
    fig = Figure(figsize=(14, 7.5))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 4)
    panels = [(axes[0, i], *p) for i, p in enumerate(_PANELS_VOLUME)]
    panels += [(axes[1, i], *p) for i, p in enumerate(_PANELS_FRACTION)]
    for ax, tissue, measure in panels:
        _growth_panel(ax, aged, flags, tissue, measure, models.get(measure))
    # the last cell holds the legend and says which model drew the curves
    key = axes[1, 3]
    key.set_axis_off()
    entries: dict[str, Any] = {}  # every panel's entries once (outliers may be in one only)
    for ax, *_ in panels:
        for handle, text in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(text, handle)
    key.legend(list(entries.values()), list(entries), loc="upper left", fontsize=8, frameon=False)
    text = "\n".join(textwrap.wrap(note or "no age model", 42))
    key.text(0.0, 0.35, text, fontsize=7.5, va="top", transform=key.transAxes)
    unknown = len(records) - len(aged)
    title = f"Tissue volumes and fractions against age ({len(aged)} sessions"
    title += f"; {unknown} without age not shown)" if unknown else ")"
    fig.suptitle(title)
    # Fixed margins: a layout engine would re-measure every text at each save (slow, and
    # the figures' content is fixed).
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.08, top=0.92, wspace=0.3, hspace=0.35)
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
    records: Sequence[SessionVolumes],
    flagged: Iterable[Outlier],
    group_dir: str | os.PathLike[str],
    *,
    models: Mapping[str, AgeModel] | None = None,
    note: str = "",
) -> list[Path]:
    """Write the distribution figures, and the growth curves when any age is known.

    ``models`` are the age models by measure (:attr:`.outliers.OutlierScores.models`) and
    ``note`` the sentence saying which model was used or why none (shown in the figure).

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
            written += _plot_vs_age(records, flagged, group / FIGURE_VS_AGE, models or {}, note)
        else:
            LOGGER.info("no session has a known age: the volume-vs-age figure is not made")
            for fmt in FIGURE_FORMATS:
                (group / f"{FIGURE_VS_AGE}.{fmt}").unlink(missing_ok=True)
    return written
