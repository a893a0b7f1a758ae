"""``infant-tissue fuse RUN [RUN ...] --out BUNDLE``: trained runs -> fused ensemble bundle."""

from __future__ import annotations

import argparse

from ._common import ExitCode, guarded, parse_args, setup_logging

PROG = "infant-tissue fuse"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Fuse the MixACB blocks of trained runs (each becomes one ensemble member) "
        "and write a weight bundle recording the runs' data, configuration, software version and "
        "sha256.",
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
    )
    error = bundle.metadata["provenance"]["fusion_max_abs_error"]
    print(
        f"wrote {bundle.path}: {len(bundle)} members, fused vs trained max |Δ logits| {error:.1e}, "
        f"sha256 {bundle.sha256}"
    )
    return ExitCode.OK
