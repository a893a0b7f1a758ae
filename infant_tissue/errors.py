"""Exit codes and the error base class: one owner for what a failure means to the caller.

Every error the application expects (bad input, missing template, unusable bundle, unwritable
output...) is an :class:`InfantTissueError` carrying the exit code the command line returns and a
message that is one line naming the file and the problem. Errors of the environment the
operating system raises (read-only or full disk, an output path that is a file) are mapped by
:func:`exit_code_of` and described by :func:`describe`, so no caller prints a traceback for them.
"""

from __future__ import annotations

import errno
from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes: the BIDS-Apps draft (0, 1, 16, 17) and the BSD ``sysexits`` for the rest."""

    OK = 0
    FAILED = 1  # some participant (or the command's work) failed
    VALIDATION = 16  # the input dataset is not valid BIDS
    LEVEL = 17  # unknown analysis level
    USAGE = 64  # bad command line
    NOINPUT = 66  # an input (dataset, file, participant, template) does not exist
    UNAVAILABLE = 69  # a service is missing (sbatch for --submit)
    CANTCREAT = 73  # the output cannot be created (read-only, a file in the way, no permission)
    IOERR = 74  # an I/O error while writing (a full disk)


class InfantTissueError(Exception):
    """Base of every expected failure; ``exit_code`` is what the command line returns."""

    exit_code: ExitCode = ExitCode.FAILED


class InputNotFoundError(InfantTissueError):
    """Nothing to work on: the dataset, file or selection asked for is not there."""

    exit_code = ExitCode.NOINPUT


class OutputError(InfantTissueError):
    """The output (or work) folder cannot be created or written; one line naming it."""

    exit_code = ExitCode.CANTCREAT


#: OS errors that say the disk is full: the write failed, not the folder
_FULL = (errno.ENOSPC, errno.EDQUOT)
#: OS errors that say the place cannot be written at all
_CANNOT_CREATE = (
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.ENOTDIR,
    errno.EEXIST,
    errno.EISDIR,
    errno.ENOENT,
)


def exit_code_of(exc: BaseException) -> ExitCode:
    """The exit code for an exception a command could not complete because of."""
    if isinstance(exc, InfantTissueError):
        return exc.exit_code
    if isinstance(exc, OSError):
        if exc.errno in _FULL:
            return ExitCode.IOERR
        if isinstance(exc, FileNotFoundError) and not exc.filename2:
            return ExitCode.NOINPUT
        if exc.errno in _CANNOT_CREATE:
            return ExitCode.CANTCREAT
        return ExitCode.IOERR
    return ExitCode.FAILED


def describe(exc: BaseException) -> str:
    """One line for the user: ``FILE: reason`` for OS errors, the first line of the message
    otherwise (never a traceback)."""
    if isinstance(exc, OSError) and not isinstance(exc, InfantTissueError) and exc.strerror:
        where = exc.filename if exc.filename is not None else ""
        reason = {
            errno.ENOSPC: "no space left on the device (disk full)",
            errno.EROFS: "read-only file system",
        }.get(exc.errno, exc.strerror.lower() if exc.strerror else str(exc))
        return f"{where}: {reason}" if where else reason
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def output_error(path, exc: OSError, what: str = "output folder") -> OutputError:
    """An :class:`OutputError` naming ``path`` for an OS error met while preparing it."""
    err = OutputError(f"{path}: cannot use as {what}: {describe(exc).split(': ')[-1]}")
    if exc.errno in _FULL:
        err.exit_code = ExitCode.IOERR
    return err
