"""The per-session report ``output_dir/sub-X[_ses-Y].html`` and its figures.

Everything is read back from the output folder (derivatives, the run record, crash files), so a
report can be made again at any time: the group level does so to add the cohort panel.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import layout
from . import figures
from .boilerplate import methods_from_info
from .html import relative_link, render_report
from .runtime import RunRecord, load_run_record

LOGGER = logging.getLogger("infant_tissue.reports")


def latest_crash_file(output_dir: Path, subject: str, session: str | None) -> Path | None:
    crashes = layout.crash_files(output_dir, subject, session)
    return crashes[-1] if crashes else None


@dataclass
class Figure:
    """One figure of the report: its anchor, title, caption and (once made) its file."""

    key: str
    title: str
    caption: str
    path: Path | None = None
    error: str = ""


@dataclass
class SessionReport:
    """What :func:`generate_session_report` wrote."""

    path: Path
    status: str
    figures: list[Figure] = field(default_factory=list)
    seconds: float = 0.0


def _volume_rows(path: Path | None) -> list[dict[str, str]]:
    if path is None:
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _read_json(path: Path | None) -> dict:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _figure_plan(
    files: dict[str, Path], shown: dict, out: Path, prefix: str
) -> list[tuple[Figure, Callable[[Path], Path]]]:
    """The figures this session's files allow, each with the call that draws it from ``shown``
    (filled with the display images only when some figure is actually drawn)."""
    plan: list[tuple[Figure, Callable[[Path], Path]]] = []

    def add(key, title, caption, name, draw, *needs):
        if all(n in files for n in needs):
            plan.append((Figure(key, title, caption, out / f"{prefix}_{name}.png"), draw))

    add(
        "registration",
        "T2w to T1w registration",
        "Edges of the registered T2w (red) over the T1w. The red lines should follow the "
        "T1w's tissue boundaries; a constant offset means the registration slipped.",
        "desc-registration_T2w",
        lambda p: figures.plot_registration(shown["t1w"], shown["t2w"], shown["mask"], p),
        "t1w",
        "t2w",
        "mask",
    )
    for label, key in (("T1w", "t1w"), ("T2w", "t2w")):
        add(
            f"brainmask-{label.lower()}",
            f"Brain mask on the {label}",
            f"Outline of the brain mask (red) on the preprocessed {label}. It should follow "
            "the brain's surface without cutting cortex or including skull, eyes or neck.",
            f"desc-brain{label}_mask",
            lambda p, k=key, lab=label: figures.plot_mask_contours(shown[k], shown["mask"], p, lab),
            key,
            "mask",
        )
    add(
        "removed-region",
        "Cerebellum and brain stem removed",
        "Outline of the region removed before segmentation (blue) over the T1w: the age-matched "
        "template's cerebellum + brain-stem mask warped to this brain. It should hold the "
        "cerebellum and the brain stem and stop at the tentorium, taking no occipital or "
        "temporal cortex.",
        "desc-cerebellumbrainstem_mask",
        lambda p: figures.plot_removed_region(shown["t1w"], shown["mask"], shown["removed"], p),
        "t1w",
        "mask",
        "removed",
    )
    for orientation in ("axial", "coronal", "sagittal"):
        add(
            f"tissues-{orientation}",
            f"Tissues, {orientation}",
            f"Label map over the T1w: {figures.TISSUE_COLOUR_NAMES}. Look for WM/GM swaps in "
            "poorly myelinated regions and CSF leaking outside the brain.",
            f"desc-{orientation}_dseg",
            lambda p, o=orientation: figures.plot_tissue_mosaic(
                shown["t1w"], shown["dseg"], shown["mask"], p, o
            ),
            "t1w",
            "dseg",
            "mask",
        )
    # the members' disagreement when the bundle has several, else the entropy of the one
    uncertainty = "disagreement" if "disagreement" in files else "entropy"
    add(
        "uncertainty",
        f"Ensemble {uncertainty}",
        (
            "Share of the ensemble members whose own label differs from the voted label "
            "(hot colours above 0.1; 0.5 and more: half the members or more disagree)."
            if uncertainty == "disagreement"
            else "Entropy of the mean tissue probabilities (0 certain, 1 uniform; above 0.1)."
        )
        + " Clusters of it mark where the segmentation should not be trusted: look there "
        "first. A thin rim along tissue boundaries is normal.",
        f"desc-{uncertainty}_probseg",
        lambda p: figures.plot_disagreement(
            shown["t1w"], shown["mask"], shown[uncertainty], p, uncertainty
        ),
        "t1w",
        "mask",
        uncertainty,
    )
    tissues = [t for t in ("CSF", "GM", "WM") if f"prob_{t}" in files]
    if len(tissues) == 3 and "t1w" in files:
        plan.append(
            (
                Figure(
                    "probabilities",
                    "Tissue probability maps",
                    "Ensemble-mean probability of each tissue (shown above 0.05).",
                    out / f"{prefix}_desc-tissues_probseg.png",
                ),
                lambda p: figures.plot_probability_maps(
                    shown["t1w"], {t: shown[f"prob_{t}"] for t in tissues}, p
                ),
            )
        )
    return plan


#: How each QC metric is shown in the report: label and format.
QC_METRIC_LABELS: dict[str, tuple[str, str]] = {
    "disagreement_mean": ("Mean ensemble disagreement in the brain", "{:.3f}"),
    "disagreement_high_share": ("Brain share where half the members or more disagree", "{:.1%}"),
    "entropy_mean": ("Mean entropy of the ensemble probabilities", "{:.3f}"),
    "registration_cr": ("T2w/T1w alignment, correlation ratio after registration", "{:.2f}"),
    "registration_cr_before": ("... before registration (headers only)", "{:.2f}"),
    "t1w_t2w_correlation": ("Correlation of T1w and T2w intensities in the brain", "{:.2f}"),
    "brain_mask_ml": ("Brain-mask volume (mL)", "{:.0f}"),
    "brain_mask_expected_ml": ("Expected at this age (mL)", "{:.0f}"),
    "brain_mask_ratio": ("Brain-mask volume / expected", "{:.2f}"),
    "cnr_gm_wm_t1w": ("GM/WM contrast-to-noise, T1w (low at 6 months: isointense)", "{:.2f}"),
    "cnr_gm_wm_t2w": ("GM/WM contrast-to-noise, T2w", "{:.2f}"),
    "window_coverage": ("Brain share covered by the evaluated windows", "{:.1%}"),
    "csf_fraction": ("CSF fraction", "{:.3f}"),
    "gm_fraction": ("GM fraction", "{:.3f}"),
    "wm_fraction": ("WM fraction", "{:.3f}"),
}


def _qc_panel(path: Path | None) -> dict | None:
    """The QC record as the report shows it (None without one; a broken one says why)."""
    if path is None:
        return None
    from ..qc import QCRecordError, read_session_qc

    try:
        record = read_session_qc(path)
    except QCRecordError as exc:
        return {"verdict": "n/a", "reasons": [str(exc)], "metrics": []}
    judged = {name: bounds for name, bounds in record.thresholds.items()}
    rows = []
    for name, value in record.metrics.items():
        label, fmt = QC_METRIC_LABELS.get(name, (name, "{:.3g}"))
        bounds = judged.get(name, {})
        rows.append(
            {
                "name": name,
                "label": label,
                "value": "n/a" if value is None else fmt.format(value),
                "warn": _bounds_text(bounds.get("warn"), fmt),
                "fail": _bounds_text(bounds.get("fail"), fmt),
            }
        )
    return {"verdict": record.verdict, "reasons": record.reasons, "metrics": rows}


def _bounds_text(bounds, fmt: str) -> str:
    if not bounds:
        return ""
    low, high = bounds
    if low is not None and high is not None:
        return f"{fmt.format(low)} to {fmt.format(high)}"
    return f"≥ {fmt.format(low)}" if low is not None else f"≤ {fmt.format(high)}"


def generate_session_report(
    output_dir: str | Path,
    subject: str,
    session: str | None,
    *,
    record: RunRecord | None = None,
    refresh_figures: bool = True,
) -> SessionReport:
    """Write ``output_dir/sub-X[_ses-Y].html`` and its figures under ``sub-X/figures/``.

    Parameters
    ----------
    output_dir
        The derivatives folder of the participant level.
    subject, session
        Labels without ``sub-``/``ses-``.
    record
        The run record (default: the one saved in ``sub-X/log``).
    refresh_figures
        Redraw figures that already exist (False when only the cohort panel changed).

    A figure that cannot be drawn is reported in the page, not raised: a report must still come
    out for a session whose outputs are odd, since that is when it is needed most.
    """
    started = time.time()
    output_dir = Path(output_dir)
    record = record or load_run_record(output_dir, subject, session)
    prefix = layout.session_prefix(subject, session)
    report_path = layout.report_path(output_dir, subject, session)
    files = layout.find_session_derivatives(output_dir, subject, session)
    crash = latest_crash_file(output_dir, subject, session)
    complete = "dseg" in files and "volumes" in files
    failed = not complete or (record is not None and record.status == "failed")
    status = "failed" if failed else "ok"
    crash_text = ""
    if failed and crash is not None:
        crash_text = crash.read_text(errors="replace")
    error = (record.error if record and record.error else "") or crash_text.split("\n", 1)[0]
    if failed and not error:
        error = "no outputs and no crash file: the session has not been run (or was interrupted)"

    made: list[Figure] = []
    fig_dir = layout.figures_dir(output_dir, subject)
    shown: dict = dict(files)
    plan = _figure_plan(files, shown, fig_dir, prefix) if not failed else []
    if any(refresh_figures or not fig.path.is_file() for fig, _ in plan) and "mask" in files:
        shown.update(figures.display_images(files))
    for fig, draw in plan:
        if refresh_figures or not fig.path.is_file():
            try:
                draw(fig.path)
            except Exception as exc:  # noqa: BLE001 - see docstring
                fig.error = f"{type(exc).__name__}: {exc}"
                LOGGER.warning("%s: figure %s failed: %s", prefix, fig.key, fig.error)
                fig.path = None
        made.append(fig)

    cohort_table = output_dir / "group" / "tissue_volumes.tsv"
    cohort = None
    if not failed and cohort_table.is_file():
        rows = figures.read_cohort_table(cohort_table)
        mine = f"sub-{subject}", f"ses-{session}" if session else "n/a"
        if any((r.get("subject"), r.get("session") or "n/a") == mine for r in rows):
            cohort = Figure(
                "cohort",
                "This session against the cohort",
                f"Tissue volumes of the {len(rows)} sessions in group/tissue_volumes.tsv "
                "(grey) and this session (red star).",
                fig_dir / f"{prefix}_desc-cohort_volumes.png",
            )
            try:
                figures.plot_session_vs_cohort(rows, subject, session, cohort.path)
            except Exception as exc:  # noqa: BLE001 - see docstring
                cohort.error, cohort.path = f"{type(exc).__name__}: {exc}", None

    info = _read_json(files.get("dseg_json"))
    qc = _qc_panel(files.get("qc"))
    methods, references = methods_from_info(info, record) if not failed else ("", [])
    warnings = list(record.warnings) if record else []
    warnings += [f"figure '{f.title}' could not be drawn: {f.error}" for f in made if f.error]
    context = {
        "title": f"infant-tissue report: {prefix}",
        "prefix": prefix,
        "subject": subject,
        "session": session,
        "status": status,
        "error": error,
        "crash_text": crash_text,
        "crash_link": relative_link(crash, report_path) if crash and failed else "",
        "record": record,
        "stages": record.stage_times() if record else {},
        "duration": record.duration if record else None,
        "info": info,
        "volumes": _volume_rows(files.get("volumes")),
        "figures": [
            {**vars(f), "link": relative_link(f.path, report_path) if f.path else ""} for f in made
        ],
        "cohort": {**vars(cohort), "link": relative_link(cohort.path, report_path)}
        if cohort and cohort.path
        else None,
        "warnings": warnings,
        "qc": qc,
        "methods": methods,
        "references": references,
        "outputs": {k: relative_link(v, report_path) for k, v in files.items()},
        "generated": dt.datetime.now().isoformat(timespec="seconds"),
        "started": dt.datetime.fromtimestamp(record.started).isoformat(timespec="seconds")
        if record
        else "",
    }
    render_report("session.html", report_path, **context)
    seconds = time.time() - started
    LOGGER.info("%s: report %s written in %.1f s", prefix, report_path, seconds)
    return SessionReport(report_path, status, made + ([cohort] if cohort else []), seconds)


def generate_session_reports(
    output_dir: str | Path, units: Sequence[tuple[str, str | None]], *, refresh_figures: bool
) -> list[SessionReport]:
    """:func:`generate_session_report` for several sessions; one failing never stops the rest."""
    reports = []
    for subject, session in units:
        try:
            reports.append(
                generate_session_report(
                    output_dir, subject, session, refresh_figures=refresh_figures
                )
            )
        except Exception as exc:  # noqa: BLE001 - reports are a by-product
            LOGGER.warning("%s: report failed: %s", layout.session_prefix(subject, session), exc)
    return reports
