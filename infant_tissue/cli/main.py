"""``infant-tissue`` console script: dispatches ``infant-tissue COMMAND ...`` to its module.

Each command module exposes ``main(argv: list[str] | None) -> int`` returning the exit code.
Modules are imported lazily so that ``infant-tissue evaluate`` does not pay for torch/nipype.
"""

from __future__ import annotations

import importlib
import sys

from .. import __version__
from ..errors import ExitCode

#: command name -> (module, one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "import-keras": (
        "infant_tissue.cli.import_keras",
        "convert published 3D-MASNet Keras HDF5 weights into a weight bundle",
    ),
    "demo": (
        "infant_tissue.cli.demo",
        "build, fuse, save and reload the paper's network (model-core tour, seconds on CPU)",
    ),
    "train": (
        "infant_tissue.cli.train",
        "train a DU-Net or a seed-system backbone with its paper's schedule; resumable",
    ),
    "fuse": (
        "infant_tissue.cli.fuse",
        "fuse trained runs into one ensemble weight bundle with provenance",
    ),
    "model-info": (
        "infant_tissue.cli.model_info",
        "verify a weight bundle and print its architecture, members and checksums",
    ),
    "evaluate": (
        "infant_tissue.cli.evaluate",
        "score segmentations against ground truth: Dice, MHD, ASD, HD95, VS per tissue",
    ),
    "make-phantoms": (
        "infant_tissue.cli.make_phantoms",
        "generate synthetic 6-month infant phantoms (raw BIDS and/or iSeg layout)",
    ),
    "batch": (
        "infant_tissue.cli.batch",
        "write (and with --submit, submit) a SLURM array job, one task per session",
    ),
}


def usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = [
        f"infant-tissue {__version__}",
        "",
        "usage: infant-tissue BIDS_DIR OUTPUT_DIR {participant,group} [options]   (the BIDS-App)",
        "       infant-tissue COMMAND [options]",
        "",
        "commands:",
        *(f"  {name:<{width}}  {summary}" for name, (_, summary) in sorted(COMMANDS.items())),
        "",
        "Run 'infant-tissue --help' for the BIDS-App options, "
        "'infant-tissue COMMAND --help' for a command's.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a command, or to the BIDS-App when the first argument is not a command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(usage(), file=sys.stderr)
        return ExitCode.USAGE
    if argv[0] == "--commands":
        print(usage())
        return 0
    if argv[0] in COMMANDS:
        module = importlib.import_module(COMMANDS[argv[0]][0])
        return int(module.main(argv[1:]) or 0)
    from . import run

    if argv[0] in ("-h", "--help"):
        run.build_parser().print_help()
        print("\n" + usage())
        return 0
    return run.main(argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
