"""What every command shares: exit codes, argument parsing, validators, logging, one-line errors.

Options are validated while the command line is parsed (``type=`` callables), so a typo in
``--inference-mode`` or ``--device`` exits 64 before any workflow is built or any SLURM job is
written, rather than failing every session after registration and N4 have run.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from .._types import VOTES, check_device_spec
from ..errors import ExitCode, InfantTissueError, describe, exit_code_of

__all__ = [
    "ExitCode",
    "add_app_options",
    "add_data_selection",
    "error",
    "guarded",
    "parse_args",
    "parse_device",
    "parse_mode",
    "setup_logging",
]

#: Loggers of the libraries the app drives; quiet unless -vv (their tracebacks go to crash files).
LIBRARY_LOGGERS = ("nipype", "nipype.workflow", "nipype.interface", "nipype.utils", "bids")


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace | int:
    """The parsed arguments, or the exit code when argparse stops: 0 after ``--help`` or
    ``--version``, 64 (BIDS-Apps usage error) instead of argparse's 2 on a bad command line."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        return ExitCode.OK if exc.code in (0, None) else ExitCode.USAGE


def parse_mode(text: str) -> str:
    """``--inference-mode`` validator: the mode string, checked by the engine's own grammar."""
    from ..inference.modes import parse_mode as parse  # torch-free

    try:
        return parse(text).name
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_device(text: str) -> str:
    """``--device`` validator: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    try:
        return check_device_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def setup_logging(prog: str, verbose: int = 0, *, timestamps: bool = False) -> None:
    """One logging set-up for every command.

    ``verbose`` 0: the app's progress (INFO) and every warning; 1: the app's details (DEBUG);
    2 and more: the libraries' own INFO logs too (nipype's scheduler, pybids). Below 2 the
    libraries log nothing but CRITICAL: nipype's node tracebacks belong in the crash files.
    """
    fmt = (
        f"%(asctime)s {prog}: %(levelname)s: %(message)s"
        if timestamps
        else (f"{prog}: %(levelname)s: %(message)s")
    )
    root = logging.getLogger()
    if not any(getattr(h, "_infant_tissue", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler._infant_tissue = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    for handler in root.handlers:
        if getattr(handler, "_infant_tissue", False):
            handler.setFormatter(logging.Formatter(fmt))
    root.setLevel(logging.WARNING)
    logging.getLogger("infant_tissue").setLevel(logging.DEBUG if verbose >= 1 else logging.INFO)
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO if verbose >= 2 else logging.CRITICAL)
        # nipype's loggers carry their own handler: propagating to ours would print twice
        if name.startswith("nipype"):
            logger.propagate = False


def error(prog: str, message: str) -> None:
    """``prog: error: message`` on stderr, one line."""
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr)


def guarded(prog: str, body: Callable[[], int]) -> int:
    """Run a command's body; every expected failure (an
    :class:`~infant_tissue.errors.InfantTissueError`, a bad value, an OS error of the disk) is
    one line on stderr and its exit code, never a traceback."""
    try:
        return int(body())
    except (InfantTissueError, OSError, ValueError) as exc:
        error(prog, describe(exc))
        return exit_code_of(exc)


def add_data_selection(parser: argparse.ArgumentParser, skip_validation_help: str):
    """The BIDS-App's data selection options (shared by the app and ``batch``, which passes them
    on to it): participants, sessions, pybids filters, skipping validation. Returns the group."""
    g = parser.add_argument_group("selecting data")
    g.add_argument(
        "--participant-label",
        "--participant_label",
        nargs="+",
        metavar="LABEL",
        help="participants to process (with or without 'sub-'; default: all)",
    )
    g.add_argument("--session-label", nargs="+", metavar="LABEL", help="sessions to process")
    g.add_argument(
        "--bids-filter-file",
        type=Path,
        metavar="FILE",
        help='JSON pybids filters per suffix, e.g. {"t1w": {"acquisition": "mprage"}}',
    )
    g.add_argument("--skip-bids-validation", action="store_true", help=skip_validation_help)
    return g


def add_app_options(parser: argparse.ArgumentParser, *, defaults: bool = True):
    """The participant-level options the BIDS-App and ``batch`` (which passes them on) share:
    inputs, model and inference, per-run resources. ``defaults=False`` leaves every value None
    (``batch`` passes on only what was given). Returns the (inputs, model, resources) groups."""

    def default(value):
        return value if defaults else None

    g = parser.add_argument_group("inputs")
    g.add_argument("--age-months", type=float, help="age at scan in months (overrides the tables)")
    g.add_argument(
        "--skull-stripped",
        action="store_true",
        help="inputs are already brain-extracted (iSeg-like): mask = non-zero voxels",
    )
    g.add_argument(
        "--keep-cerebellum",
        action="store_true",
        help="do not remove cerebellum and brain stem before segmenting. Models trained on iSeg "
        "data (input domain 'cerebrum', e.g. the published 3D-MASNet) never saw them: use it only "
        "for inputs whose cerebellum and brain stem are already removed",
    )
    g.add_argument(
        "--derivatives",
        type=Path,
        metavar="DIR",
        help="derivatives with precomputed NiBabies-style desc-brain_mask files",
    )
    g.add_argument(
        "--t2w-registered",
        action="store_true",
        help="the T2w is already aligned with the T1w (e.g. iSeg-form or NiBabies-preprocessed "
        "inputs): resample it through the headers, do not register it. The QC record checks it",
    )
    q = parser.add_argument_group("quality control")
    q.add_argument(
        "--qc-norms",
        type=Path,
        metavar="TSV",
        help="expected brain-mask volume by age (columns age_months, brain_mask_ml) for the QC "
        "verdict; default: the growth curve of the literature (docs/qc.md)",
    )
    m = parser.add_argument_group("model and inference")
    m.add_argument("--models", type=Path, metavar="DIR", help="weight bundle (default: packaged)")
    m.add_argument(
        "--inference-mode",
        type=parse_mode,
        default=default("faithful"),
        metavar="MODE",
        help="faithful (paper), fast, stride16, tile64, ... (see docs/inference.md)",
    )
    m.add_argument("--vote", choices=VOTES, default=default("hard"), help="ensemble vote rule")
    m.add_argument(
        "--device", type=parse_device, default=default("auto"), help="auto, cpu or cuda[:N]"
    )
    r = parser.add_argument_group("resources")
    r.add_argument("--mem-gb", type=float, metavar="GB", help="memory available to the run")
    r.add_argument(
        "--clean-workdir",
        action="store_true",
        help="remove a session's work folder after it succeeds",
    )
    return g, m, r
