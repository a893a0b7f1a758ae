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

from .options import BatchInputs, plan_from_options
from .plan import (
    CONTAINER_BIDS,
    CONTAINER_OUT,
    CONTAINER_PATHS,
    CONTAINER_WORK,
    GROUP_SCRIPT,
    LABEL_PATTERN,
    PARTICIPANT_SCRIPT,
    RUNTIMES,
    SUBMIT_SCRIPT,
    TASKS_FILE,
    AppOptions,
    BatchError,
    BatchPlan,
    Container,
    Resources,
    Task,
    check_label,
    make_tasks,
    task_table,
)
from .scripts import (
    BatchFiles,
    group_command,
    group_script,
    parse_job_id,
    participant_command,
    participant_script,
    submit,
    submit_line,
    write_batch,
)

__all__ = [
    "AppOptions",
    "BatchError",
    "BatchFiles",
    "BatchInputs",
    "BatchPlan",
    "CONTAINER_BIDS",
    "CONTAINER_OUT",
    "CONTAINER_PATHS",
    "CONTAINER_WORK",
    "Container",
    "GROUP_SCRIPT",
    "LABEL_PATTERN",
    "PARTICIPANT_SCRIPT",
    "RUNTIMES",
    "Resources",
    "SUBMIT_SCRIPT",
    "TASKS_FILE",
    "Task",
    "check_label",
    "group_command",
    "group_script",
    "make_tasks",
    "parse_job_id",
    "participant_command",
    "participant_script",
    "plan_from_options",
    "submit",
    "submit_line",
    "task_table",
    "write_batch",
]
