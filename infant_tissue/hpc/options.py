"""From the ``batch`` command's options to a :class:`~.plan.BatchPlan`: checks of the inputs, the
sessions worth an allocation, the options passed on to every participant run."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputNotFoundError
from .plan import AppOptions, BatchError, BatchPlan, Container, Resources, check_label, make_tasks

#: App options passed on with their value, and flags passed on when set.
VALUE_OPTIONS = ("inference_mode", "vote", "device", "age_months", "mem_gb", "qc_norms")
FLAG_OPTIONS = (
    "skull_stripped",
    "keep_cerebellum",
    "t2w_registered",
    "clean_workdir",
    "skip_bids_validation",
)


@dataclass(frozen=True)
class BatchInputs:
    """What :func:`plan_from_options` made: the plan, and the sessions it skipped (with why)."""

    plan: BatchPlan
    skipped: tuple[str, ...]


def absolute(path: str | os.PathLike[str]) -> Path:
    """Absolute and normalised, without resolving symlinks (site paths stay as users know them)."""
    return Path(os.path.abspath(os.path.expanduser(path)))


def default_executable() -> Path | None:
    """The ``infant-tissue`` beside this Python (its venv), else the one on PATH.

    A SLURM job does not necessarily inherit an activated venv, so the script names it by path.
    """
    sibling = Path(sys.executable).with_name("infant-tissue")
    if sibling.is_file():
        return absolute(sibling)
    found = shutil.which("infant-tissue")
    return absolute(Path(found)) if found else None


def app_flags(options: Any) -> tuple[str, ...]:
    """The participant-level options of ``batch`` as the BIDS-App's own flags."""
    flags: list[str] = []
    for option in VALUE_OPTIONS:
        value = getattr(options, option)
        if isinstance(value, Path):
            value = absolute(value)  # the job may start in another folder
        if value is not None:
            flags += ["--" + option.replace("_", "-"), str(value)]
    for option in FLAG_OPTIONS:
        if getattr(options, option):
            flags.append("--" + option.replace("_", "-"))
    return tuple(flags)


def check_inputs(options: Any) -> None:
    """Raise for the first missing or conflicting input (one line naming it)."""
    if not options.bids_dir.is_dir():
        raise InputNotFoundError(f"{options.bids_dir}: BIDS folder not found")
    if absolute(options.bids_dir) == absolute(options.output_dir):
        raise BatchError("output_dir must differ from bids_dir")
    if options.container is not None and not options.container.is_file():
        raise InputNotFoundError(f"{options.container}: container image not found")
    for option in ("models", "derivatives", "templateflow_home"):
        path = getattr(options, option)
        if path is not None and not path.is_dir():
            raise InputNotFoundError(f"{path}: --{option.replace('_', '-')} folder not found")
    if options.bids_filter_file is not None and not options.bids_filter_file.is_file():
        raise InputNotFoundError(f"{options.bids_filter_file}: BIDS filter file not found")
    if options.container is None:
        if options.executable is not None and not options.executable.is_file():
            raise InputNotFoundError(f"{options.executable}: --executable not found")
        if options.executable is None and default_executable() is None:
            raise InputNotFoundError("infant-tissue executable not found; give --executable PATH")


def plan_from_options(options: Any, app_extra: tuple[str, ...] = ()) -> BatchInputs:
    """Check the inputs, find the usable sessions and plan the batch.

    ``options`` has the attributes of the ``batch`` command's arguments. Sessions that cannot
    run (no T2w, unreadable...) are not worth a SLURM allocation (maybe a GPU) to fail in a
    second: they are skipped and returned with their reason; the group level lists them.
    """
    from ..utils.bids import collect_sessions
    from ..utils.filters import load_bids_filters

    check_inputs(options)
    participants = [check_label(x, "participant") for x in options.participant_label or []]
    sessions = [check_label(x, "session") for x in options.session_label or []]
    filters = load_bids_filters(options.bids_filter_file) if options.bids_filter_file else None
    units = collect_sessions(
        options.bids_dir, participants or None, sessions or None, filters,
        age_override=options.age_months,
    )  # fmt: skip
    usable = [u for u in units if u.ok]
    skipped = tuple(f"{u.label}: " + "; ".join(u.problems) for u in units if not u.ok)
    if not usable:
        raise InputNotFoundError(f"{options.bids_dir}: no session with usable T1w and T2w images")
    return BatchInputs(_plan(options, app_extra, usable), skipped)


def _plan(options: Any, app_extra: tuple[str, ...], units) -> BatchPlan:
    output_dir = absolute(options.output_dir)
    batch_dir = absolute(options.batch_dir) if options.batch_dir else output_dir / "code" / "slurm"
    common = {
        "partition": options.partition,
        "account": options.account,
        "extra": tuple(options.sbatch_option),
    }
    container = executable = None
    if options.container is not None:
        container = Container(absolute(options.container), options.runtime, tuple(options.bind))
    else:
        executable = absolute(options.executable) if options.executable else default_executable()
    given = {
        key: absolute(getattr(options, key)) if getattr(options, key) else None
        for key in ("models", "derivatives", "bids_filter_file", "templateflow_home")
    }
    return BatchPlan(
        bids_dir=absolute(options.bids_dir),
        output_dir=output_dir,
        work_dir=absolute(options.work_dir),
        batch_dir=batch_dir,
        tasks=tuple(make_tasks(units)),
        resources=Resources(
            job_name=options.job_name,
            cpus_per_task=options.cpus_per_task,
            mem=options.mem,
            time=options.time,
            gpus=options.gpus,
            max_running=options.max_running,
            **common,
        ),
        # The group level is a few table reads and plots: one CPU, no GPU.
        group_resources=Resources(
            job_name=f"{options.job_name}-group",
            cpus_per_task=1,
            mem=options.group_mem,
            time=options.group_time,
            **common,
        ),
        app=AppOptions(
            **given,
            omp_nthreads=options.omp_nthreads,
            flags=app_flags(options) + tuple(app_extra),
            group_flags=("--skip-bids-validation",) if options.skip_bids_validation else (),
        ),
        container=container,
        executable=executable,
        prologue=tuple(options.prologue),
    )
