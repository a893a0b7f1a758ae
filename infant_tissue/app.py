"""The BIDS-App's two levels as library calls: :func:`run_participant` and :func:`run_group_level`.

The participant level runs every selected session in **one** nipype graph, so on a node with
several cores (and one GPU) the CPU preprocessing of one session overlaps the segmentation of
another; ``--nprocs``, ``--mem-gb`` and the GPU slots (nipype MultiProc's ``n_gpu_procs``: one
segmentation per visible GPU) hold across all of them. Failures stay per session: nipype keeps
running the other branches (``stop_on_first_crash`` off), and afterwards each session is judged
on its own nodes — a failed session gets one error line, a crash file (nipype's node tracebacks
in it, never on the console below ``-vv``), its report, and no derivative files.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from . import layout
from .config import RunConfig
from .errors import ExitCode, InfantTissueError, InputNotFoundError, describe, output_error
from .utils.bids import SessionInputs

LOGGER = logging.getLogger("infant_tissue")
#: Name of the one workflow that holds every session's workflow.
TOP_WORKFLOW = "infant_tissue_wf"


def _say_error(message: str) -> None:
    """The one line a failure prints (``infant-tissue: error: ...``)."""
    from .cli._common import error

    error("infant-tissue", message)


# --- output folders ------------------------------------------------------------------------------


def prepare_output(config: RunConfig) -> None:
    """Make sure the output and work folders can be created and written, then write the dataset
    files; an :class:`~infant_tissue.errors.OutputError` naming the folder otherwise (exit 73,
    nothing written)."""
    for path, what in ((config.output_dir, "output folder"), (config.work_dir, "work folder")):
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / f".infant-tissue-write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise output_error(path, exc, what) from None
    try:
        layout.ensure_dataset_files(config.output_dir, str(config.bids_dir))
    except OSError as exc:
        raise output_error(config.output_dir, exc) from None


# --- sessions ------------------------------------------------------------------------------------


@dataclass
class SessionRun:
    """One session on its way through the participant level."""

    unit: SessionInputs
    record: object  # reports.RunRecord
    workflow: object | None = None  # its nipype workflow, once built
    error: str = ""
    details: str = ""
    outputs_before: set[Path] = field(default_factory=set)


def select_sessions(config: RunConfig) -> tuple[list[SessionInputs], ExitCode]:
    """The sessions to process and the exit code so far (FAILED when some requested participant
    is not in the dataset but others are; the error is raised when none is)."""
    from .utils.bids import ParticipantNotFoundError, collect_sessions

    labels = config.participant_labels
    try:
        sessions = collect_sessions(
            config.bids_dir, labels, config.session_labels, config.bids_filters,
            age_override=config.age_months,
        )  # fmt: skip
        return sessions, ExitCode.OK
    except ParticipantNotFoundError as exc:
        found = [lab for lab in labels or [] if lab.removeprefix("sub-") not in exc.missing]
        if not found:
            raise
        _say_error(describe(exc))
        sessions = collect_sessions(
            config.bids_dir, found, config.session_labels, config.bids_filters,
            age_override=config.age_months,
        )  # fmt: skip
        return sessions, ExitCode.FAILED


def run_participant(config: RunConfig) -> ExitCode:
    """The participant level: every selected session, concurrently; returns the exit code."""
    from .utils.bids import check_session_images

    sessions, exit_code = select_sessions(config)
    if not sessions:
        raise InputNotFoundError(f"{config.bids_dir}: no participants to process")
    prepare_output(config)
    runs = []
    for unit in sessions:
        run = SessionRun(unit, _new_record(unit))
        if unit.ok:
            check_session_images(unit)
        if not unit.ok:
            _fail(config, run, f"{unit.label}: " + "; ".join(unit.problems))
            exit_code = ExitCode.FAILED
            continue
        for warning in unit.warnings:
            LOGGER.warning("%s: %s", unit.label, warning)
        try:
            _build(config, run)
        except (InfantTissueError, OSError, ValueError) as exc:
            _fail(config, run, f"{unit.label}: {describe(exc)}", traceback.format_exc())
            exit_code = ExitCode.FAILED
            continue
        runs.append(run)
    if runs:
        _run_graph(config, runs)
    for run in runs:
        if run.error:
            _fail(config, run, run.error, run.details)
            exit_code = ExitCode.FAILED
        else:
            _succeed(config, run)
    return exit_code


def _new_record(unit: SessionInputs):
    from .reports import RunRecord

    inputs = {k: str(getattr(unit, k)) for k in ("t1w", "t2w") if getattr(unit, k, None)}
    return RunRecord(
        subject=unit.subject,
        session=unit.session,
        inputs=inputs,
        age_months=unit.age_months,
        age_source=unit.age_source,
        warnings=list(unit.warnings),
    )


def _build(config: RunConfig, run: SessionRun) -> None:
    """Build the session's workflow and fill in what the record says about it."""
    from .workflows.base import init_session_wf, mask_method, removal_description

    unit, record = run.unit, run.record
    record.mask_method, mask_inputs = mask_method(config, unit)
    record.template = mask_inputs.get("cohort", "") and f"MNIInfant cohort {mask_inputs['cohort']}"
    record.removal = removal_description(config, unit, record.mask_method)
    run.workflow = init_session_wf(config, unit)
    crash_dir = _nipype_crash_dir(config, unit)
    for node in run.workflow._get_all_nodes():  # nipype's crash files: per session, work folder
        node.config = {"execution": {"crashdump_dir": str(crash_dir)}}
    run.outputs_before = set(layout.session_outputs(config.output_dir, unit.subject, unit.session))


def _nipype_crash_dir(config: RunConfig, unit: SessionInputs) -> Path:
    # In the work folder, not the output: a full output disk must not stop nipype reporting.
    return config.work_dir / TOP_WORKFLOW / "crash" / unit.prefix


def configure_nipype(verbose: int) -> None:
    """Text crash files, no stop on the first crash (the other sessions go on), no resource
    monitor, and nipype's own logging quiet below ``-vv`` (its node tracebacks go to the crash
    files, not the console)."""
    from nipype import config as nipype_config
    from nipype import logging as nipype_logging

    nipype_config.set("execution", "crashfile_format", "txt")
    nipype_config.set("execution", "stop_on_first_crash", "false")
    nipype_config.set("execution", "remove_unnecessary_outputs", "true")
    nipype_config.set("monitoring", "enabled", "false")
    level = "INFO" if verbose >= 2 else "CRITICAL"
    for key in ("workflow_level", "interface_level", "utils_level"):
        nipype_config.set("logging", key, level)
    nipype_logging.update_logging(nipype_config)


def _run_graph(config: RunConfig, runs: list[SessionRun]) -> None:
    """Run every session's workflow in one graph; mark the sessions that failed."""
    from nipype.pipeline import engine as pe

    from .reports import RunRecorder

    configure_nipype(config.verbose)
    top = pe.Workflow(name=TOP_WORKFLOW, base_dir=str(config.work_dir))
    top.add_nodes([run.workflow for run in runs])
    recorders = {run.workflow.name: RunRecorder(run.record) for run in runs}

    def status_callback(node, status: str) -> None:
        session_wf = node.fullname.split(".")[1] if "." in node.fullname else ""
        if session_wf in recorders:
            recorders[session_wf].status_callback(node, status)

    plugin, plugin_args = _plugin(config, runs)
    if plugin in ("MultiProc", "Linear", "LegacyMultiProc"):
        plugin_args["status_callback"] = status_callback
    started = time.time()
    for run in runs:
        run.record.plugin = plugin
        run.record.started = started
    LOGGER.info("running %d session(s) (%s)", len(runs), plugin)
    graph_error = graph_details = ""
    try:
        top.run(plugin=plugin, plugin_args=plugin_args)
    except Exception as exc:  # noqa: BLE001 - judged per session below
        graph_error, graph_details = describe(exc), traceback.format_exc()
    for run in runs:
        crash_text = _nipype_crash_text(_nipype_crash_dir(config, run.unit), started)
        missing = [
            key
            for key in ("dseg", "volumes")
            if key
            not in layout.find_session_derivatives(
                config.output_dir, run.unit.subject, run.unit.session
            )
        ]
        if crash_text or missing:
            reason = (
                _first_error_line(crash_text)
                or graph_error
                or (f"outputs missing after the run: {', '.join(missing)}")
            )
            if "No space left" in reason or "[Errno 28]" in reason:
                reason = _disk_full(config)
            run.error = f"{run.unit.label}: {reason}"
            run.details = crash_text or graph_details


def _disk_full(config: RunConfig) -> str:
    """Which disk filled up (exceptions of a failed write rarely name the file)."""
    fullest = min((config.output_dir, config.work_dir), key=lambda p: shutil.disk_usage(p).free)
    what = "output" if fullest == config.output_dir else "work"
    return f"{fullest}: no space left on the device (disk full) while writing the {what} files"


def _plugin(config: RunConfig, runs: list[SessionRun]) -> tuple[str, dict]:
    if config.plugin_file:
        import yaml

        data = yaml.safe_load(Path(config.plugin_file).read_text()) or {}
        return data.get("plugin", "MultiProc"), dict(data.get("plugin_args", {}))
    if config.nprocs > 1:
        plugin_args = {"n_procs": config.nprocs, "raise_insufficient": False}
        if config.mem_gb:
            plugin_args["memory_gb"] = config.mem_gb
        return "MultiProc", plugin_args
    return "Linear", {}


def _nipype_crash_text(folder: Path, since: float) -> str:
    if not folder.is_dir():
        return ""
    texts = [
        p.read_text(errors="replace")
        for p in sorted(folder.glob("crash-*.txt"))
        if p.stat().st_mtime >= since
    ]
    return "\n\n".join(texts)


def _first_error_line(crash_text: str) -> str:
    """The failing node's own exception line (the most specific reason), from its crash file."""
    for line in reversed(crash_text.splitlines()):
        line = line.strip()
        head = line.split(":")[0]
        if line and ("Error" in head or "Exception" in head):
            return line.split(": ", 1)[-1] if ": " in line else line
    return ""


def _fail(config: RunConfig, run: SessionRun, message: str, details: str = "") -> None:
    """One error line, no partial derivatives, a crash file, the run record and the report."""
    unit, record = run.unit, run.record
    _say_error(message)
    for path in layout.session_outputs(config.output_dir, unit.subject, unit.session):
        if path not in run.outputs_before or path.stat().st_mtime >= record.started:
            path.unlink(missing_ok=True)
    record.status, record.error, record.finished = "failed", message, time.time()
    try:
        write_crash_file(config.output_dir, unit, message, details)
    except OSError as exc:  # a full or read-only output disk: the line above has to do
        LOGGER.warning("%s: could not write the crash file: %s", unit.label, describe(exc))
    _finish_record(config, run)


def _succeed(config: RunConfig, run: SessionRun) -> None:
    from .workflows.base import removal_warnings, segmentation_warnings

    unit, record = run.unit, run.record
    ends = [n["end"] for n in record.nodes.values() if n.get("end")]
    record.status, record.finished = "ok", max(ends) if ends else time.time()
    session_work = config.work_dir / TOP_WORKFLOW / run.workflow.name
    record.warnings += segmentation_warnings(session_work)
    record.warnings += removal_warnings(config, unit)
    LOGGER.info("%s: done in %.0f s", unit.label, record.finished - record.started)
    _finish_record(config, run)
    if config.clean_workdir:
        shutil.rmtree(session_work, ignore_errors=True)


def _finish_record(config: RunConfig, run: SessionRun) -> None:
    from .reports import generate_session_report

    unit = run.unit
    try:
        run.record.save(config.output_dir)
    except OSError as exc:
        LOGGER.warning("%s: could not save the run record: %s", unit.label, describe(exc))
        return
    if not config.reports:
        return
    try:
        generate_session_report(config.output_dir, unit.subject, unit.session, record=run.record)
    except Exception as exc:  # noqa: BLE001 - a report must never fail a finished session
        LOGGER.warning("%s: report failed: %s", unit.label, exc)


def write_crash_file(output_dir: Path, unit: SessionInputs, message: str, details: str) -> Path:
    """``OUT/sub-X/log/crash-<session>-<time>.txt``: the one-line error first, then details."""
    from .utils.atomic import write_atomic

    path = layout.crash_path(output_dir, unit.subject, unit.session)
    return write_atomic(message + "\n\n" + details, path)


# --- group level ---------------------------------------------------------------------------------


def run_group_level(output_dir: Path, bids_dir: Path | None, reports: bool = True) -> ExitCode:
    """The group level: cohort tables, statistics and figures (and the reports, refreshed)."""
    from .group import run_group

    result = run_group(output_dir, bids_dir)
    print(f"group tables and figures in {layout.group_dir(output_dir)}")
    if reports:
        _group_reports(output_dir, result)
    failed = getattr(result, "failed", []) or []
    missing = getattr(result, "missing", []) or []
    if failed or missing:
        print(
            f"{len(failed)} failed and {len(missing)} missing sessions are listed in "
            f"{layout.group_dir(output_dir) / 'sessions_status.tsv'}"
        )
    return ExitCode.OK


def _group_reports(output_dir: Path, result) -> None:
    """Session reports again (now with the cohort panel; existing figures are kept) and the
    group report. Reports are a by-product: their failure is logged, never fatal."""
    from .reports import generate_group_report, generate_session_reports

    units = [(s.subject, s.session) for s in result.sessions]
    generate_session_reports(output_dir, units, refresh_figures=False)
    try:
        path = generate_group_report(output_dir, result)
        print(f"group report: {path}")
    except Exception as exc:  # noqa: BLE001
        LOGGER.warning("group report failed: %s", exc)
