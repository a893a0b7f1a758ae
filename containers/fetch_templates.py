#!/usr/bin/env python3
"""Image build step: the TemplateFlow infant templates the app reads, into a fixed folder.

The app (``infant_tissue.utils.templates.infant_template``) lists, through ``templateflow.api.ls`` and
never ``get``, the 1 mm ``tpl-MNIInfant`` T1w template and its brain mask of the cohort matching
each session's age (``infant_tissue.utils.bids.mniinfant_cohort``). Cohorts 1-5 cover 0-14 months, so
every age the model accepts (3-12 months) and a younger/older margin. The T2w template of each
cohort is fetched as well (small, and used by T2w-driven registration set-ups).

``--source templateflow`` downloads with the ``templateflow`` client (its S3 mirror) into
``--home``, with each cohort's ``from-MNI152NLin6Asym`` transform; ``--source local`` copies a
folder laid out as a TemplateFlow home. Then every cohort without a cerebellum + brain-stem mask
(the file contract of ``infant_tissue.utils.templates.removal_template``) gets one from
``infant_tissue.anat.cerebellum.derive_template_mask``: the package's adult FreeSurfer labels
carried in through that transform, or registered to the cohort's T2w where there is none. A mask
that fails the plausibility checks stops the build. Both sources then drop every other
template's zero-byte placeholders (and the transforms, no longer needed) so the read-only home
indexes quickly, and check each file through the app's own lookups, in a fresh interpreter with
``TEMPLATEFLOW_AUTOUPDATE=0``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TEMPLATE = "MNIInfant"
QUERIES = {  # label -> templateflow query (besides template, cohort, resolution, extension)
    "T1w": {"suffix": "T1w", "desc": None},
    "T2w": {"suffix": "T2w", "desc": None},
    "brain mask": {"suffix": "mask", "desc": "brain"},
}

CHECK = r"""
import sys
from pathlib import Path
import templateflow.api as tflow
from infant_tissue.utils.templates import infant_template, removal_template
queries = {queries!r}
bad = []
for cohort in {cohorts!r}:
    infant_template(cohort)  # the app's own lookups: raise when a file is missing
    removal_template(cohort)
    for label, query in queries.items():
        found = tflow.ls({template!r}, cohort=cohort, resolution=1, extension=".nii.gz", **query)
        found = [Path(p) for p in (found if isinstance(found, list) else [found]) if p]
        ok = [p for p in found if p.is_file() and p.stat().st_size > 0]
        if not ok:
            bad.append(f"cohort-{{cohort}} {{label}}")
        else:
            print(f"  cohort-{{cohort}} {{label}}: {{ok[0].name}} ({{ok[0].stat().st_size}} bytes)")
if bad:
    sys.exit("fetch_templates: missing after fetch: " + ", ".join(bad))
"""


def fetch_templateflow(home: Path, cohorts: list[int]) -> None:
    os.environ["TEMPLATEFLOW_HOME"] = str(home)
    import templateflow.api as tflow  # creates the skeleton from the package (no network)

    for cohort in cohorts:
        for label, query in QUERIES.items():
            print(f"fetch_templates: tpl-{TEMPLATE} cohort-{cohort} res-1 {label}", flush=True)
            try:
                path = tflow.get(
                    TEMPLATE,
                    cohort=cohort,
                    resolution=1,
                    extension=".nii.gz",
                    raise_empty=True,
                    **query,
                )
            except Exception as exc:  # noqa: BLE001 - network errors of requests/urllib3
                raise SystemExit(f"fetch_templates: cohort-{cohort} {label}: {exc}") from None
            paths = path if isinstance(path, list) else [path]
            if not paths or any(
                not Path(p).is_file() or Path(p).stat().st_size == 0 for p in paths
            ):
                raise SystemExit(f"fetch_templates: download of cohort-{cohort} {label} failed")


def fetch_transform(home: Path, cohort: int) -> Path | None:
    """TemplateFlow's MNI152NLin6Asym -> MNIInfant cohort transform (ANTs, image mode), or None
    when the client cannot get it (the mask is then derived by registration)."""
    import templateflow.api as tflow

    query = {"from": "MNI152NLin6Asym", "mode": "image", "suffix": "xfm", "extension": ".h5"}
    try:
        found = tflow.get(TEMPLATE, cohort=cohort, raise_empty=True, **query)
    except Exception as exc:  # noqa: BLE001 - network or index errors: fall back, say so
        print(f"fetch_templates: cohort-{cohort} transform unavailable ({exc}); registering")
        return None
    found = found if isinstance(found, list) else [found]
    return Path(found[0]) if found and Path(found[0]).stat().st_size > 0 else None


def add_removal_masks(home: Path, cohorts: list[int], transforms: dict[int, Path | None]) -> None:
    """Derive each cohort's cerebellum + brain-stem mask unless the folder already has it."""
    from infant_tissue.anat.cerebellum import derive_template_mask
    from infant_tissue.utils.templates import REMOVAL_DESC

    for cohort in cohorts:
        stem = (
            home / f"tpl-{TEMPLATE}" / f"cohort-{cohort}" / f"tpl-{TEMPLATE}_cohort-{cohort}_res-1"
        )
        out = Path(f"{stem}_desc-{REMOVAL_DESC}_mask.nii.gz")
        if out.is_file() and out.stat().st_size > 0:
            print(f"fetch_templates: cohort-{cohort} {out.name}: given, kept")
            continue
        xfm = transforms.get(cohort)
        how = f"through {xfm.name}" if xfm else "by registration to its T2w"
        print(f"fetch_templates: cohort-{cohort} cerebellum + brain-stem mask {how}", flush=True)
        with tempfile.TemporaryDirectory(prefix="removal-") as work:
            problems = derive_template_mask(
                f"{stem}_T2w.nii.gz",
                f"{stem}_desc-brain_mask.nii.gz",
                str(out),
                transforms=[str(xfm)] if xfm else None,
                work_dir=work,
            )
        if problems:
            raise SystemExit(
                f"fetch_templates: {out}: implausible cerebellum + brain-stem mask: "
                + "; ".join(problems)
            )


def prune(home: Path) -> None:
    """Keep tpl-MNIInfant only, without the skeleton's zero-byte placeholders."""
    for entry in home.iterdir():
        if entry.name.startswith("tpl-") and entry.name != f"tpl-{TEMPLATE}":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    for xfm in home.rglob("*_xfm.h5"):  # used for the removal masks only
        xfm.unlink()
    for path in sorted(home.rglob("*"), reverse=True):
        if path.is_file() and path.stat().st_size == 0:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", choices=("templateflow", "local"), required=True)
    p.add_argument("--home", type=Path, required=True, help="TemplateFlow home to create")
    p.add_argument("--local", type=Path, help="a TemplateFlow home to copy (local source)")
    p.add_argument("--cohorts", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    args = p.parse_args(argv)
    if args.home.exists() and any(args.home.iterdir()):
        print(f"fetch_templates: {args.home} is not empty", file=sys.stderr)
        return 2
    if args.source == "local":
        if args.local is None or not (args.local / f"tpl-{TEMPLATE}").is_dir():
            print(f"fetch_templates: {args.local}/tpl-{TEMPLATE}: not found", file=sys.stderr)
            return 2
        shutil.copytree(args.local, args.home, dirs_exist_ok=True)
        transforms = {
            c: next(
                args.home.glob(f"tpl-{TEMPLATE}/cohort-{c}/*from-MNI152NLin6Asym*_xfm.h5"), None
            )
            for c in args.cohorts
        }
    else:
        fetch_templateflow(args.home, args.cohorts)
        transforms = {c: fetch_transform(args.home, c) for c in args.cohorts}
    add_removal_masks(args.home, args.cohorts, transforms)
    prune(args.home)
    env = {**os.environ, "TEMPLATEFLOW_HOME": str(args.home), "TEMPLATEFLOW_AUTOUPDATE": "0"}
    code = CHECK.format(queries=QUERIES, cohorts=args.cohorts, template=TEMPLATE)
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    print(f"fetch_templates: tpl-{TEMPLATE} cohorts {args.cohorts} ready in {args.home}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
