"""The files behind ``infant-tissue evaluate``: find, pair, load, check, score and tabulate.

Prediction and truth label maps are given as files (paired in order) or as one directory each
(paired by subject name: ``sub-XX[_ses-YY]``, iSeg's ``subject-N``, or the file name without a
role word). Each pair is read, converted from its label coding to the model's, checked to share
one voxel grid, and scored per tissue with :func:`.metrics.evaluate_tissues`; the rows go to a
long-format TSV and a mean ± sd summary. :func:`evaluate_inputs` does all of it in one call.
Every problem is one line naming the file; a missing input is a :class:`MissingInputError`.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from ..labels import to_model
from ..utils.atomic import write_atomic
from .metrics import evaluate_tissues

logger = logging.getLogger(__name__)

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


def evaluate_inputs(
    preds: Sequence[Path],
    truths: Sequence[Path],
    *,
    pred_coding: str,
    truth_coding: str,
    metrics: Sequence[str],
    backend: str = "scipy",
    check_affine: bool = True,
    out: Path | None = None,
) -> list[tuple[str, str, str, float]]:
    """Pair the inputs, score every pair and, when ``out`` is given, write the long table there.

    What ``infant-tissue evaluate`` does between parsing its arguments and printing:
    :func:`pair_inputs`, :func:`evaluate_pair` for each pair, then :func:`write_tsv`.

    Returns
    -------
    list of tuple
        Rows ``(subject, tissue, metric, value)`` of every pair, in pairing order.

    Raises
    ------
    MissingInputError
        When an input path does not exist.
    ValueError, OSError
        When the inputs cannot be paired, read, converted or compared, or ``out`` cannot be
        written; one line naming the file.
    """
    pairs = pair_inputs(preds, truths)
    rows: list[tuple[str, str, str, float]] = []
    for subject, pred, truth in pairs:
        logger.info("evaluating %s: %s against %s", subject, pred, truth)
        rows += evaluate_pair(
            subject,
            pred,
            truth,
            pred_coding=pred_coding,
            truth_coding=truth_coding,
            metrics=metrics,
            backend=backend,
            check_affine=check_affine,
        )
    if out is not None:
        write_tsv(rows, out)
        logger.info("wrote %s", out)
    return rows
