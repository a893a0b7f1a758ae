"""``infant-tissue import-keras``: published 3D-MASNet Keras weights -> weight bundle."""

from __future__ import annotations

import argparse
import shlex
import sys

from .. import __version__
from ._common import ExitCode, guarded, parse_args, setup_logging

PROG = "infant-tissue import-keras"

EXAMPLES = """\
examples:
  # the published iSeg-2019 ensemble (fused "deploy" form), ten members
  infant-tissue import-keras 3D-MASNet/weights/ensemble/{0..9}.h5 --out masnet-iseg2019

  # the example model in training form (four branches + BN per group): fused on import
  infant-tissue import-keras 3D-MASNet/weights/example/test.h5 --out masnet-example --form train
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Convert Keras-2 HDF5 weight files of the 3D-MASNet DU-Net (reference implementation "
            "layout) into an infant-tissue weight bundle: one safetensors member per file, "
            "sha256-checked, fused. Network widths are read from the file."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="+", metavar="FILE.h5", help="Keras weight files")
    parser.add_argument("--out", required=True, metavar="BUNDLE", help="bundle folder to create")
    parser.add_argument(
        "--form",
        choices=("auto", "deploy", "train"),
        default="auto",
        help="form of the files: fused 'deploy' or training form 'train' (default: detected)",
    )
    parser.add_argument("--name", help="bundle name recorded in model.json (default: folder name)")
    parser.add_argument(
        "--fusion-epsilon",
        type=float,
        default=None,
        metavar="EPS",
        help=(
            "BatchNorm epsilon for fusing training-form files (default: the layers' own 1e-3, "
            "which reproduces the Keras outputs; the reference deploy script used 1e-5)"
        ),
    )
    parser.add_argument(
        "--licence",
        default=(
            "Weights converted from the public 3D-MASNet repository (RicardoZiTseng/3D-MASNet); "
            "their terms of use are those of that repository."
        ),
        help="licence note recorded in model.json",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing bundle")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    if isinstance(args, int):
        return args
    setup_logging(PROG, args.verbose)
    command = "infant-tissue import-keras " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    return guarded(PROG, lambda: _import(args, f"{command} (infant-tissue {__version__})"))


def _import(args: argparse.Namespace, command: str) -> int:
    from ..nn.keras import import_keras_bundle  # here, so that --help stays fast

    bundle = import_keras_bundle(
        args.files,
        args.out,
        form=args.form,
        name=args.name,
        fusion_epsilon=args.fusion_epsilon,
        licence=args.licence,
        command=command,
        overwrite=args.force,
    )
    print(f"wrote {bundle.path} ({len(bundle)} members, sha256 {bundle.sha256})")
    return ExitCode.OK
