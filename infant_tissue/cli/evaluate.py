"""``infant-tissue evaluate``: per-subject, per-tissue metrics of segmentations against truth.

Usage::

    infant-tissue evaluate --pred P [P ...] --truth T [T ...] [--labels model|iseg|nipreps]
                           [--pred-labels CODING] [--truth-labels CODING] [--out metrics.tsv]

``--pred`` and ``--truth`` take either files, paired in the order given, or one directory each,
paired by subject name (``sub-XX[_ses-YY]`` or iSeg's ``subject-N``). In a directory, images
whose name ends in a segmentation suffix (``_dseg``, ``-label``, ``_seg``...) are preferred, so
an iSeg folder (T1, T2, label) or a BIDS derivatives tree works as is. Label maps are converted
from their coding to the model's (0 bg, 1 CSF, 2 GM, 3 WM) before scoring.

Writes a long TSV (``subject``, ``tissue``, ``metric``, ``value``; ``n/a`` for undefined
values) and prints a mean ± sd table per tissue and metric. Exit status: 0 success, 66 an input
file is missing, 64 bad usage, 1 any other error (one line on stderr naming the file).

This module only parses the arguments, calls
:func:`infant_tissue.evaluation.pairing.evaluate_inputs` and prints; the pairing, reading,
checking and scoring live in :mod:`infant_tissue.evaluation`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..evaluation import METRICS, MissingInputError, evaluate_inputs, summary_table
from ..labels import CODINGS
from ._common import ExitCode, parse_args

logger = logging.getLogger("infant_tissue.cli.evaluate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="infant-tissue evaluate",
        description=(
            "Score tissue segmentations against ground truth per subject and tissue: Dice, "
            "boundary MHD (mm), the 3D-MASNet paper's vectorised MHD, average surface distance "
            "(mm), 95th-percentile Hausdorff (mm) and volumetric similarity."
        ),
    )
    parser.add_argument(
        "--pred", nargs="+", required=True, type=Path, help="predicted label maps, or one directory"
    )
    parser.add_argument(
        "--truth",
        nargs="+",
        required=True,
        type=Path,
        help="ground-truth label maps, or one directory",
    )
    codings = sorted(CODINGS)
    parser.add_argument(
        "--labels",
        choices=codings,
        default="model",
        help="label coding of both inputs: model 0/1/2/3 = bg/CSF/GM/WM, iseg 0/10/150/250, "
        "nipreps 1 GM, 2 WM, 3 CSF (default: model)",
    )
    parser.add_argument(
        "--pred-labels", choices=codings, help="coding of --pred (overrides --labels)"
    )
    parser.add_argument(
        "--truth-labels", choices=codings, help="coding of --truth (overrides --labels)"
    )
    parser.add_argument(
        "--out", type=Path, help="write the long-format table (subject, tissue, metric, value) here"
    )
    parser.add_argument(
        "--metrics",
        nargs="+",
        choices=list(METRICS),
        default=list(METRICS),
        metavar="METRIC",
        help=f"metrics to compute (default: all of {' '.join(METRICS)})",
    )
    parser.add_argument(
        "--backend",
        choices=("scipy", "monai"),
        default="scipy",
        help="boundary-distance implementation: scipy distance transforms (default) or MONAI",
    )
    parser.add_argument(
        "--no-affine-check",
        action="store_true",
        help="compare shapes only (for inputs whose headers disagree but share the voxel grid)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return parser


def _configure_logging(verbose: bool) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            stream=sys.stderr, format="infant-tissue evaluate: %(levelname)s: %(message)s"
        )
    logging.getLogger("infant_tissue").setLevel(logging.INFO if verbose else logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    parser = build_parser()
    args = parse_args(parser, argv)
    if isinstance(args, int):
        return args
    _configure_logging(args.verbose)
    pred_coding = args.pred_labels or args.labels
    truth_coding = args.truth_labels or args.labels
    try:
        rows = evaluate_inputs(
            args.pred,
            args.truth,
            pred_coding=pred_coding,
            truth_coding=truth_coding,
            metrics=args.metrics,
            backend=args.backend,
            check_affine=not args.no_affine_check,
            out=args.out,
        )
    except MissingInputError as exc:
        logger.error("%s", exc)
        return ExitCode.NOINPUT
    except (ValueError, OSError) as exc:
        logger.error("%s", exc)
        return ExitCode.FAILED
    print(summary_table(rows))
    if args.out is not None:
        print(f"metrics table: {args.out}")
    return ExitCode.OK
