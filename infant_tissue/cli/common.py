"""What every command shares: exit codes and argument parsing with BIDS-Apps exit codes."""

from __future__ import annotations

import argparse
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOINPUT = 0, 1, 64, 66


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace | int:
    """The parsed arguments, or the exit code when argparse stops: 0 after ``--help`` or
    ``--version``, 64 (BIDS-Apps usage error) instead of argparse's 2 on a bad command line."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_OK if exc.code in (0, None) else EXIT_USAGE


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
