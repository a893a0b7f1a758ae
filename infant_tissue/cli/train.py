"""``infant-tissue train``: train one network (DU-Net or a seed-system backbone) on labelled
infant data. Parses the command line and calls :func:`infant_tissue.training.pipeline.train_from_data`."""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from ..bundle_schema import DEFAULT_INPUT_DOMAIN, INPUT_DOMAINS
from ..errors import InfantTissueError
from ._common import ExitCode, error, parse_args, setup_logging

EXAMPLES = """\
examples:
  # the paper's schedule (Table 1), fold 1 of its 2-fold protocol, on iSeg-2019 training data
  infant-tissue train iSeg-2019-Training --out runs/fold0 --folds 2 --fold 0

  # a short run from a config file, then resume it after an interruption
  infant-tissue train phantoms/iseg --out runs/demo --config demo.yaml
  infant-tissue train phantoms/iseg --out runs/demo --config demo.yaml --resume

  # another backbone with its own paper schedule (docs/backbones.md)
  infant-tissue train iSeg-2019-Training --arch buinet-mixacb --out runs/buinet0 --folds 2 --fold 0

  # 2-D networks: one run per view; seed 001: FCN-1 on every fold, then FCN-2 on their context
  infant-tissue train DATA --arch infinet --view coronal --out runs/infinet-coronal
  infant-tissue train DATA --arch msfcn --out runs/fcn1-f0 --folds 2 --fold 0   # and --fold 1
  infant-tissue train DATA --arch msfcn-context --context-from runs/fcn1-f0 runs/fcn1-f1 \\
      --out runs/fcn2-f0 --folds 2 --fold 0
"""

#: flag -> TrainingConfig field, for flags that override the config file
OVERRIDES = {
    "arch": "architecture",
    "patch_size": "patch_size",
    "batch_size": "batch_size",
    "epochs": "epochs",
    "patches_per_epoch": "patches_per_epoch",
    "lr_max": "lr_max",
    "lr_min": "lr_min",
    "weight_decay": "weight_decay",
    "sampling": "sampling",
    "folds": "folds",
    "fold": "fold",
    "seed": "seed",
    "omp_nthreads": "num_threads",
    "view": "view",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="infant-tissue train",
        description="Train a network with its paper's schedule (default: the 3D-MASNet "
        "DU-Net; --arch picks a seed-system backbone, docs/backbones.md). Input: a "
        "folder in iSeg layout (subject-N-T1/-T2/-label as .hdr/.img or .nii[.gz]; labels "
        "0/10/150/250 or 0/1/2/3), or a BIDS dataset with --derivatives holding manual dseg "
        "label maps and their dseg.tsv lookup table. Writes RUN/model.safetensors + model.json, log.csv, config.json "
        "and a resumable checkpoint after every epoch.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data", help="training data folder (iSeg layout) or BIDS dataset")
    p.add_argument(
        "--derivatives",
        metavar="DIR",
        help="BIDS input: derivatives with sub-X[/ses-Y]/anat/*_dseg.nii[.gz] + dseg.tsv",
    )
    p.add_argument("--dseg-desc", metavar="LABEL", help="BIDS input: which desc-<LABEL> dseg")
    p.add_argument(
        "--participant-label", nargs="+", metavar="LABEL", help="BIDS input: participants to use"
    )
    p.add_argument("--out", required=True, metavar="RUN", help="run folder")
    p.add_argument("--config", help="JSON/YAML file of TrainingConfig fields (flags override it)")
    p.add_argument(
        "--arch",
        help="architecture from the registry, trained with its paper's schedule: dunet-mixacb "
        "(default), dunet-baseline, buinet-/unet3d-/cc3dfcn-/nlunet-{baseline,mixacb}, msfcn, "
        "msfcn-context, infinet, mixnet-v1/v2/v3, damal",
    )
    p.add_argument(
        "--view",
        choices=("axial", "coronal", "sagittal"),
        help="2-D networks (infinet, mixnet-*): the slice orientation of this run",
    )
    p.add_argument(
        "--context-from",
        nargs="+",
        metavar="RUN",
        help="msfcn-context: the FCN-1 runs (one per fold) whose out-of-fold segmentations give "
        "each subject its context maps",
    )
    p.add_argument("--arch-kwargs", help="JSON keyword arguments, e.g. '{\"init_features\": 16}'")
    p.add_argument("--patch-size", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--patches-per-epoch", type=int)
    p.add_argument("--lr-max", type=float)
    p.add_argument("--lr-min", type=float)
    p.add_argument("--weight-decay", type=float, help="Keras-style L2 on convolution kernels")
    p.add_argument("--sampling", choices=("brain", "balanced"))
    p.add_argument("--augment", action="store_true", default=None, help="random flips/rot90")
    p.add_argument("--folds", type=int, help="k-fold cross-validation by subject")
    p.add_argument("--fold", type=int, help="which fold to hold out (0-based)")
    p.add_argument("--seed", type=int)
    p.add_argument("--omp-nthreads", type=int, help="CPU threads for PyTorch")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    p.add_argument(
        "--init-from",
        metavar="RUN",
        help="fine-tune: start from a finished run's weights (same architecture)",
    )
    p.add_argument(
        "--input-domain",
        choices=INPUT_DOMAINS,
        default=DEFAULT_INPUT_DOMAIN,
        help="what the training images hold: 'cerebrum' (cerebellum and brain stem removed, as "
        "iSeg; the BIDS-App then removes them before segmenting) or 'whole-brain' "
        f"(default: {DEFAULT_INPUT_DOMAIN})",
    )
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("-v", "--verbose", action="count", default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    if isinstance(args, int):
        return args
    setup_logging("infant-tissue train", args.verbose, timestamps=True)
    from ..training import TrainingConfig
    from ..training.pipeline import train_from_data

    def fail(message: str, code: int = ExitCode.FAILED) -> int:
        error("infant-tissue train", message)
        return code

    try:
        base = TrainingConfig.read_file(args.config) if args.config else {}
        for flag, fieldname in OVERRIDES.items():
            value = getattr(args, flag)
            if value is not None:
                base[fieldname] = value
        if args.augment:
            base["augment"] = True
        if args.arch_kwargs:
            base["architecture_kwargs"] = json.loads(args.arch_kwargs)
        config = TrainingConfig.from_dict(base)
    except FileNotFoundError as exc:
        return fail(f"{exc.filename}: no such file", ExitCode.NOINPUT)
    except (ValueError, TypeError) as exc:
        where = f"{args.config}: " if args.config and not str(exc).startswith(args.config) else ""
        return fail(f"{where}{exc}", ExitCode.USAGE)

    command = "infant-tissue train " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    try:
        result = train_from_data(
            config,
            args.data,
            args.out,
            derivatives=args.derivatives,
            dseg_desc=args.dseg_desc,
            participant_labels=args.participant_label,
            input_domain=args.input_domain,
            context_from=args.context_from or (),
            device=args.device,
            resume=args.resume,
            progress=args.progress,
            init_from=args.init_from,
            command=command,
        )
    except InfantTissueError as exc:
        return fail(str(exc), exc.exit_code)
    except FileNotFoundError as exc:
        return fail(str(exc), ExitCode.NOINPUT)
    except (FileExistsError, ValueError, RuntimeError) as exc:
        return fail(str(exc))
    last = result.history[-1] if result.history else {}
    print(
        f"trained {result.run_dir} ({result.epochs_run} epochs this run); last epoch: loss "
        f"{last.get('loss', float('nan')):.4f}, validation Dice CSF "
        f"{last.get('val_dice_csf', float('nan')):.3f} GM {last.get('val_dice_gm', float('nan')):.3f} "
        f"WM {last.get('val_dice_wm', float('nan')):.3f}"
    )
    return ExitCode.OK
