"""One training run from a data folder: load the subjects, split the folds, add seed 001's
context, record provenance, train. What ``infant-tissue train`` calls after parsing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..bundle_schema import DEFAULT_INPUT_DOMAIN
from ..errors import ExitCode, InfantTissueError, InputNotFoundError
from ..inference.devices import resolve_device
from ..nn import build_model
from .config import TrainingConfig
from .data import Subject, find_iseg_subjects, load_iseg_subject, split_folds
from .trainer import TrainingResult, check_geometry, train


class TrainingUsageError(InfantTissueError, ValueError):
    """The command asks for something inconsistent (exit code 64)."""

    exit_code = ExitCode.USAGE


def load_subjects(
    data: str | Path,
    *,
    derivatives: str | Path | None = None,
    dseg_desc: str | None = None,
    participant_labels: Sequence[str] | None = None,
) -> dict[str, Subject]:
    """Labelled subjects of an iSeg-layout folder, or of a BIDS dataset with manual dseg label
    maps in ``derivatives``, normalised as inference sees them (name -> subject)."""
    is_bids = (Path(data) / "dataset_description.json").is_file()
    if is_bids and not derivatives:
        raise TrainingUsageError(f"{data}: a BIDS dataset; give --derivatives with its dseg labels")
    if derivatives:
        from .bids_data import load_bids_subjects  # pybids: only for BIDS input

        subjects = load_bids_subjects(
            data, derivatives, participant_labels=participant_labels, dseg_desc=dseg_desc
        )
        if not subjects:
            raise InputNotFoundError(f"{derivatives}: no labelled session found")
        return dict(subjects)
    files = find_iseg_subjects(data)
    if not files:
        raise InputNotFoundError(f"{data}: no iSeg-layout subjects (subject-N-T1.*)")
    names = [f.name.split("-T1.")[0] for f in files]
    return {n: load_iseg_subject(f) for n, f in zip(names, files, strict=True)}


def train_from_data(
    config: TrainingConfig,
    data: str | Path,
    out: str | Path,
    *,
    derivatives: str | Path | None = None,
    dseg_desc: str | None = None,
    participant_labels: Sequence[str] | None = None,
    input_domain: str = DEFAULT_INPUT_DOMAIN,
    context_from: Sequence[str | Path] = (),
    device: str = "auto",
    resume: bool = False,
    progress: bool | None = None,
    init_from: str | Path | None = None,
    command: str = "",
) -> TrainingResult:
    """Train one network on the subjects of ``data`` (fold ``config.fold`` of
    ``config.folds`` held out for validation) into the run folder ``out``.

    ``context_from`` (seed 001's FCN-2, ``--arch msfcn-context``) names the first-stage runs
    whose out-of-fold segmentations give every subject its context maps
    (:func:`~.context.add_context`); the runs are recorded so ``fuse`` can embed the first stage
    in the bundle.
    """
    needs_context = config.architecture == "msfcn-context"
    if needs_context != bool(context_from):
        raise TrainingUsageError(
            "msfcn-context (seed 001's FCN-2) needs --context-from FCN-1 runs"
            if needs_context
            else f"--context-from applies to msfcn-context, not {config.architecture}"
        )
    try:  # before any data is read: a wrong view or patch size is a usage error
        check_geometry(build_model(config.architecture, **config.architecture_kwargs), config)
    except (TypeError, ValueError) as exc:
        raise TrainingUsageError(str(exc)) from None
    subjects = load_subjects(
        data, derivatives=derivatives, dseg_desc=dseg_desc, participant_labels=participant_labels
    )
    names = list(subjects)
    train_names, val_names = split_folds(names, config.folds, config.fold, config.seed)
    provenance: dict[str, Any] = {
        "command": command,
        "data": str(Path(data).resolve()),
        "labels": str(Path(derivatives).resolve()) if derivatives else "iSeg layout",
        "training_subjects": train_names,
        "validation_subjects": val_names,
        "input_domain": input_domain,
    }
    if context_from:
        from .context import add_context

        subjects, record = add_context(subjects, context_from, device=resolve_device(device))
        provenance.update(record)
    return train(
        config,
        [subjects[n] for n in train_names],
        [subjects[n] for n in val_names],
        out,
        device=device,
        resume=resume,
        progress=progress,
        provenance=provenance,
        init_from=init_from,
    )
