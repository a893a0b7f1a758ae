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
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from ..images import write_atomic
from ..labels import CODINGS, to_model
from ..metrics import METRICS, evaluate_tissues
from .common import parse_args

logger = logging.getLogger("infant_tissue.cli.evaluate")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 64
EXIT_NOINPUT = 66

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".hdr")
#: last name token (split on ``_`` / ``-``) that marks a file as a label map
SEGMENTATION_TOKENS = {"dseg", "seg", "label", "labels", "segmentation", "labelmap"}
_BIDS_KEY = re.compile(r"(sub-[A-Za-z0-9]+)(?:_(ses-[A-Za-z0-9]+))?")
_ISEG_KEY = re.compile(r"(subject-\d+)")
_TRAILING_ROLE = re.compile(
    r"[-_.](label|labels|seg|dseg|segmentation|pred|prediction|truth|gt|T1w?|T2w?)$", re.I
)


class MissingInputError(FileNotFoundError):
    """An input path does not exist (exit status 66)."""


def image_stem(path: Path) -> str | None:
    """File name without its image suffix, or ``None`` when it is not an image we read."""
    name = path.name
    for suffix in IMAGE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def _suffix(path: Path) -> str:
    return next(s for s in IMAGE_SUFFIXES if path.name.endswith(s))


def subject_key(path: Path) -> str:
    """Subject name used to pair files and label TSV rows.

    ``sub-XX`` (with ``_ses-YY`` when present) for BIDS names, ``subject-N`` for iSeg names,
    otherwise the file name without suffix and without a trailing role word (``_seg``,
    ``-label``, ``_pred``...), so ``case7_pred.nii.gz`` pairs with ``case7_seg.nii.gz``.
    """
    stem = image_stem(path) or path.name
    bids = _BIDS_KEY.search(stem)
    if bids:
        return "_".join(part for part in bids.groups() if part)
    iseg = _ISEG_KEY.search(stem)
    if iseg:
        return iseg.group(1)
    return _TRAILING_ROLE.sub("", stem) or stem


def _is_segmentation(path: Path) -> bool:
    stem = image_stem(path) or ""
    return re.split(r"[-_.]", stem)[-1].lower() in SEGMENTATION_TOKENS


def find_segmentations(directory: Path) -> dict[str, Path]:
    """Label maps under ``directory`` (recursively), by subject key.

    Hidden files and folders (including ``.tmp-*`` files of interrupted writes) are ignored.
    When some images look like label maps only those are kept; otherwise every image is.

    Raises
    ------
    ValueError
        If the directory holds no image, or two candidates for one subject.
    """
    images = sorted(
        p
        for p in directory.rglob("*")
        if p.is_file()
        and image_stem(p) is not None
        and not any(part.startswith(".") for part in p.relative_to(directory).parts)
    )
    if not images:
        raise ValueError(f"{directory}: no NIfTI (.nii, .nii.gz) or Analyze (.hdr) image found")
    segmentations = [p for p in images if _is_segmentation(p)] or images
    # the same image saved in several formats (subject-1-label.hdr and .nii.gz) counts once
    preference = {suffix: rank for rank, suffix in enumerate(IMAGE_SUFFIXES)}
    by_stem: dict[Path, Path] = {}
    for path in segmentations:
        stem = path.with_name(image_stem(path) or path.name)
        current = by_stem.get(stem)
        if current is None or preference[_suffix(path)] < preference[_suffix(current)]:
            by_stem[stem] = path
    found: dict[str, Path] = {}
    for path in sorted(by_stem.values()):
        key = subject_key(path)
        if key in found:
            raise ValueError(
                f"{directory}: two candidate label maps for {key}: {found[key].name} and {path.name}; "
                "pass the files explicitly"
            )
        found[key] = path
    return found


def _check_exists(paths: Sequence[Path]) -> None:
    for path in paths:
        if not path.exists():
            raise MissingInputError(f"{path}: no such file or directory")
        if path.is_file() and path.name.endswith(".hdr") and not path.with_suffix(".img").exists():
            raise MissingInputError(
                f"{path}: Analyze header without its {path.with_suffix('.img').name}"
            )


def pair_inputs(preds: Sequence[Path], truths: Sequence[Path]) -> list[tuple[str, Path, Path]]:
    """``(subject, pred, truth)`` triples from the command-line inputs.

    Files are paired in the order given (a warning names pairs whose subject names differ);
    one directory each is paired by subject name (subjects found on one side only are
    reported and skipped).
    """
    preds, truths = [Path(p) for p in preds], [Path(p) for p in truths]
    _check_exists(preds + truths)
    pred_dirs = [p.is_dir() for p in preds]
    truth_dirs = [p.is_dir() for p in truths]
    if any(pred_dirs) or any(truth_dirs):
        if not (len(preds) == len(truths) == 1 and pred_dirs[0] and truth_dirs[0]):
            raise ValueError("give either files for both --pred and --truth, or one directory each")
        found_pred, found_truth = find_segmentations(preds[0]), find_segmentations(truths[0])
        common = sorted(set(found_pred) & set(found_truth))
        for key in sorted(set(found_pred) - set(found_truth)):
            logger.warning(
                "%s: no ground truth for %s in %s; skipped", found_pred[key], key, truths[0]
            )
        for key in sorted(set(found_truth) - set(found_pred)):
            logger.warning(
                "%s: no prediction for %s in %s; skipped", found_truth[key], key, preds[0]
            )
        if not common:
            raise ValueError(f"no subject in common between {preds[0]} and {truths[0]}")
        return [(key, found_pred[key], found_truth[key]) for key in common]
    if len(preds) != len(truths):
        raise ValueError(
            f"--pred has {len(preds)} files but --truth has {len(truths)}; they are paired in order"
        )
    pairs = []
    for pred, truth in zip(preds, truths, strict=True):
        key = subject_key(truth)
        if subject_key(pred) != key:
            logger.warning(
                "pairing %s with %s although their subject names differ", pred.name, truth.name
            )
        pairs.append((key, pred, truth))
    keys = [key for key, _, _ in pairs]
    if len(set(keys)) != len(keys):  # keep TSV rows distinguishable
        pairs = [(f"{key}#{i + 1}", p, t) for i, (key, p, t) in enumerate(pairs)]
    return pairs


def load_labels(path: Path, coding: str) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Read a label map and convert it to the model coding.

    Returns
    -------
    labels, affine, zooms
        ``uint8`` model labels (3-D), the voxel-to-world affine and the voxel size in mm.
    """
    try:
        image = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for unreadable files
        raise ValueError(f"{path}: cannot read as NIfTI/Analyze ({exc})") from exc
    data = np.asanyarray(image.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:  # iSeg label files are (X, Y, Z, 1)
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{path}: expected a 3-D label map, got shape {data.shape}")
    try:
        labels = to_model(data, coding)
    except ValueError as exc:
        raise ValueError(
            f"{path}: {exc}; choose the coding with --labels/--pred-labels/--truth-labels"
        ) from exc
    zooms = tuple(float(z) for z in image.header.get_zooms()[:3])
    return labels, np.asarray(image.affine, dtype=float), zooms


def check_same_grid(
    pred: Path,
    truth: Path,
    pred_grid: tuple[tuple[int, ...], np.ndarray],
    truth_grid: tuple[tuple[int, ...], np.ndarray],
    *,
    check_affine: bool = True,
    atol_mm: float = 1e-3,
) -> None:
    """Raise a one-line ``ValueError`` naming both files when their voxel grids differ."""
    (shape_p, affine_p), (shape_t, affine_t) = pred_grid, truth_grid
    if shape_p != shape_t:
        raise ValueError(f"{pred} and {truth}: shapes differ, {shape_p} vs {shape_t}")
    if check_affine and not np.allclose(affine_p, affine_t, rtol=0, atol=atol_mm):
        worst = float(np.abs(affine_p - affine_t).max())
        raise ValueError(
            f"{pred} and {truth}: affines differ (largest element difference {worst:.4g}); "
            "resample the prediction onto the truth grid or pass --no-affine-check"
        )


def evaluate_pair(
    subject: str,
    pred: Path,
    truth: Path,
    *,
    pred_coding: str,
    truth_coding: str,
    metrics: Sequence[str],
    backend: str = "scipy",
    check_affine: bool = True,
) -> list[tuple[str, str, str, float]]:
    """Rows ``(subject, tissue, metric, value)`` for one prediction/truth pair."""
    pred_labels, pred_affine, _ = load_labels(pred, pred_coding)
    truth_labels, truth_affine, zooms = load_labels(truth, truth_coding)
    check_same_grid(
        pred,
        truth,
        (pred_labels.shape, pred_affine),
        (truth_labels.shape, truth_affine),
        check_affine=check_affine,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        scores = evaluate_tissues(
            pred_labels, truth_labels, zooms, metrics=metrics, backend=backend
        )
    for warning in caught:
        if issubclass(warning.category, RuntimeWarning):
            logger.warning("%s: %s", subject, warning.message)
    return [
        (subject, tissue, metric, value)
        for tissue, values in scores.items()
        for metric, value in values.items()
    ]


def _format_value(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.6g}"


def write_tsv(rows: Sequence[tuple[str, str, str, float]], path: Path) -> None:
    """Write the long-format metrics table (``n/a`` for undefined values).

    Written to a temporary name and renamed, so an interrupted run never leaves a truncated
    table that looks complete.
    """
    lines = ["subject\ttissue\tmetric\tvalue"]
    lines += [f"{s}\t{t}\t{m}\t{_format_value(v)}" for s, t, m, v in rows]
    write_atomic("\n".join(lines) + "\n", Path(path))


def summary_table(rows: Sequence[tuple[str, str, str, float]]) -> str:
    """Mean ± sample sd of every metric (rows) per tissue (columns), ignoring ``nan``.

    A cell shows ``(n=k)`` when only ``k`` of the subjects had a defined value.
    """
    subjects = list(dict.fromkeys(r[0] for r in rows))
    tissues = list(dict.fromkeys(r[1] for r in rows))
    metrics = list(dict.fromkeys(r[2] for r in rows))
    values: dict[tuple[str, str], list[float]] = {}
    for _, tissue, metric, value in rows:
        values.setdefault((metric, tissue), []).append(value)
    header = ["metric", *tissues]
    table = [header]
    for metric in metrics:
        line = [metric]
        for tissue in tissues:
            v = np.asarray(values.get((metric, tissue), []), dtype=float)
            finite = v[np.isfinite(v)]
            if finite.size == 0:
                cell = "n/a"
            else:
                sd = float(finite.std(ddof=1)) if finite.size > 1 else 0.0
                cell = f"{finite.mean():.4f} ± {sd:.4f}"
                if finite.size < v.size:
                    cell += f" (n={finite.size})"
            line.append(cell)
        table.append(line)
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    text = [f"{len(subjects)} subject(s); mean ± sd"]
    for i, row in enumerate(table):
        text.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            text.append("  ".join("-" * w for w in widths))
    return "\n".join(text)


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
        pairs = pair_inputs(args.pred, args.truth)
        rows: list[tuple[str, str, str, float]] = []
        for subject, pred, truth in pairs:
            logger.info("evaluating %s: %s against %s", subject, pred, truth)
            rows += evaluate_pair(
                subject,
                pred,
                truth,
                pred_coding=pred_coding,
                truth_coding=truth_coding,
                metrics=args.metrics,
                backend=args.backend,
                check_affine=not args.no_affine_check,
            )
        if args.out is not None:
            write_tsv(rows, args.out)
            logger.info("wrote %s", args.out)
    except MissingInputError as exc:
        logger.error("%s", exc)
        return EXIT_NOINPUT
    except (ValueError, OSError) as exc:
        logger.error("%s", exc)
        return EXIT_FAILURE
    print(summary_table(rows))
    if args.out is not None:
        print(f"metrics table: {args.out}")
    return EXIT_OK
