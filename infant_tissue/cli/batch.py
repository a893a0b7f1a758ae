"""``infant-tissue batch``: a SLURM array job (one task per session) and its group-level job.

Exit codes (sysexits): 0 written (and submitted with ``--submit``), 64 usage error, 66 missing
input (no BIDS folder, no participants, no image), 69 ``sbatch`` missing or refusing the job,
73 the batch folder cannot be written.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..errors import output_error
from ..hpc import RUNTIMES, BatchError, plan_from_options, submit, submit_line, write_batch
from ._common import (
    ExitCode,
    add_app_options,
    add_data_selection,
    error,
    guarded,
    parse_args,
    setup_logging,
)

PROG = "infant-tissue batch"

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

    inputs, _, resources = add_app_options(p, defaults=False)  # passed to every participant run
    inputs.add_argument("--templateflow-home", type=Path, metavar="DIR")
    resources.add_argument(
        "--omp-nthreads",
        type=_positive,
        metavar="N",
        help="default: the task's $SLURM_CPUS_PER_TASK",
    )

    p.add_argument("--submit", action="store_true", help="call sbatch now")
    return p


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
    setup_logging(PROG, 0)
    return guarded(PROG, lambda: _write(args, tuple(app_extra)))


def _write(args: argparse.Namespace, app_extra: tuple[str, ...]) -> int:
    made = plan_from_options(args, app_extra)
    for line in made.skipped:
        print(f"skipped {line}", file=sys.stderr)
    plan = made.plan
    try:
        files = write_batch(plan)
    except OSError as exc:
        raise output_error(plan.batch_dir, exc, "batch folder") from None
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
        return ExitCode.OK
    try:
        array_id, group_id = submit(files)
    except BatchError as exc:
        error(PROG, str(exc))
        print(f"the scripts are written; submit later with: sh {files.submit}", file=sys.stderr)
        return ExitCode.UNAVAILABLE
    print(f"submitted array job {array_id} ({len(plan.tasks)} tasks{throttle})")
    print(f"submitted group job {group_id} (--dependency=afterany:{array_id})")
    print(f"watch with: squeue -j {array_id},{group_id}")
    return ExitCode.OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
