"""``infant-tissue batch``: a SLURM array job (one task per session) and its group-level job.

Exit codes (sysexits): 0 written (and submitted with ``--submit``), 64 usage error, 66 missing
input (no BIDS folder, no participants, no image), 69 ``sbatch`` missing or refusing the job,
73 the batch folder cannot be written.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
from pathlib import Path

from ..hpc import (
    RUNTIMES,
    AppOptions,
    BatchError,
    BatchPlan,
    Container,
    Resources,
    check_label,
    make_tasks,
    submit,
    submit_line,
    write_batch,
)
from .common import add_data_selection, parse_args

EXIT_OK, EXIT_USAGE, EXIT_NOINPUT, EXIT_UNAVAILABLE, EXIT_CANTCREAT = 0, 64, 66, 69, 73
LOGGER = logging.getLogger("infant_tissue")

EXAMPLES = """\
examples:
  # Apptainer image, one GPU per session, at most 20 sessions at once; print the sbatch line
  infant-tissue batch /data/bids /data/derivatives/infant-tissue \\
      --container /images/infant-tissue.sif --runtime apptainer --gpus 1 --cpus-per-task 8 \\
      --mem 32G --time 02:00:00 --partition gpu --account mylab --max-running 20
  # the installed infant-tissue (no container), CPU only, submitted at once
  infant-tissue batch /data/bids /data/out --skull-stripped --inference-mode fast \\
      --device cpu --cpus-per-task 4 --mem 8G --submit
  # any other BIDS-App option goes after --
  infant-tissue batch /data/bids /data/out --container it.sif -- --vote soft
"""

_MEM = re.compile(r"^\d+[KMGT]?$", re.IGNORECASE)
_TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")
_GPUS = re.compile(r"^([A-Za-z0-9_.-]+:)?\d+$")


def _matching(pattern: re.Pattern[str], what: str):
    def check(value: str) -> str:
        if not pattern.match(value):
            raise argparse.ArgumentTypeError(f"{value!r} is not a valid {what}")
        return value

    return check


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: must be at least 1")
    return number


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="infant-tissue batch",
        description="Write a SLURM array job with one task per session of a BIDS dataset, "
        "and a group-level job that runs after all of them (--dependency=afterany). Prints "
        "the sbatch command, or submits with --submit. Options after -- go to every "
        "participant run unchanged. See docs/hpc.md.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("bids_dir", type=Path, help="the input BIDS dataset")
    p.add_argument("output_dir", type=Path, help="where the derivatives are written")

    add_data_selection(p, "passed to both levels of the app")

    c = p.add_argument_group("how a task runs the app")
    how = c.add_mutually_exclusive_group()
    how.add_argument(
        "--container",
        type=Path,
        metavar="IMAGE.sif",
        help="run the app from this Singularity/Apptainer image",
    )
    how.add_argument(
        "--no-container",
        action="store_true",
        help="run the installed infant-tissue directly (the default without --container)",
    )
    c.add_argument("--runtime", choices=RUNTIMES, default="singularity", help="container runtime")
    c.add_argument(
        "--bind",
        action="append",
        default=[],
        metavar="SRC[:DST[:ro]]",
        help="extra container bind (repeatable)",
    )
    c.add_argument(
        "--executable",
        type=Path,
        metavar="PATH",
        help="infant-tissue to run without a container (default: the one beside this Python)",
    )
    c.add_argument(
        "--prologue",
        action="append",
        default=[],
        metavar="LINE",
        help="shell line run before the app, e.g. 'module load apptainer' (repeatable)",
    )

    f = p.add_argument_group("folders")
    f.add_argument(
        "-w",
        "--work-dir",
        type=Path,
        default=Path("work"),
        metavar="DIR",
        help="holds one work folder per task (default: ./work)",
    )
    f.add_argument(
        "--batch-dir",
        type=Path,
        metavar="DIR",
        help="scripts, tasks.tsv and logs/ (default: OUTPUT_DIR/code/slurm)",
    )

    r = p.add_argument_group("SLURM resources (per session)")
    r.add_argument(
        "--gpus",
        type=_matching(_GPUS, "GPU count"),
        default="0",
        metavar="N",
        help="GPUs per session, N or TYPE:N, as --gres=gpu:N (default: 0)",
    )
    r.add_argument(
        "--cpus-per-task",
        type=_positive,
        default=4,
        metavar="N",
        help="also the app's --nprocs and --omp-nthreads (default: 4)",
    )
    r.add_argument(
        "--mem", type=_matching(_MEM, "memory size"), default="16G", help="(default: 16G)"
    )
    r.add_argument(
        "--time",
        type=_matching(_TIME, "time limit"),
        default="04:00:00",
        help="[D-]HH:MM:SS (default: 04:00:00)",
    )
    r.add_argument("--partition", help="for both jobs")
    r.add_argument("--account", help="for both jobs")
    r.add_argument(
        "--max-running", "--throttle", type=_positive, metavar="N", help="array throttle (%%N)"
    )
    r.add_argument(
        "--job-name",
        default="infant-tissue",
        metavar="NAME",
        help="array job name; the group job adds -group (default: infant-tissue)",
    )
    r.add_argument(
        "--sbatch-option",
        action="append",
        default=[],
        metavar="OPT",
        help="extra sbatch option for both jobs, e.g. --sbatch-option=--qos=long (repeatable)",
    )
    r.add_argument(
        "--group-mem",
        type=_matching(_MEM, "memory size"),
        default="4G",
        help="the group job's memory (default: 4G; it has 1 CPU, no GPU)",
    )
    r.add_argument(
        "--group-time",
        type=_matching(_TIME, "time limit"),
        default="00:30:00",
        help="(default: 00:30:00)",
    )

    a = p.add_argument_group("passed to every participant run")
    a.add_argument("--models", type=Path, metavar="DIR")
    a.add_argument("--derivatives", type=Path, metavar="DIR")
    a.add_argument("--templateflow-home", type=Path, metavar="DIR")
    a.add_argument("--inference-mode", metavar="MODE")
    a.add_argument("--vote", choices=("hard", "soft"))
    a.add_argument("--device")
    a.add_argument("--skull-stripped", action="store_true")
    a.add_argument("--keep-cerebellum", action="store_true")
    a.add_argument("--age-months", type=float, metavar="MONTHS")
    a.add_argument(
        "--omp-nthreads",
        type=_positive,
        metavar="N",
        help="default: the task's $SLURM_CPUS_PER_TASK",
    )
    a.add_argument("--mem-gb", type=float, metavar="GB")
    a.add_argument("--clean-workdir", action="store_true")

    p.add_argument("--submit", action="store_true", help="call sbatch now")
    return p


def _error(message: str) -> None:
    print(f"infant-tissue batch: error: {message}", file=sys.stderr)


def _absolute(path: Path) -> Path:
    """Absolute and normalised, without resolving symlinks (site paths stay as users know them)."""
    return Path(os.path.abspath(os.path.expanduser(path)))


def default_executable() -> Path | None:
    """The ``infant-tissue`` beside this Python (its venv), else the one on PATH.

    A SLURM job does not necessarily inherit an activated venv, so the script names it by path.
    """
    sibling = Path(sys.executable).with_name("infant-tissue")
    if sibling.is_file():
        return _absolute(sibling)
    found = shutil.which("infant-tissue")
    return _absolute(Path(found)) if found else None


def _app_flags(args: argparse.Namespace) -> tuple[str, ...]:
    flags: list[str] = []
    for option in ("inference_mode", "vote", "device", "age_months", "mem_gb"):
        value = getattr(args, option)
        if value is not None:
            flags += ["--" + option.replace("_", "-"), str(value)]
    for option in ("skull_stripped", "keep_cerebellum", "clean_workdir", "skip_bids_validation"):
        if getattr(args, option):
            flags.append("--" + option.replace("_", "-"))
    return tuple(flags)


def _check_inputs(args: argparse.Namespace) -> tuple[int, str] | None:
    """(exit code, message) for the first missing or conflicting input, else None."""
    if not args.bids_dir.is_dir():
        return EXIT_NOINPUT, f"{args.bids_dir}: BIDS folder not found"
    if _absolute(args.bids_dir) == _absolute(args.output_dir):
        return EXIT_USAGE, "output_dir must differ from bids_dir"
    if args.container is not None and not args.container.is_file():
        return EXIT_NOINPUT, f"{args.container}: container image not found"
    for option in ("models", "derivatives", "templateflow_home"):
        path = getattr(args, option)
        if path is not None and not path.is_dir():
            return EXIT_NOINPUT, f"{path}: --{option.replace('_', '-')} folder not found"
    if args.bids_filter_file is not None and not args.bids_filter_file.is_file():
        return EXIT_NOINPUT, f"{args.bids_filter_file}: BIDS filter file not found"
    if args.container is None:
        if args.executable is not None and not args.executable.is_file():
            return EXIT_NOINPUT, f"{args.executable}: --executable not found"
        if args.executable is None and default_executable() is None:
            return EXIT_NOINPUT, "infant-tissue executable not found; give --executable PATH"
    return None


def _collect(
    args: argparse.Namespace, participants: list[str] | None, sessions: list[str] | None
) -> tuple[list, list] | int:
    """The dataset's (usable, unusable) sessions, or an exit code after printing the error."""
    from ..bids import (
        BidsInputError,
        ParticipantNotFoundError,
        collect_sessions,
        load_bids_filters,
    )

    try:
        filters = load_bids_filters(args.bids_filter_file) if args.bids_filter_file else None
        units = collect_sessions(
            args.bids_dir, participants, sessions, filters, age_override=args.age_months
        )
    except ParticipantNotFoundError as exc:
        _error(str(exc))
        return EXIT_NOINPUT
    except BidsInputError as exc:
        _error(str(exc))
        return EXIT_USAGE
    return [u for u in units if u.ok], [u for u in units if not u.ok]


def _plan(args: argparse.Namespace, app_extra: list[str], units) -> BatchPlan:
    output_dir = _absolute(args.output_dir)
    batch_dir = _absolute(args.batch_dir) if args.batch_dir else output_dir / "code" / "slurm"
    common = {
        "partition": args.partition,
        "account": args.account,
        "extra": tuple(args.sbatch_option),
    }
    container = None
    executable = None
    if args.container is not None:
        container = Container(_absolute(args.container), args.runtime, tuple(args.bind))
    else:
        executable = _absolute(args.executable) if args.executable else default_executable()
    return BatchPlan(
        bids_dir=_absolute(args.bids_dir),
        output_dir=output_dir,
        work_dir=_absolute(args.work_dir),
        batch_dir=batch_dir,
        tasks=tuple(make_tasks(units)),
        resources=Resources(
            job_name=args.job_name,
            cpus_per_task=args.cpus_per_task,
            mem=args.mem,
            time=args.time,
            gpus=args.gpus,
            max_running=args.max_running,
            **common,
        ),
        # The group level is a few table reads and plots: one CPU, no GPU.
        group_resources=Resources(
            job_name=f"{args.job_name}-group",
            cpus_per_task=1,
            mem=args.group_mem,
            time=args.group_time,
            **common,
        ),
        app=AppOptions(
            models=_absolute(args.models) if args.models else None,
            derivatives=_absolute(args.derivatives) if args.derivatives else None,
            bids_filter_file=_absolute(args.bids_filter_file) if args.bids_filter_file else None,
            templateflow_home=(
                _absolute(args.templateflow_home) if args.templateflow_home else None
            ),
            omp_nthreads=args.omp_nthreads,
            flags=_app_flags(args) + tuple(app_extra),
            group_flags=("--skip-bids-validation",) if args.skip_bids_validation else (),
        ),
        container=container,
        executable=executable,
        prologue=tuple(args.prologue),
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after "--" is for the app; argparse would try to read it as positionals.
    app_extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, app_extra = argv[:cut], argv[cut + 1 :]
    args = parse_args(build_parser(), argv)
    if isinstance(args, int):
        return args
    logging.basicConfig(level=logging.WARNING, format="infant-tissue batch: %(message)s")
    logging.getLogger("bids").setLevel(logging.ERROR)

    problem = _check_inputs(args)
    if problem:
        _error(problem[1])
        return problem[0]
    try:
        participants = (
            [check_label(x, "participant") for x in args.participant_label]
            if args.participant_label
            else None
        )
        sessions = (
            [check_label(x, "session") for x in args.session_label] if args.session_label else None
        )
    except BatchError as exc:
        _error(str(exc))
        return EXIT_USAGE

    collected = _collect(args, participants, sessions)
    if isinstance(collected, int):
        return collected
    usable, unusable = collected
    for unit in unusable:
        # Not worth a SLURM allocation (maybe a GPU) to fail in a second; the group level
        # lists these sessions as missing.
        print(f"skipped {unit.label}: " + "; ".join(unit.problems), file=sys.stderr)
    if not usable:
        _error(f"{args.bids_dir}: no session with usable T1w and T2w images")
        return EXIT_NOINPUT

    try:
        plan = _plan(args, app_extra, usable)
        files = write_batch(plan)
    except BatchError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except OSError as exc:
        _error(f"cannot write the batch folder: {exc}")
        return EXIT_CANTCREAT

    how = f"{plan.container.runtime} {plan.container.image}" if plan.container else plan.executable
    throttle = f", at most {args.max_running} at once" if args.max_running else ""
    print(f"wrote {files.batch_dir}/")
    rows = [
        (files.participant.name, f"array of {len(plan.tasks)} sessions{throttle} ({how})"),
        (files.group.name, "group level, after every task has ended"),
        (files.tasks.name, "array index -> subject/session"),
        (files.submit.name, "the sbatch calls below"),
        ("logs/", f"one log per task ({args.job_name}_<job>_<task>.out)"),
    ]
    for name, what in rows:
        print(f"  {name:<19} {what}")
    if not args.submit:
        print("submit with:")
        print(f"  {submit_line(files.batch_dir)}")
        return EXIT_OK
    try:
        array_id, group_id = submit(files)
    except BatchError as exc:
        _error(str(exc))
        print(f"the scripts are written; submit later with: sh {files.submit}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    print(f"submitted array job {array_id} ({len(plan.tasks)} tasks{throttle})")
    print(f"submitted group job {group_id} (--dependency=afterany:{array_id})")
    print(f"watch with: squeue -j {array_id},{group_id}")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
