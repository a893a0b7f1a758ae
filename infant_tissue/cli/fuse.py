"""``infant-tissue fuse RUN [RUN ...] --out BUNDLE``: trained runs -> fused ensemble bundle."""

from __future__ import annotations

import argparse

from ._common import ExitCode, guarded, parse_args, setup_logging

PROG = "infant-tissue fuse"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Fuse the MixACB blocks of trained runs (each becomes one ensemble member; "
        "networks without MixACB are copied) and write a weight bundle recording the runs' data, "
        "configuration, software version and sha256. Runs of 2-D networks are grouped by view; "
        "seed 001's FCN-2 runs bring their FCN-1 runs along as the bundle's first stage.",
    )
    parser.add_argument(
        "runs", nargs="+", metavar="RUN", help="run folders of 'infant-tissue train'"
    )
    parser.add_argument("--out", required=True, metavar="BUNDLE")
    parser.add_argument("--name", help="bundle name (default: folder name)")
    parser.add_argument("--float16", action="store_true", help="store weights as float16")
    parser.add_argument("--description", default="", help="free text recorded in model.json")
    parser.add_argument("--licence", default="", help="licence / terms-of-use note")
    parser.add_argument("--force", action="store_true", help="replace an existing bundle")
    parser.add_argument(
        "--stride", type=int, help="3-D bundles: inference stride (default: the paper's)"
    )
    parser.add_argument(
        "--view-weights",
        type=_view_weights,
        metavar="VIEW=W,...",
        help="2-D bundles: weights of the views' softmax (default 1 each; MixNet's paper: "
        "axial=4,coronal=1,sagittal=1)",
    )
    args = parse_args(parser, argv)
    if isinstance(args, int):
        return args

    setup_logging(PROG)
    return guarded(PROG, lambda: _fuse(args))


def _fuse(args: argparse.Namespace) -> int:
    import torch

    from ..training.ensemble import export_ensemble

    bundle = export_ensemble(
        args.runs,
        args.out,
        name=args.name,
        dtype=torch.float16 if args.float16 else torch.float32,
        licence=args.licence,
        description=args.description,
        overwrite=args.force,
        stride=args.stride,
        view_weights=args.view_weights,
    )
    error = bundle.metadata["provenance"]["fusion_max_abs_error"]
    how = "fused" if bundle.architecture.get("fused") else "copied"
    stage = " (+ first stage)" if bundle.metadata.get("first_stage") else ""
    print(
        f"wrote {bundle.path}: {len(bundle)} members{stage}, {how}, vs trained max |Δ logits| "
        f"{error:.1e}, sha256 {bundle.sha256}"
    )
    return ExitCode.OK


def _view_weights(text: str) -> dict[str, float]:
    """``axial=4,coronal=1,sagittal=1`` -> a mapping (argparse type)."""
    weights = {}
    for item in text.split(","):
        view, _, value = item.partition("=")
        try:
            weights[view.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected VIEW=WEIGHT, got {item!r}") from None
        if view.strip() not in ("axial", "coronal", "sagittal") or not weights[view.strip()] > 0:
            raise argparse.ArgumentTypeError(f"expected a view and a positive weight: {item!r}")
    return weights
