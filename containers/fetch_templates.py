#!/usr/bin/env python3
"""Image build step: the TemplateFlow infant templates the app reads, into a fixed folder.

The app (``infant_tissue.templates.infant_template``) lists, through ``templateflow.api.ls`` and
never ``get``, the 1 mm ``tpl-MNIInfant`` T1w template and its brain mask of the cohort matching
each session's age (``infant_tissue.bids.mniinfant_cohort``). Cohorts 1-5 cover 0-14 months, so
every age the model accepts (3-12 months) and a younger/older margin. The T2w template of each
cohort is fetched as well (small, and used by T2w-driven registration set-ups).

``--source templateflow`` downloads with the ``templateflow`` client (its S3 mirror) into
``--home``; ``--source local`` copies a folder laid out as a TemplateFlow home. Both then drop
every other template's zero-byte placeholders so the read-only home indexes quickly, and check
each file through the same ``templateflow.api.ls`` query as the app, in a fresh interpreter with
``TEMPLATEFLOW_AUTOUPDATE=0``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
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
from infant_tissue.templates import infant_template
queries = {queries!r}
bad = []
for cohort in {cohorts!r}:
    infant_template(cohort)  # the app's own lookup: raises when T1w or mask is missing
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


def prune(home: Path) -> None:
    """Keep tpl-MNIInfant only, without the skeleton's zero-byte placeholders."""
    for entry in home.iterdir():
        if entry.name.startswith("tpl-") and entry.name != f"tpl-{TEMPLATE}":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
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
    else:
        fetch_templateflow(args.home, args.cohorts)
    prune(args.home)
    env = {**os.environ, "TEMPLATEFLOW_HOME": str(args.home), "TEMPLATEFLOW_AUTOUPDATE": "0"}
    code = CHECK.format(queries=QUERIES, cohorts=args.cohorts, template=TEMPLATE)
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    print(f"fetch_templates: tpl-{TEMPLATE} cohorts {args.cohorts} ready in {args.home}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
