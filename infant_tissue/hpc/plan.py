"""The batch as plain values: tasks (one per session), SLURM resources, the container, the
app's options, and their checks (:meth:`BatchPlan.check`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ExitCode, InfantTissueError

#: BIDS labels are alphanumeric; anything else (``../x``, spaces, ``;``) is refused because the
#: labels become folder names and shell words in the generated scripts.
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9]+$")
#: Where the host folders appear inside the container.
CONTAINER_BIDS, CONTAINER_OUT, CONTAINER_WORK = "/data", "/out", "/work"
#: Container paths of the optional inputs given as host paths.
CONTAINER_PATHS = {
    "models": "/models",
    "derivatives": "/derivatives",
    "bids_filter_file": "/config/bids_filter.json",
    "templateflow_home": "/templateflow",
}
RUNTIMES = ("singularity", "apptainer")
TASKS_FILE, PARTICIPANT_SCRIPT, GROUP_SCRIPT, SUBMIT_SCRIPT = (
    "tasks.tsv",
    "participant.sbatch",
    "group.sbatch",
    "submit.sh",
)
_TSV_HEADER = ("task_id", "subject", "session", "name")
#: Characters that cannot appear in a path on an ``#SBATCH`` line (sbatch splits on blanks).
_SBATCH_UNSAFE = re.compile(r"[\s\"'\\]")
_JOB_ID = re.compile(r"^\s*(\d+)")
_LINE_BREAK = re.compile(r"[\r\n]")


class BatchError(InfantTissueError, ValueError):
    """The batch cannot be planned or submitted; the message is one line for the user."""

    exit_code = ExitCode.USAGE


def check_label(label: str, what: str) -> str:
    """Return ``label`` without its ``sub-``/``ses-`` prefix, or raise for an unsafe label."""
    prefix = {"participant": "sub-", "session": "ses-"}.get(what, "")
    bare = label[len(prefix) :] if prefix and label.startswith(prefix) else label
    if not LABEL_PATTERN.match(bare):
        raise BatchError(f"{what} label {label!r}: BIDS labels may only hold letters and digits")
    return bare


@dataclass(frozen=True)
class Task:
    """One array task: one session of one subject (``session`` is None without sessions)."""

    index: int
    subject: str
    session: str | None

    @property
    def name(self) -> str:
        """``sub-01_ses-02`` (or ``sub-01``): the task's work folder name."""
        return f"sub-{self.subject}" + (f"_ses-{self.session}" if self.session else "")


def make_tasks(units: Iterable[Any]) -> list[Task]:
    """Number the sessions 0..N-1 (array indices); ``units`` need ``.subject``/``.session``.

    A subject with session folders *and* images outside them becomes a single task without a
    session: the app has no option that selects only the loose images, and a run without
    ``--session-label`` processes all of the subject's sessions, which separate tasks would
    then repeat at the same time.
    """
    pairs = [
        (
            check_label(unit.subject, "participant"),
            None if unit.session is None else check_label(unit.session, "session"),
        )
        for unit in units
    ]
    whole_subject = {subject for subject, session in pairs if session is None}
    kept: list[tuple[str, str | None]] = []
    for subject, session in pairs:
        pair = (subject, None) if subject in whole_subject else (subject, session)
        if pair not in kept:
            kept.append(pair)
    return [Task(index, subject, session) for index, (subject, session) in enumerate(kept)]


def task_table(tasks: Sequence[Task]) -> str:
    """``tasks.tsv``: the row a task reads is the one whose ``task_id`` is its array index."""
    rows = ["\t".join(_TSV_HEADER)]
    rows += [f"{t.index}\t{t.subject}\t{t.session or 'n/a'}\t{t.name}" for t in tasks]
    return "\n".join(rows) + "\n"


@dataclass(frozen=True)
class Resources:
    """What one job asks SLURM for.

    ``gpus`` is a ``--gres=gpu:`` count or ``type:count`` (``"a100:1"``); ``None`` or ``"0"``
    asks for none. ``max_running`` is the array throttle (``--array=0-9%4``). ``extra`` holds
    raw sbatch options (``"--qos=long"``), one ``#SBATCH`` line each.
    """

    job_name: str = "infant-tissue"
    cpus_per_task: int = 4
    mem: str = "16G"
    time: str = "04:00:00"
    gpus: str | None = None
    partition: str | None = None
    account: str | None = None
    max_running: int | None = None
    extra: tuple[str, ...] = ()

    def sbatch_lines(self, log_dir: Path, array_size: int | None = None) -> list[str]:
        """The ``#SBATCH`` header; ``array_size`` makes it an array job of that many tasks."""
        values = (self.job_name, self.mem, self.time, self.gpus, self.partition, self.account)
        for value in (*values, *self.extra):
            if value is not None and _LINE_BREAK.search(value):
                raise BatchError(f"{value!r}: a line break would end the #SBATCH line")
        opts = [f"--job-name={self.job_name}"]
        if array_size is not None:
            throttle = f"%{self.max_running}" if self.max_running else ""
            opts.append(f"--array=0-{array_size - 1}{throttle}")
            opts.append(f"--output={log_dir}/%x_%A_%a.out")
        else:
            opts.append(f"--output={log_dir}/%x_%j.out")
        opts += [
            "--nodes=1",
            "--ntasks=1",
            f"--cpus-per-task={self.cpus_per_task}",
            f"--mem={self.mem}",
            f"--time={self.time}",
        ]
        if self.gpus and self.gpus != "0":
            opts.append(f"--gres=gpu:{self.gpus}")
        if self.partition:
            opts.append(f"--partition={self.partition}")
        if self.account:
            opts.append(f"--account={self.account}")
        opts += list(self.extra)
        return [f"#SBATCH {opt}" for opt in opts]


@dataclass(frozen=True)
class Container:
    """A Singularity/Apptainer image and how to run it."""

    image: Path
    runtime: str = "singularity"
    #: Extra ``-B`` specs (``/site/data:/site/data:ro``), passed as given.
    binds: tuple[str, ...] = ()


@dataclass(frozen=True)
class AppOptions:
    """Options passed through to ``infant-tissue ... participant``.

    Host paths (``models``, ...) are bound read-only into the container and replaced by their
    container path; ``flags`` are passed as they are. ``omp_nthreads`` None means "use the
    CPUs SLURM gave the task" (``$SLURM_CPUS_PER_TASK``).
    """

    models: Path | None = None
    derivatives: Path | None = None
    bids_filter_file: Path | None = None
    templateflow_home: Path | None = None
    omp_nthreads: int | None = None
    flags: tuple[str, ...] = ()
    #: Flags the group level needs too (``--skip-bids-validation``).
    group_flags: tuple[str, ...] = ()

    def path_options(self) -> dict[str, Path]:
        """The host-path options that are set, by field name."""
        names = ("models", "derivatives", "bids_filter_file")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


@dataclass(frozen=True)
class BatchPlan:
    """Everything the scripts are generated from; every path absolute."""

    bids_dir: Path
    output_dir: Path
    work_dir: Path
    batch_dir: Path
    tasks: tuple[Task, ...]
    resources: Resources
    group_resources: Resources
    app: AppOptions = field(default_factory=AppOptions)
    #: None: run the host ``executable`` directly.
    container: Container | None = None
    #: The host's ``infant-tissue`` (absolute), used without a container.
    executable: Path | None = None
    #: Shell lines run before the app (``module load apptainer``).
    prologue: tuple[str, ...] = ()

    @property
    def log_dir(self) -> Path:
        return self.batch_dir / "logs"

    def check(self) -> None:
        """Raise :class:`BatchError` for a plan that would produce a broken script."""
        if not self.tasks:
            raise BatchError(f"{self.bids_dir}: no sessions to run")
        paths = {
            "BIDS folder": self.bids_dir,
            "output folder": self.output_dir,
            "work folder": self.work_dir,
            "batch folder": self.batch_dir,
        }
        for what, path in paths.items():
            if not path.is_absolute():
                raise BatchError(f"{path}: the {what} must be an absolute path")
        if _SBATCH_UNSAFE.search(str(self.log_dir)):
            raise BatchError(
                f"{self.batch_dir}: sbatch cannot take a log path with blanks or quotes; "
                "choose another --batch-dir"
            )
        if self.container is None:
            if self.executable is None or not self.executable.is_absolute():
                raise BatchError("without a container, the absolute infant-tissue path is needed")
        elif self.container.runtime not in RUNTIMES:
            raise BatchError(f"container runtime {self.container.runtime!r}: use {RUNTIMES}")
