"""What every command shares: exit codes and argument parsing with BIDS-Apps exit codes."""

from __future__ import annotations

import argparse

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOINPUT = 0, 1, 64, 66


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace | int:
    """The parsed arguments, or the exit code when argparse stops: 0 after ``--help`` or
    ``--version``, 64 (BIDS-Apps usage error) instead of argparse's 2 on a bad command line."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_OK if exc.code in (0, None) else EXIT_USAGE
