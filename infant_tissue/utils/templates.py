"""Infant templates from TemplateFlow: the age-matched cohort, its files read locally (never
downloaded at run time), and the cerebellum + brain-stem masks' file contract."""

from __future__ import annotations

import math
import os
from pathlib import Path

from ..errors import ExitCode, InfantTissueError
from .age import MODEL_AGE_MONTHS

TEMPLATE = "MNIInfant"
#: ``desc`` of the cerebellum + brain-stem mask of each cohort (file contract, see
#: :func:`removal_template`)
REMOVAL_DESC = "cerebellumbrainstem"


#: TemplateFlow ``tpl-MNIInfant`` cohorts: (cohort, lower, upper) age in months.
MNIINFANT_COHORTS: tuple[tuple[int, float, float], ...] = (
    (1, 0.0, 2.0),
    (2, 2.0, 5.0),
    (3, 5.0, 8.0),
    (4, 8.0, 11.0),
    (5, 11.0, 14.0),
    (6, 14.0, 17.0),
    (7, 17.0, 21.0),
    (8, 21.0, 27.0),
    (9, 27.0, 33.0),
    (10, 33.0, 44.0),
    (11, 44.0, 60.0),
)


class TemplateNotFoundError(InfantTissueError, FileNotFoundError):
    """A template file is not available in the local TemplateFlow home."""

    exit_code = ExitCode.NOINPUT


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


def mniinfant_cohort(age_months: float | None) -> int:
    """TemplateFlow ``MNIInfant`` cohort for an age, for template-based brain extraction.

    The cohorts, from ``tpl-MNIInfant/template_description.json`` (TemplateFlow; the copy in
    the ``templateflow`` package's ``conf/templateflow-skel.zip`` was read), in months:

    ======  =======  ======  =======  ======  =======
    cohort  ages     cohort  ages     cohort  ages
    ======  =======  ======  =======  ======  =======
    1       0–2      5       11–14    9       27–33
    2       2–5      6       14–17    10      33–44
    3       5–8      7       17–21    11      44–60
    4       8–11     8       21–27
    ======  =======  ======  =======  ======  =======

    The ranges share their end points; as in NiBabies (``cohort_by_months``) an age on a
    boundary goes to the younger cohort (2 months → 1, 5 → 2, 8 → 3), so 6 months is cohort 3.
    Ages below 0 (preterm/fetal) use cohort 1 and ages above 60 months cohort 11, the closest
    templates available; an unknown age (None) uses the model's 6 months.

    Raises
    ------
    ValueError
        For a non-finite age.
    """
    if age_months is None:
        age_months = MODEL_AGE_MONTHS
    age = float(age_months)
    if not math.isfinite(age):
        raise ValueError(f"age must be a finite number of months, not {age_months!r}")
    for cohort, _lo, hi in MNIINFANT_COHORTS:
        if age <= hi:
            return cohort
    return MNIINFANT_COHORTS[-1][0]
