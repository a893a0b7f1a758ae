"""Every selectable backbone side by side: size, cost per window and a short phantom training.

    python benchmarks/backbones.py                         # all three parts, ~20 min on 2 cores
    python benchmarks/backbones.py --parts cost volume     # no training
    python benchmarks/backbones.py --parts training --steps 40 --json build/backbones.json

Three parts, each printed as a Markdown table for ``benchmarks/README.md``:

``cost``
    Per registry entry and form (baseline; MixACB training form and fused form; the seed
    systems as they are): trainable parameters at the paper width, GFLOP of one forward pass of
    one window and CPU seconds per window (batch 1, median of ``--repeats`` after a warm-up).
    The window is the backbone's own: 64³ for BuiNet and seed 001's FCN (their papers' patch),
    32³ for the others, one 144×192 slice (an axial slice of the iSeg-2017 grid) for the 2-D
    networks. GFLOP are ``torch.utils.flop_counter`` counts (2 × multiply-adds of convolutions
    and matrix products; normalisation, activations and pooling are not counted).
``volume``
    InfiNet (paper width, one network per view) over the whole iSeg-2017 grid 144×192×256, the
    figure seed 002 gives as "under 50 seconds" (on a GPU): every slice of the three views through
    the product's slice engine. ``--volume-slices 0`` runs the whole volume through the predictor
    (view average and vote included); the default times 16 slices per view and scales each view
    to all its slices (the cost is linear in the slice count), which keeps the part at a minute.
``training``
    2-fold cross-validation on synthetic phantoms (``--subjects`` iSeg-form phantoms, seed 100,
    dealt round-robin into two folds). Every network gets the **same budget**: ``--steps``
    optimiser steps of ``--voxels`` training voxels each (3-D: batches of 32³ patches; 2-D:
    batches of whole slices holding about as many pixels, the steps shared equally by the three
    view networks), at the reduced widths of :data:`REDUCED`. Each network keeps its own loss,
    input normalisation and augmentation (``TrainingConfig.for_architecture``). Optimisation is
    ``--schedule common`` (default): one optimiser for all, :data:`COMMON_SCHEDULE` (the papers'
    schedules are built for 10⁴ iterations; in a hundred steps they mostly measure the size of
    their learning rates), with BatchNorm statistics re-estimated over 8 batches at the end (at
    Keras' or TF's momentum, 0.99 / 0.997, a hundred steps leave them far from the weights); or
    ``--schedule paper``: each paper's optimiser and learning rate, its schedule compressed to the
    epochs run, nothing else changed. Each trained fold is
    fused (or copied) into a bundle and segments the held-out phantoms through the product's
    predictor (3-D: ``stride16``; 2-D: every slice of three views); Dice per tissue is averaged
    over all held-out phantoms of both folds. ``msfcn-context`` is not trained here: its
    out-of-fold first stage needs two FCN-1 trainings per fold (three times the budget).

Timings are wall-clock on whatever else the machine runs; record the machine with the table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from infant_tissue.bundle import default_metadata, save_bundle
from infant_tissue.evaluation.metrics import dice
from infant_tissue.inference.predictor import Predictor
from infant_tissue.inference.slices import VIEW_AXIS, SliceInferer
from infant_tissue.nn import build_model, count_parameters, fuse_model, spatial_dimensions
from infant_tissue.phantoms import make_iseg_subject, sample_subject
from infant_tissue.training import TrainingConfig
from infant_tissue.training.data import Subject, zscore_nonzero
from infant_tissue.training.ensemble import export_ensemble
from infant_tissue.training.trainer import train

VIEWS = ("axial", "coronal", "sagittal")
#: The iSeg-2017 grid (1 mm) that seed 002 times InfiNet on.
ISEG_SHAPE = (144, 192, 256)
#: One 2-D "window": an axial slice of that grid.
SLICE = (144, 192)

#: (registry name, form) rows of the cost table, in the order of seed 000's Table 2.
COST_ROWS: tuple[tuple[str, str], ...] = (
    *(
        (f"{family}-{kind}", form)
        for family in ("buinet", "unet3d", "cc3dfcn", "nlunet", "dunet")
        for kind, form in (("baseline", "baseline"), ("mixacb", "training"), ("mixacb", "fused"))
    ),
    ("msfcn", "-"),
    ("msfcn-context", "-"),
    ("infinet", "-"),
    ("damal", "-"),
    ("mixnet-v1", "-"),
    ("mixnet-v2", "-"),
    ("mixnet-v3", "-"),
)

#: Reduced widths of the training part: about a quarter of each paper's channels (MixNet, the
#: smallest, at paper width but v1 at a third) so that the whole part fits ~20 min on 2 cores.
REDUCED: dict[str, dict[str, Any]] = {
    "buinet-baseline": {"init_features": 16, "growth_rate": 4, "bn_size": 2},
    "buinet-mixacb": {"init_features": 16, "growth_rate": 4, "bn_size": 2},
    "unet3d-baseline": {"base_width": 8},
    "unet3d-mixacb": {"base_width": 8},
    "cc3dfcn-baseline": {"widths": [16, 16, 16, 8]},
    "cc3dfcn-mixacb": {"widths": [16, 16, 16, 8]},
    "nlunet-baseline": {"base_width": 8},
    "nlunet-mixacb": {"base_width": 8},
    "dunet-baseline": {"init_features": 8, "growth_rate": 4},
    "dunet-mixacb": {"init_features": 8, "growth_rate": 4},
    "msfcn": {"base_width": 8},
    "infinet": {"features": 16},
    "damal": {"base_width": 4},
    "mixnet-v1": {"features": 24},
    "mixnet-v2": {},
    "mixnet-v3": {},
}

#: ``--schedule common``: the optimisation every network gets in the short training part.
COMMON_SCHEDULE: dict[str, Any] = {
    "optimizer": "adam",
    "adam_betas": [0.9, 0.999],
    "adam_eps": 1e-8,
    "lr_schedule": "multistep",
    "lr_max": 2e-3,
    "lr_milestones": [0.5, 0.75],
    "lr_gammas": [0.3, 0.3],
    "weight_decay": 0.0,
    "weight_decay_mode": "coupled",
    "bn_recalibration_batches": 8,
}

LOGGER = logging.getLogger("benchmarks.backbones")


# ---------------------------------------------------------------------------------- cost
def window_for(model: torch.nn.Module, name: str) -> tuple[int, ...]:
    """The network's own inference window (see the module docstring)."""
    if spatial_dimensions(model) == 2:
        return SLICE
    side = 64 if name.startswith(("buinet", "msfcn")) else 32
    return (side,) * 3


def _network(name: str, form: str, **kwargs: Any) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(name, **kwargs).eval()
    return fuse_model(model) if form == "fused" else model


def cost_row(name: str, form: str, repeats: int) -> dict[str, Any]:
    """Parameters, GFLOP and CPU seconds of one window of one network at paper width."""
    model = _network(name, form)
    window = window_for(model, name)
    x = torch.randn(1, int(getattr(model, "in_channels", 2)), *window)
    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            model(x)
        model(x)  # warm-up (oneDNN primitive creation)
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            seconds.append(time.perf_counter() - start)
    return {
        "network": name,
        "form": form,
        "parameters": count_parameters(model),
        "window": "×".join(map(str, window)),
        "gflop": counter.get_total_flops() / 1e9,
        "seconds": statistics.median(seconds),
    }


# ---------------------------------------------------------------------------------- volume
def infinet_volume_seconds(
    shape: Sequence[int], folder: Path, threads: int, sample: int = 0
) -> dict[str, Any]:
    """Seconds for InfiNet (paper width, one network per view, random weights: the cost does
    not depend on them) to segment one volume of ``shape``.

    ``sample=0`` runs the whole volume through the product's predictor (three views, view
    average, vote). ``sample=N`` times the slice engine on the first ``N`` slices of each view
    and scales each view's time to all its slices (the engine's cost is linear in the number of
    slices: same batches, same slice shape), for machines where the full run is too long.
    """
    torch.manual_seed(0)
    nets = [build_model("infinet").eval() for _ in VIEWS]
    rng = np.random.default_rng(0)
    t1 = rng.uniform(1, 100, shape).astype(np.float32)
    t2 = rng.uniform(1, 100, shape).astype(np.float32)
    record: dict[str, Any] = {"shape": "×".join(map(str, shape)), "threads": threads}
    if sample:
        image = torch.from_numpy(np.stack([zscore_nonzero(t1), zscore_nonzero(t2)]))
        total = 0.0
        for view, net in zip(VIEWS, nets, strict=True):
            axis = VIEW_AXIS[view]
            inferer = SliceInferer(net, torch.device("cpu"))
            part = image.narrow(1 + axis, 0, sample).contiguous()
            inferer.view_probabilities(part.narrow(1 + axis, 0, 1), view)  # warm-up
            start = time.perf_counter()
            inferer.view_probabilities(part, view)
            total += (time.perf_counter() - start) * shape[axis] / sample
        return {**record, "seconds": total, "how": f"{sample} slices per view, scaled"}
    meta = default_metadata(
        name="infinet-timing",
        architecture={"name": "infinet", "kwargs": {}, "fused": False},
        dimensions=2,
        views=list(VIEWS),
        view_weights={v: 1.0 for v in VIEWS},
        patch_size=None,
        stride=None,
    )
    bundle = save_bundle(
        folder / "infinet-timing", nets, meta, member_info=[{"view": v} for v in VIEWS]
    )
    predictor = Predictor(bundle, device="cpu", num_threads=threads)
    start = time.perf_counter()
    predictor.predict(t1, t2, progress=False)
    return {**record, "seconds": time.perf_counter() - start, "how": "whole volume, predictor"}


# ---------------------------------------------------------------------------------- training
def phantom_subjects(count: int, seed: int, shape: Sequence[int]) -> list[tuple[Subject, Any]]:
    """(training subject, iSeg volumes) of ``count`` phantoms."""
    out = []
    for i in range(count):
        vols = make_iseg_subject(sample_subject(seed, i, tuple(shape)))
        t1, t2 = vols.t1.astype(np.float32), vols.t2.astype(np.float32)
        image = np.stack([zscore_nonzero(t1), zscore_nonzero(t2)])
        out.append((Subject(f"phantom-{i}", image, vols.labels, t1 > 0), vols))
    return out


def budget_config(
    name: str,
    view: str | None,
    *,
    steps: int,
    voxels: int,
    seed: int,
    threads: int,
    schedule: str = "common",
) -> TrainingConfig:
    """``name``'s own config with the benchmark's common budget and reduced width (and, with
    ``schedule="common"``, :data:`COMMON_SCHEDULE`)."""
    epochs = 4
    per_epoch = max(1, steps // epochs)
    if view is None:
        batch = max(1, voxels // 32**3)
        geometry = {"patch_size": 32}
    else:  # whole slices of the phantom grid: batch of about as many pixels, steps shared
        batch = max(1, voxels // (72 * 64))
        per_epoch = max(1, per_epoch // len(VIEWS))
        geometry = {"view": view}
    return TrainingConfig.for_architecture(
        name,
        architecture_kwargs=REDUCED[name],
        batch_size=batch,
        epochs=epochs,
        patches_per_epoch=per_epoch * batch,
        validation_patches=1,
        num_threads=threads,
        seed=seed,
        **geometry,
        **(COMMON_SCHEDULE if schedule == "common" else {}),
    )


def cross_validate(
    name: str,
    subjects: list[tuple[Subject, Any]],
    folder: Path,
    *,
    steps: int,
    voxels: int,
    threads: int,
    schedule: str,
) -> dict[str, Any]:
    """2-fold CV of one network: train, fuse, segment the held-out phantoms, Dice per tissue."""
    start = time.perf_counter()
    scores, params = [], 0
    folds = [subjects[0::2], subjects[1::2]]
    two_d = spatial_dimensions(build_model(name, **REDUCED[name])) == 2
    for k, held_out in enumerate(folds):
        training = [s for s, _ in folds[1 - k]]
        runs = []
        for view in VIEWS if two_d else (None,):
            config = budget_config(
                name,
                view,
                steps=steps,
                voxels=voxels,
                seed=k,
                threads=threads,
                schedule=schedule,
            )
            run = folder / f"{name}-fold{k}-{view or '3d'}"
            train(config, training, [], run, device="cpu", progress=False)
            runs.append(run)
        bundle = export_ensemble(runs, folder / f"{name}-fold{k}-bundle")
        predictor = Predictor(bundle, device="cpu", num_threads=threads)
        params = count_parameters(predictor.bundle.build_network())
        for _, vols in held_out:
            result = predictor.predict(
                vols.t1.astype(np.float32), vols.t2.astype(np.float32), mode="stride16"
            )
            scores.append([dice(result.labels == c, vols.labels == c) for c in (1, 2, 3)])
    mean = np.mean(scores, axis=0)
    return {
        "network": name,
        "parameters": params,
        "dice_csf": float(mean[0]),
        "dice_gm": float(mean[1]),
        "dice_wm": float(mean[2]),
        "dice_mean": float(mean.mean()),
        "seconds": time.perf_counter() - start,
    }


# ---------------------------------------------------------------------------------- output
def cpu_model() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or platform.machine()
    for line in text.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def cost_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| network | form | parameters | window | GFLOP / window | CPU s / window |",
        "|---|---|---:|---|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['network']} | {r['form']} | {r['parameters']:,} | {r['window']} | "
            f"{r['gflop']:.1f} | {r['seconds']:.2f} |"
        )
    return "\n".join(lines)


def training_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| network | parameters (reduced) | Dice CSF | Dice GM | Dice WM | mean | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['network']} | {r['parameters']:,} | {r['dice_csf']:.3f} | {r['dice_gm']:.3f} "
            f"| {r['dice_wm']:.3f} | {r['dice_mean']:.3f} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--parts",
        nargs="+",
        choices=("cost", "volume", "training"),
        default=["cost", "volume", "training"],
    )
    p.add_argument("--networks", nargs="+", help="limit the cost and training parts to these")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="timed forward passes per window")
    p.add_argument(
        "--volume-slices",
        type=int,
        default=16,
        help="InfiNet volume: time this many slices per view and scale (0: the whole volume)",
    )
    p.add_argument("--subjects", type=int, default=4, help="phantoms for the 2-fold training")
    p.add_argument("--shape", type=int, nargs=3, default=(64, 72, 64), help="phantom grid")
    p.add_argument("--steps", type=int, default=48, help="optimiser steps per fold and network")
    p.add_argument(
        "--schedule",
        choices=("common", "paper"),
        default="common",
        help="training part: one optimiser for all (default) or each paper's",
    )
    p.add_argument("--voxels", type=int, default=2 * 32**3, help="training voxels per step")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--keep", type=Path, help="keep runs and bundles in this folder")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    wanted = set(args.networks or [])
    results: dict[str, Any] = {
        "machine": f"{cpu_model()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
    }
    results["load_average_start"] = os.getloadavg()[0]
    results["options"] = vars(args) | {"json": str(args.json), "keep": str(args.keep)}
    print(f"machine: {results['machine']}, load {results['load_average_start']:.1f}", flush=True)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="backbones-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if "cost" in args.parts:
            rows = []
            for name, form in COST_ROWS:
                if wanted and name not in wanted:
                    continue
                rows.append(cost_row(name, form, args.repeats))
                print(f"  cost {name} {form}: {rows[-1]['seconds']:.2f} s", flush=True)
            results["cost"] = rows
            print(cost_table(rows), flush=True)
        if "volume" in args.parts:
            v = infinet_volume_seconds(ISEG_SHAPE, folder, args.threads, args.volume_slices)
            results["volume"] = v
            print(
                f"InfiNet whole volume {v['shape']}: {v['seconds']:.0f} s on the CPU "
                f"({v['how']}; seed 002: under 50 s, on a GPU)",
                flush=True,
            )
        if "training" in args.parts:
            subjects = phantom_subjects(args.subjects, 100, args.shape)
            rows = []
            for name in REDUCED:
                if wanted and name not in wanted:
                    continue
                rows.append(
                    cross_validate(
                        name,
                        subjects,
                        folder,
                        steps=args.steps,
                        voxels=args.voxels,
                        threads=args.threads,
                        schedule=args.schedule,
                    )
                )
                r = rows[-1]
                print(
                    f"  trained {name}: Dice {r['dice_csf']:.3f} {r['dice_gm']:.3f} "
                    f"{r['dice_wm']:.3f} ({r['seconds']:.0f} s)",
                    flush=True,
                )
            results["training"] = rows
            print(training_table(rows), flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    results["load_average_end"] = os.getloadavg()[0]
    print(f"load average at the end: {results['load_average_end']:.1f}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
