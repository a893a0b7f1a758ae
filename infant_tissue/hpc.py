"""SLURM array jobs for the BIDS-App: one array task per session, then one group-level job.

The scripts are built here as text from plain values (:class:`BatchPlan`), so they can be
checked without a cluster; :func:`write_batch` puts them on disk and :func:`submit` hands them
to ``sbatch``. Layout of a batch folder::

    participant.sbatch   array job, task i runs row i of tasks.tsv
    group.sbatch         the group level, submitted with --dependency=afterany:<array job>
    tasks.tsv            task_id, subject, session ("n/a" without sessions), name
    submit.sh            the two sbatch calls, for submitting later by hand
    logs/                %x_%A_%a.out per array task, %x_%j.out for the group job

Everything a task needs is written into its script at generation time (absolute paths, the
container, the options), so a task behaves the same whichever node or directory SLURM starts
it in. The array script checks that ``tasks.tsv`` still has the checksum it was generated with:
regenerating a batch folder while its jobs run would otherwise silently map indices to other
sessions.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__

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


class BatchError(ValueError):
    """The batch cannot be planned or submitted; the message is one line for the user."""


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


def _q(value: object) -> str:
    return shlex.quote(str(value))


def _container_env(plan: BatchPlan) -> list[str]:
    """Variables set inside the container: ``--cleanenv`` drops the host's, by design (a
    host PYTHONPATH or a conda env must not leak in), so the few the app needs are passed with
    the runtime's ``<RUNTIME>ENV_`` prefix, the one channel ``--cleanenv`` keeps open."""
    assert plan.container is not None
    prefix = plan.container.runtime.upper() + "ENV_"
    env = {
        # A bound $HOME's ~/.local site-packages would shadow the image's Python packages.
        "PYTHONNOUSERSITE": "1",
        # Caches go to the task's work folder: no writable $HOME is needed.
        "MPLCONFIGDIR": f"{CONTAINER_WORK}/$name/.cache/matplotlib",
        "XDG_CACHE_HOME": f"{CONTAINER_WORK}/$name/.cache",
        "NIPYPE_NO_ET": "1",
        "TEMPLATEFLOW_AUTOUPDATE": "0",
    }
    if plan.app.templateflow_home is not None:
        env["TEMPLATEFLOW_HOME"] = CONTAINER_PATHS["templateflow_home"]
    return [f'export {prefix}{key}="{value}"' for key, value in env.items()]


def _binds(plan: BatchPlan) -> list[str]:
    """``-B host:container[:ro]`` for the BIDS, output and work folders and any input paths."""
    assert plan.container is not None
    binds = [
        f"{plan.bids_dir}:{CONTAINER_BIDS}:ro",
        f"{plan.output_dir}:{CONTAINER_OUT}",
        f"{plan.work_dir}:{CONTAINER_WORK}",
    ]
    for name, path in plan.app.path_options().items():
        binds.append(f"{path}:{CONTAINER_PATHS[name]}:ro")
    if plan.app.templateflow_home is not None:
        binds.append(f"{plan.app.templateflow_home}:{CONTAINER_PATHS['templateflow_home']}:ro")
    return [f"-B {_q(bind)}" for bind in (*binds, *plan.container.binds)]


def _launcher(plan: BatchPlan) -> list[str]:
    """The lines before ``BIDS OUT LEVEL``: the container call, or the host executable."""
    if plan.container is None:
        return []
    return [
        f"{plan.container.runtime} exec --nv --cleanenv",
        *_binds(plan),
        # The job's cwd does not exist inside the container; nipype wants a real one.
        f'--pwd "{CONTAINER_WORK}/$name"',
        _q(plan.container.image),
    ]


def _app_call(plan: BatchPlan, level: str) -> str:
    """``infant-tissue BIDS OUT LEVEL`` with the folders as the app sees them."""
    if plan.container is None:
        folders = (plan.executable, plan.bids_dir, plan.output_dir)
        return " ".join(_q(x) for x in folders) + f" {level}"
    return f"infant-tissue {CONTAINER_BIDS} {CONTAINER_OUT} {level}"


def participant_command(plan: BatchPlan) -> list[str]:
    """One array task's app call as script lines (``$subject``... are set by the script)."""
    work = CONTAINER_WORK if plan.container else _q(plan.work_dir)
    threads = str(plan.app.omp_nthreads) if plan.app.omp_nthreads else '"$ncpus"'
    lines = [
        *_launcher(plan),
        _app_call(plan, "participant"),
        # The empty-array form keeps `set -u` of bash < 4.4 quiet for session-less datasets.
        '--participant-label "$subject" ${session_args[@]+"${session_args[@]}"}',
        f'-w "{work}/$name"',
        '--nprocs "$ncpus"',
        f"--omp-nthreads {threads}",
    ]
    for name, path in plan.app.path_options().items():
        value = CONTAINER_PATHS[name] if plan.container else _q(path)
        lines.append(f"--{name.replace('_', '-')} {value}")
    return lines + _flag_lines(plan.app.flags)


def group_command(plan: BatchPlan) -> list[str]:
    """The group-level app call as script lines."""
    return [*_launcher(plan), _app_call(plan, "group"), *_flag_lines(plan.app.group_flags)]


def _flag_lines(flags: Sequence[str]) -> list[str]:
    """Quoted flags, an option and its values on one line."""
    lines: list[str] = []
    for flag in flags:
        if flag.startswith("-") or not lines:
            lines.append(_q(flag))
        else:
            lines[-1] += " " + _q(flag)
    return lines


def _command(lines: Sequence[str]) -> str:
    """Script lines joined into one shell command with line continuations."""
    return " \\\n    ".join(lines)


def _header(
    plan: BatchPlan, resources: Resources, comments: Sequence[str], array: int | None
) -> list[str]:
    """Shebang, ``#SBATCH`` lines (they must come before any command), comments, strict mode."""
    return [
        "#!/bin/bash",
        *resources.sbatch_lines(plan.log_dir, array),
        f"# Generated by infant-tissue {__version__} batch.",
        *(f"# {line}" for line in comments),
        "set -euo pipefail",
    ]


def participant_script(plan: BatchPlan) -> str:
    """The array job script: task ``$SLURM_ARRAY_TASK_ID`` runs its row of ``tasks.tsv``."""
    plan.check()
    tasks_file = plan.batch_dir / TASKS_FILE
    checksum = hashlib.sha256(task_table(plan.tasks).encode()).hexdigest()
    env = _container_env(plan) if plan.container else []
    if plan.container is None and plan.app.templateflow_home is not None:
        env.append(f"export TEMPLATEFLOW_HOME={_q(plan.app.templateflow_home)}")
    comments = [
        f"One session of {plan.bids_dir} per array task (rows of {TASKS_FILE}).",
        "Rerun chosen tasks with: sbatch --array=3,7 " + _q(plan.batch_dir / PARTICIPANT_SCRIPT),
    ]
    lines = [
        *_header(plan, plan.resources, comments, len(plan.tasks)),
        "",
        f"tasks={_q(tasks_file)}",
        "task_id=${SLURM_ARRAY_TASK_ID:?submit this script with sbatch: it is an array job}",
        "# A tasks.tsv regenerated after submission would map indices to other sessions.",
        f'if ! echo "{checksum}  $tasks" | sha256sum --check --status; then',
        '    echo "infant-tissue batch: $tasks changed since this job was generated;'
        ' regenerate and resubmit" >&2',
        "    exit 2",
        "fi",
        "row=$(awk -F '\\t' -v id=\"$task_id\" 'NR > 1 && $1 == id {print; exit}' \"$tasks\")",
        'if [ -z "$row" ]; then echo "infant-tissue batch: no task $task_id in $tasks" >&2; '
        "exit 2; fi",
        "IFS=$'\\t' read -r _ subject session name <<< \"$row\"",
        "session_args=()",
        'if [ "$session" != "n/a" ]; then session_args=(--session-label "$session"); fi',
        f"ncpus=${{SLURM_CPUS_PER_TASK:-{plan.resources.cpus_per_task}}}",
        f'mkdir -p {_q(plan.work_dir)}/"$name"',
        *env,
        *plan.prologue,
        "",
        'echo "infant-tissue batch: task $task_id: $name on $(hostname), $ncpus CPUs,'
        ' started $(date -Is)"',
        "start=$SECONDS",
        "status=0",
        _command(participant_command(plan)) + " || status=$?",
        'echo "infant-tissue batch: task $task_id: $name exit $status after'
        ' $((SECONDS - start)) s"',
        'exit "$status"',
    ]
    return "\n".join(lines) + "\n"


def group_script(plan: BatchPlan) -> str:
    """The group-level job script (run after every array task ended, failed ones included)."""
    plan.check()
    env = _container_env(plan) if plan.container else []
    lines = [
        *_header(plan, plan.group_resources, [f"Group level of {plan.output_dir}."], None),
        "",
        "name=group",
        f'mkdir -p {_q(plan.work_dir)}/"$name"',
        *env,
        *plan.prologue,
        _command(group_command(plan)),
    ]
    return "\n".join(lines) + "\n"


def submit_line(batch_dir: Path) -> str:
    """The shell line that submits the array and then the group job depending on it."""
    participant = _q(batch_dir / PARTICIPANT_SCRIPT)
    group = _q(batch_dir / GROUP_SCRIPT)
    # --parsable prints "jobid" or "jobid;cluster"; the dependency wants the id alone.
    return (
        f"jid=$(sbatch --parsable {participant}) && "
        f"sbatch --dependency=afterany:${{jid%%;*}} {group}"
    )


@dataclass(frozen=True)
class BatchFiles:
    """The files :func:`write_batch` wrote."""

    batch_dir: Path
    tasks: Path
    participant: Path
    group: Path
    submit: Path


def write_batch(plan: BatchPlan) -> BatchFiles:
    """Write the scripts, the task table and ``submit.sh``; create the log and work folders
    (SLURM does not create a missing log folder: the job would fail without a trace)."""
    participant, group = participant_script(plan), group_script(plan)
    plan.log_dir.mkdir(parents=True, exist_ok=True)
    plan.work_dir.mkdir(parents=True, exist_ok=True)
    plan.output_dir.mkdir(parents=True, exist_ok=True)
    files = BatchFiles(
        batch_dir=plan.batch_dir,
        tasks=plan.batch_dir / TASKS_FILE,
        participant=plan.batch_dir / PARTICIPANT_SCRIPT,
        group=plan.batch_dir / GROUP_SCRIPT,
        submit=plan.batch_dir / SUBMIT_SCRIPT,
    )
    files.tasks.write_text(task_table(plan.tasks))
    files.participant.write_text(participant)
    files.group.write_text(group)
    files.submit.write_text(
        "#!/bin/bash\n# Submit the array, then the group level after it.\nset -euo pipefail\n"
        + submit_line(plan.batch_dir)
        + "\n"
    )
    for path in (files.participant, files.group, files.submit):
        path.chmod(0o755)
    return files


def parse_job_id(sbatch_output: str) -> str:
    """The job id in ``sbatch --parsable`` output (``1234`` or ``1234;cluster``)."""
    match = _JOB_ID.match(sbatch_output)
    if not match:
        raise BatchError(f"sbatch printed no job id: {sbatch_output.strip()[:200]!r}")
    return match.group(1)


Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def submit(
    files: BatchFiles, sbatch: str = "sbatch", run: Runner = subprocess.run
) -> tuple[str, str]:
    """Submit the array job, then the group job with ``--dependency=afterany:<array>``.

    ``afterany`` (not ``afterok``) so the group level runs and lists the failed sessions even
    when some tasks fail. Returns the two job ids.
    """

    def call(*args: str) -> str:
        try:
            done = run([sbatch, "--parsable", *args], capture_output=True, text=True, check=False)
        except FileNotFoundError:
            raise BatchError(f"{sbatch}: not found; is this a SLURM login node?") from None
        if done.returncode != 0:
            reason = (done.stderr or done.stdout).strip().splitlines()
            raise BatchError(f"sbatch {args[-1]} failed: {reason[-1] if reason else 'no output'}")
        return parse_job_id(done.stdout)

    array_id = call(str(files.participant))
    group_id = call(f"--dependency=afterany:{array_id}", str(files.group))
    return array_id, group_id
