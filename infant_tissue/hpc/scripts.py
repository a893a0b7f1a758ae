"""The batch rendered as text (sbatch scripts, task table, submit line), written, submitted."""

from __future__ import annotations

import hashlib
import shlex
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from .plan import (
    _JOB_ID,
    CONTAINER_BIDS,
    CONTAINER_OUT,
    CONTAINER_PATHS,
    CONTAINER_WORK,
    GROUP_SCRIPT,
    PARTICIPANT_SCRIPT,
    SUBMIT_SCRIPT,
    TASKS_FILE,
    BatchError,
    BatchPlan,
    Resources,
    task_table,
)


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
