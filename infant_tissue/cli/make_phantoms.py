"""``infant-tissue make-phantoms``: write a seeded cohort of synthetic 6-month infant phantoms.

Usage::

    infant-tissue make-phantoms OUT --n-subjects N --seed S [--form bids|iseg|both]
                                [--shape X Y Z] [--iseg-nifti] [--overwrite]

``--form bids`` makes ``OUT`` a BIDS dataset (T1w/T2w with skull on different grids, manual
``dseg`` derivative); ``--form iseg`` fills ``OUT`` with iSeg-style ``subject-N-T1/-T2/-label``
Analyze files; ``--form both`` writes ``OUT/bids`` and ``OUT/iseg`` from the same subjects.
See :mod:`infant_tissue.phantoms` for what the phantoms contain.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from ..phantoms import (
    DEFAULT_SHAPE,
    MIN_SIDE,
    sample_subjects,
    write_bids_dataset,
    write_iseg_dataset,
)
from ..phantoms.norms import phantom_norms
from ..phantoms.templates import write_templateflow
from ..utils.templates import mniinfant_cohort
from ._common import ExitCode, error, parse_args, setup_logging

logger = logging.getLogger("infant_tissue.cli.make_phantoms")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="infant-tissue make-phantoms",
        description=(
            "Generate synthetic 6-month-old infant T1w/T2w phantoms with ground-truth tissue "
            "labels, as a raw BIDS dataset and/or in the preprocessed iSeg layout."
        ),
    )
    parser.add_argument("out", type=Path, metavar="OUT", help="output folder")
    parser.add_argument("--n-subjects", type=int, default=2, help="number of subjects (default: 2)")
    parser.add_argument("--seed", type=int, default=0, help="cohort seed (default: 0)")
    parser.add_argument(
        "--form",
        choices=("bids", "iseg", "both"),
        default="bids",
        help="bids: OUT is a BIDS dataset; iseg: OUT holds subject-N-* Analyze files; "
        "both: OUT/bids and OUT/iseg (default: bids)",
    )
    parser.add_argument(
        "--shape",
        type=int,
        nargs=3,
        default=list(DEFAULT_SHAPE),
        metavar=("X", "Y", "Z"),
        help="1 mm iSeg grid (LR AP SI) the brain is scaled to; raw BIDS grids grow around the "
        f"head (default: {' '.join(map(str, DEFAULT_SHAPE))}; at least {MIN_SIDE})",
    )
    parser.add_argument(
        "--iseg-nifti", action="store_true", help="also write the iSeg form as .nii.gz"
    )
    parser.add_argument(
        "--skull-stripped",
        action="store_true",
        help="BIDS form: zero everything outside the brain (for --skull-stripped runs)",
    )
    parser.add_argument(
        "--templateflow",
        type=Path,
        metavar="DIR",
        help="also write phantom stand-ins of the TemplateFlow MNIInfant cohorts the subjects' "
        "ages need (T1w, T2w, brain and cerebellum + brain-stem masks) into DIR, for runs with "
        "TEMPLATEFLOW_HOME=DIR (tests, demo; real data need the real templates)",
    )
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty OUT")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    parser = build_parser()
    args = parse_args(parser, argv)
    if isinstance(args, int):
        return args
    setup_logging("infant-tissue make-phantoms", 1 if args.verbose else 0)
    out: Path = args.out
    try:
        if out.exists() and not out.is_dir():
            raise ValueError(f"{out}: exists and is not a directory")
        if out.is_dir() and any(out.iterdir()) and not args.overwrite:
            raise ValueError(f"{out}: directory is not empty; pass --overwrite to write into it")
        subjects = sample_subjects(args.n_subjects, args.seed, args.shape)
        start = time.perf_counter()
        targets = []
        if args.form in ("bids", "both"):
            root = out if args.form == "bids" else out / "bids"
            write_bids_dataset(root, subjects, skull_stripped=args.skull_stripped)
            targets.append(f"BIDS dataset: {root}")
            # phantom heads are ~8x smaller than real brains: the QC needs their own norms
            norms = phantom_norms(args.shape, seed=args.seed).write(root / "code" / "qc_norms.tsv")
            targets.append(f"QC norms:     {norms} (pass it as --qc-norms)")
        if args.form in ("iseg", "both"):
            root = out if args.form == "iseg" else out / "iseg"
            write_iseg_dataset(root, subjects, nifti=args.iseg_nifti)
            targets.append(f"iSeg layout:  {root}")
        if args.templateflow is not None:
            cohorts = sorted({mniinfant_cohort(s.age_months) for s in subjects})
            write_templateflow(args.templateflow, cohorts, seed=args.seed + 77, shape=args.shape)
            targets.append(
                f"TemplateFlow: {args.templateflow} (phantom MNIInfant cohorts {cohorts})"
            )
    except (ValueError, OSError) as exc:
        error("infant-tissue make-phantoms", str(exc))
        return ExitCode.FAILED
    elapsed = time.perf_counter() - start
    lines = [f"{len(subjects)} phantom subject(s), seed {args.seed}, {elapsed:.1f} s", *targets, ""]
    lines.append("subject  age(mo)  sex  orientation  T1w voxel (mm)  T2w voxel (mm)")
    for s in subjects:
        acq = s.acquisition
        lines.append(
            f"sub-{s.participant:<4} {s.age_months:>7.1f}  {s.sex:<3}  {acq.orientation:<11}  "
            f"{'x'.join(f'{v:g}' for v in acq.t1w_voxel):<14}  {'x'.join(f'{v:g}' for v in acq.t2w_voxel)}"
        )
    print("\n".join(lines))
    return ExitCode.OK
