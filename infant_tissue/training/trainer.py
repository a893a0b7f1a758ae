"""The training loop: the reference schedule, per-epoch CSV log, resumable checkpoints."""

from __future__ import annotations

import csv
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .. import __version__
from ..inference.devices import resolve_device
from ..inference.normalisation import window_transform
from ..nn import build_model, size_multiple, spatial_dimensions
from ..utils.atomic import write_atomic
from .checkpoint import STATE, load_checkpoint, save_checkpoint
from .config import TrainingConfig
from .data import Subject
from .losses import cross_entropy, dice_per_class
from .objectives import Objective
from .optim import build_optimizer, learning_rate
from .runs import load_run, save_run
from .sampling import PatchSampler
from .sampling_2d import SliceSampler

LOGGER = logging.getLogger(__name__)
LOG_FIELDS = [
    "epoch",
    "lr",
    "loss",
    "val_loss",
    "val_dice_csf",
    "val_dice_gm",
    "val_dice_wm",
    "seconds",
]


@dataclass
class TrainingResult:
    run_dir: Path
    epochs_run: int
    history: list[dict[str, float]]


def _read_log(path: Path, upto_epoch: int) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with path.open() as fh:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]
    return [r for r in rows if r["epoch"] <= upto_epoch]


def _write_log(path: Path, rows: list[dict[str, float]]) -> None:
    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, LOG_FIELDS)
            writer.writeheader()
            writer.writerows(rows)

    write_atomic(write, path)


def initialise_from_run(
    model: torch.nn.Module, run_dir: str | Path, config: TrainingConfig
) -> dict:
    """Copy a finished run's weights into ``model``; returns the provenance entry.

    Raises ValueError when the run's architecture differs from ``config``'s: a partial or
    reshaped load would silently train something else.
    """
    source, info = load_run(run_dir)
    arch = info["architecture"]
    if arch["name"] != config.architecture or arch.get("kwargs", {}) != config.architecture_kwargs:
        raise ValueError(
            f"{run_dir}: trained as {arch['name']} {arch.get('kwargs', {})}, but this run is "
            f"{config.architecture} {config.architecture_kwargs}"
        )
    model.load_state_dict(source.state_dict(), strict=True)
    return {"run": str(Path(run_dir).resolve()), "sha256": info["sha256"]}


def train(
    config: TrainingConfig,
    training: Sequence[Subject],
    validation: Sequence[Subject],
    run_dir: str | Path,
    *,
    device: str = "auto",
    resume: bool = False,
    progress: bool | None = None,
    provenance: dict[str, Any] | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    init_from: str | Path | None = None,
) -> TrainingResult:
    """Train one network and write ``run_dir/model.safetensors`` + ``model.json``.

    The run folder also holds ``config.json``, ``log.csv`` (one row per epoch: learning rate,
    training loss, validation loss and Dice per tissue on fixed validation patches) and a
    checkpoint after every epoch; ``resume=True`` continues from it bit for bit on CPU.
    ``on_epoch_end(epoch, row)`` is called after each epoch's checkpoint is on disk.
    ``init_from`` starts from the weights of a finished run of the same architecture (fine-tuning,
    e.g. on a lab's own scanner) instead of He initialisation; the schedule starts afresh.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = build_model(config.architecture, **config.architecture_kwargs)
    check_geometry(model, config)
    if init_from is not None:
        provenance = {
            **(provenance or {}),
            "init_from": initialise_from_run(model, init_from, config),
        }
    model = model.to(dev)
    optimizer = build_optimizer(model, config)
    objective = Objective(config, model, training)
    sampler = make_sampler(config, training, rng, model, objective.extras(training))
    prepare = _input_transform(config)
    val_batches = _validation_patches(validation, config, model)

    meta = {
        "config": config.to_dict(),
        "software": f"infant-tissue {__version__}",
        **(provenance or {}),
    }
    first_epoch, history = 0, []
    if resume and (run_dir / STATE).is_file():
        state = load_checkpoint(run_dir, model, optimizer, rng)
        if _completed(state.get("config")) != config.to_dict():
            raise ValueError(
                f"{run_dir}: the checkpoint was written with a different configuration"
            )
        first_epoch = state["epoch"] + 1
        history = _read_log(run_dir / "log.csv", state["epoch"])
        LOGGER.info("resuming %s after epoch %d", run_dir, state["epoch"])
    elif (run_dir / STATE).is_file():
        raise FileExistsError(f"{run_dir}: holds a checkpoint; pass --resume or use a new folder")
    (run_dir / "config.json").write_text(json.dumps(meta, indent=2))

    show = sys.stderr.isatty() if progress is None else progress
    steps = max(1, config.patches_per_epoch // config.batch_size)  # as the reference's Keras fit
    for epoch in range(first_epoch, config.epochs):
        start = time.perf_counter()
        lr = learning_rate(config, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        losses = []
        bar = tqdm(
            range(steps), desc=f"epoch {epoch + 1}/{config.epochs}", disable=not show, leave=False
        )
        for _ in bar:
            images, labels, extras = sampler.sample_with_extras(config.batch_size)
            x = prepare(torch.from_numpy(images).to(dev))
            y = torch.from_numpy(labels).to(dev)
            loss, total = objective(model, x, y, torch.from_numpy(extras).to(dev))
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        row = {
            "epoch": float(epoch),
            "lr": lr,
            "loss": float(np.mean(losses)),
            **_validate(model, val_batches, dev, prepare),
            "seconds": time.perf_counter() - start,
        }
        save_checkpoint(run_dir, epoch, model, optimizer, rng, {"config": config.to_dict()})
        history.append(row)
        _write_log(run_dir / "log.csv", history)
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
        LOGGER.info(
            "epoch %d/%d lr %.2e loss %.4f val dice CSF %.3f GM %.3f WM %.3f (%.1f s)",
            epoch + 1,
            config.epochs,
            lr,
            row["loss"],
            row["val_dice_csf"],
            row["val_dice_gm"],
            row["val_dice_wm"],
            row["seconds"],
        )
    if config.bn_recalibration_batches and first_epoch < config.epochs:
        recalibrate_batchnorm(
            model,
            (sampler.sample(config.batch_size)[0] for _ in range(config.bn_recalibration_batches)),
            dev,
            prepare,
        )
    save_run(run_dir, model, config.architecture, config.architecture_kwargs, meta)
    return TrainingResult(run_dir, config.epochs - first_epoch, history)


def recalibrate_batchnorm(
    model: torch.nn.Module, batches, dev: torch.device, prepare: Callable | None = None
) -> None:
    """Replace BatchNorm running statistics by their exact average over ``batches``
    (``prepare``: the run's per-window normalisation, if any)."""
    prepare = prepare or (lambda x: x)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
        m.train()
    with torch.no_grad():
        for images in batches:
            model(prepare(torch.from_numpy(images).to(dev)))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.eval()


def check_geometry(model: torch.nn.Module, config: TrainingConfig) -> None:
    """2-D networks need a ``view`` and 3-D networks none; patches must fit the network."""
    name = config.architecture
    if spatial_dimensions(model) == 2 and config.view is None:
        raise ValueError(f"{name} is a 2-D network: choose a view (axial, coronal, sagittal)")
    if spatial_dimensions(model) == 3 and config.view is not None:
        raise ValueError(f"{name} is a 3-D network: 'view' applies to 2-D networks only")
    multiple = size_multiple(model)
    if config.view is None and config.patch_size % multiple:
        raise ValueError(
            f"{name} needs patch_size a multiple of {multiple}, got {config.patch_size}"
        )


def make_sampler(
    config: TrainingConfig,
    subjects: Sequence[Subject],
    rng: np.random.Generator,
    model: torch.nn.Module,
    extras: Sequence[np.ndarray] | None = None,
) -> PatchSampler | SliceSampler:
    """Patches of ``config.patch_size`` for 3-D networks, whole slices of ``config.view`` for
    2-D ones."""
    if config.view is not None:
        return SliceSampler(subjects, config.view, size_multiple(model), rng, config.augment)
    return PatchSampler(
        subjects,
        config.patch_size,
        rng,
        config.sampling,
        config.augment,
        config.augmentation,
        extras,
    )


def _input_transform(config: TrainingConfig) -> Callable[[torch.Tensor], torch.Tensor]:
    """The per-window normalisation the bundle will declare (identity for most networks)."""
    transform = window_transform(config.normalisation)
    return transform if transform is not None else (lambda x: x)


def _completed(saved: dict | None) -> dict | None:
    """A checkpoint's config with the fields added since it was written at their defaults."""
    if saved is None:
        return None
    defaults = TrainingConfig().to_dict()
    return {**{k: v for k, v in defaults.items() if k not in saved}, **saved}


def _validation_patches(subjects: Sequence[Subject], config: TrainingConfig, model=None):
    if not subjects:
        return []
    # A separate generator: the validation set must not depend on (or disturb) training draws.
    rng = np.random.default_rng(config.seed + 1)
    sampler: PatchSampler | SliceSampler
    if config.view is not None and model is not None:
        sampler = SliceSampler(subjects, config.view, size_multiple(model), rng)
    else:  # the reference's rule (brain windows, no augmentation), whatever training uses
        sampler = PatchSampler(subjects, config.patch_size, rng)
    images, labels = sampler.sample(config.validation_patches)
    return [(images[i : i + 8], labels[i : i + 8]) for i in range(0, len(images), 8)]


def _validate(model, batches, dev, prepare=None) -> dict[str, float]:
    prepare = prepare or (lambda x: x)
    nan = float("nan")
    if not batches:
        return {"val_loss": nan, "val_dice_csf": nan, "val_dice_gm": nan, "val_dice_wm": nan}
    model.eval()
    preds, truths, losses = [], [], []
    with torch.no_grad():
        for images, labels in batches:
            logits = model(prepare(torch.from_numpy(images).to(dev)))
            y = torch.from_numpy(labels).to(dev)
            losses.append(cross_entropy(logits, y).item() * len(images))
            preds.append(logits.argmax(1).cpu())
            truths.append(y.cpu())
    csf, gm, wm = dice_per_class(torch.cat(preds), torch.cat(truths))
    n = sum(len(b[0]) for b in batches)
    return {"val_loss": sum(losses) / n, "val_dice_csf": csf, "val_dice_gm": gm, "val_dice_wm": wm}
