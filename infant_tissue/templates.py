"""Infant templates from TemplateFlow, read locally and never downloaded at run time."""

from __future__ import annotations

import os
from pathlib import Path

TEMPLATE = "MNIInfant"
#: ``desc`` of the cerebellum + brain-stem mask of each cohort (file contract, see
#: :func:`removal_template`)
REMOVAL_DESC = "cerebellumbrainstem"


class TemplateNotFoundError(FileNotFoundError):
    """A template file is not available in the local TemplateFlow home."""


def templateflow_home() -> Path:
    return Path(os.environ.get("TEMPLATEFLOW_HOME", Path.home() / ".cache" / "templateflow"))


def _fetch_hint(cohort: int) -> str:
    return (
        f"fetch it beforehand on a machine with network access: TEMPLATEFLOW_HOME={templateflow_home()} "
        f"python -c \"import templateflow.api as tf; tf.get('{TEMPLATE}', cohort={cohort}, "
        'resolution=1)", or mount a TemplateFlow folder and set TEMPLATEFLOW_HOME'
    )


def _template_file(cohort: int, suffix: str, desc: str | None) -> Path:
    """One ``tpl-MNIInfant`` cohort file at 1 mm, listed through the ``templateflow`` API from
    ``TEMPLATEFLOW_HOME`` (``ls`` only reads the local index; ``get`` would try to download),
    else read by its path (files TemplateFlow does not index, e.g. the removal mask of an
    offline home prepared by a lab); it must be present and non-empty."""
    os.environ.setdefault("TEMPLATEFLOW_AUTOUPDATE", "0")
    home = templateflow_home()
    expected = (
        home / f"tpl-{TEMPLATE}" / f"cohort-{cohort}" / f"tpl-{TEMPLATE}_cohort-{cohort}_res-1"
        f"{'_desc-' + desc if desc else ''}_{suffix}.nii.gz"
    )
    paths: list[Path] = []
    if home.is_dir() and any(home.iterdir()):
        import templateflow.api as tflow

        try:
            listed = tflow.ls(
                TEMPLATE, cohort=cohort, resolution=1, extension=".nii.gz", suffix=suffix, desc=desc
            )
        except Exception:  # an unindexable home is reported as "missing" below
            listed = []
        paths = [Path(p) for p in (listed if isinstance(listed, list) else [listed]) if p]
    # templateflow indexes the home it saw when first imported: keep only files of this home
    paths = [p for p in paths if p.resolve().is_relative_to(home.resolve())]
    paths = [p for p in [*paths, expected] if p.is_file() and p.stat().st_size > 0]
    if not paths:
        raise TemplateNotFoundError(
            f"{expected}: TemplateFlow template file missing; {_fetch_hint(cohort)}"
        )
    return paths[0]


def infant_template(cohort: int) -> tuple[Path, Path]:
    """T1w template and its brain mask of ``tpl-MNIInfant`` ``cohort`` at 1 mm."""
    return _template_file(cohort, "T1w", None), _template_file(cohort, "mask", "brain")


def removal_template(cohort: int) -> tuple[Path, Path, Path]:
    """T2w template, brain mask and cerebellum + brain-stem mask of ``cohort`` at 1 mm.

    The removal mask follows this file contract (TemplateFlow does not publish it; the image
    build derives it, see :mod:`infant_tissue.anat.cerebellum`):
    ``TEMPLATEFLOW_HOME/tpl-MNIInfant/cohort-N/tpl-MNIInfant_cohort-N_res-1_desc-``
    ``cerebellumbrainstem_mask.nii.gz``, 1 inside cerebellum and brain stem, on the grid of the
    cohort's ``res-1`` T1w.
    """
    return (
        _template_file(cohort, "T2w", None),
        _template_file(cohort, "mask", "brain"),
        _template_file(cohort, "mask", REMOVAL_DESC),
    )
