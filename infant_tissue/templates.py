"""Infant templates from TemplateFlow, read locally and never downloaded at run time."""

from __future__ import annotations

import os
from pathlib import Path

TEMPLATE = "MNIInfant"


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


def infant_template(cohort: int) -> tuple[Path, Path]:
    """T1w template and its brain mask of ``tpl-MNIInfant`` ``cohort`` at 1 mm.

    Files are listed through the ``templateflow`` API from ``TEMPLATEFLOW_HOME`` (``ls`` only
    reads the local index; ``get`` would try to download) and must be present and non-empty.
    """
    os.environ.setdefault("TEMPLATEFLOW_AUTOUPDATE", "0")
    home = templateflow_home()
    wanted = {
        "T1w": dict(suffix="T1w", desc=None),
        "mask": dict(suffix="mask", desc="brain"),
    }
    found: dict[str, Path] = {}
    for key, query in wanted.items():
        expected = (
            home / f"tpl-{TEMPLATE}" / f"cohort-{cohort}" / f"tpl-{TEMPLATE}_cohort-{cohort}_res-1"
            f"{'_desc-' + query['desc'] if query['desc'] else ''}_{query['suffix']}.nii.gz"
        )
        paths: list[Path] = []
        if home.is_dir() and any(home.iterdir()):
            import templateflow.api as tflow

            try:
                listed = tflow.ls(
                    TEMPLATE, cohort=cohort, resolution=1, extension=".nii.gz", **query
                )
            except Exception:  # an unindexable home is reported as "missing" below
                listed = []
            paths = [Path(p) for p in (listed if isinstance(listed, list) else [listed]) if p]
        paths = [p for p in paths if p.is_file() and p.stat().st_size > 0]
        if not paths:
            raise TemplateNotFoundError(
                f"{expected}: TemplateFlow template file missing; {_fetch_hint(cohort)}"
            )
        found[key] = paths[0]
    return found["T1w"], found["mask"]
