"""The BIDS-App: ``infant-tissue BIDS_DIR OUTPUT_DIR {participant,group} [options]``.

Exit codes follow the BIDS-Apps execution draft: 0 success, 1 some participant failed,
16 BIDS validation failed, 17 unknown analysis level, 64 usage error, 66 missing input.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

from .. import __version__
from .common import add_data_selection, parse_args

EXIT_OK, EXIT_FAILED, EXIT_VALIDATION, EXIT_LEVEL, EXIT_USAGE, EXIT_NOINPUT = 0, 1, 16, 17, 64, 66
LEVELS = ("participant", "group")
LOGGER = logging.getLogger("infant_tissue")

EXAMPLES = """\
examples:
  # every participant, CPU or GPU chosen automatically, the bundled/default model
  infant-tissue /data/bids /data/derivatives/infant-tissue participant
  # two participants, already skull-stripped inputs (iSeg-like), a converted 3D-MASNet ensemble
  infant-tissue /data/bids /out participant --participant-label 01 sub-02 \\
      --skull-stripped --models /models/masnet-iseg2019
  # a quick CPU run with a documented fast mode, 4 threads
  infant-tissue /data/bids /out participant --inference-mode fast --omp-nthreads 4
  # the cohort tables and figures, after every participant has run
  infant-tissue /data/bids /out group
"""


def default_bundle() -> Path | None:
    """The model used without ``--models``: $INFANT_TISSUE_MODELS, else the packaged demo."""
    env = os.environ.get("INFANT_TISSUE_MODELS")
    if env:
        return Path(env)
    packaged = Path(__file__).resolve().parent.parent / "data" / "bundles" / "demo"
    return packaged if (packaged / "model.json").is_file() else None


class _VersionAction(argparse.Action):
    """``--version``, computed only when asked (it imports torch and hashes the bundle)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, **kw):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="infant-tissue",
        description="CSF/GM/WM segmentation of 6-month-old infant T1w+T2w MRI with 3D-MASNet "
        "(BIDS-App). Other commands: infant-tissue --commands.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("bids_dir", type=Path, help="the input BIDS dataset")
    p.add_argument("output_dir", type=Path, help="where derivatives are written")
    p.add_argument("analysis_level", help="participant or group")
    p.add_argument("--version", action=_VersionAction, help="show versions, bundle and exit")
    g = add_data_selection(p, "do not check the input dataset's basic BIDS structure")
    g.add_argument("--age-months", type=float, help="age at scan in months (overrides the tables)")
    g.add_argument(
        "--skull-stripped",
        action="store_true",
        help="inputs are already brain-extracted (iSeg-like): mask = non-zero voxels",
    )
    g.add_argument(
        "--derivatives",
        type=Path,
        metavar="DIR",
        help="derivatives with precomputed NiBabies-style desc-brain_mask files",
    )
    g.add_argument(
        "--keep-cerebellum",
        action="store_true",
        help="do not remove cerebellum and brain stem before segmenting. Models trained on iSeg "
        "data (input domain 'cerebrum', e.g. the published 3D-MASNet) never saw them: use it only "
        "for inputs whose cerebellum and brain stem are already removed",
    )
    m = p.add_argument_group("model and inference")
    m.add_argument("--models", type=Path, metavar="DIR", help="weight bundle (default: packaged)")
    m.add_argument(
        "--inference-mode",
        default="faithful",
        help="faithful (paper), fast, stride16, tile64, ... (see docs/inference.md)",
    )
    m.add_argument("--vote", choices=("hard", "soft"), default="hard", help="ensemble vote rule")
    m.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    r = p.add_argument_group("resources")
    r.add_argument("-w", "--work-dir", type=Path, help="intermediate files (default: ./work)")
    r.add_argument(
        "--nprocs",
        "--n-cpus",
        type=int,
        default=os.cpu_count() or 1,
        help="processes for nipype's MultiProc plugin",
    )
    r.add_argument(
        "--omp-nthreads",
        type=int,
        default=None,
        help="threads per process (ANTs, PyTorch); default min(8, nprocs)",
    )
    r.add_argument("--mem-gb", type=float, help="memory available to the run")
    r.add_argument(
        "--nipype-plugin-file",
        type=Path,
        metavar="YAML",
        help="nipype plugin and its args (MultiProc, SLURM, SGE, ...)",
    )
    r.add_argument(
        "--clean-workdir",
        action="store_true",
        help="remove a session's work folder after it succeeds",
    )
    p.add_argument(
        "--no-reports",
        action="store_true",
        help="skip the HTML QC reports (sub-X[_ses-Y].html, group/report.html)",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv)")
    return p


def version_text() -> str:
    lines = [f"infant-tissue {__version__}"]
    bundle = default_bundle()
    if bundle is not None and (bundle / "model.json").is_file():
        import hashlib

        meta = json.loads((bundle / "model.json").read_text())
        sha = hashlib.sha256((bundle / "model.json").read_bytes()).hexdigest()
        lines.append(
            f"model bundle {meta.get('name')} ({len(meta.get('members', []))} members) sha256 {sha}"
        )
    else:
        lines.append("model bundle: none installed (use --models)")
    try:
        import torch

        cuda = torch.version.cuda or "none (CPU build)"
        lines.append(f"torch {torch.__version__}, CUDA {cuda}")
    except ImportError:  # pragma: no cover
        lines.append("torch not installed")
    return "\n".join(lines)


#: Thread-count variables of the numeric libraries, ITK (ANTs) and OpenMP.
THREAD_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS",
)


def _set_thread_env(args) -> int:
    """Export ``--omp-nthreads`` (default ``min(8, nprocs)``) as the libraries' thread counts, so
    processes started from here (ANTs, nipype batch jobs) stay within the CPU budget. An explicit
    ``--omp-nthreads`` wins over the environment; the default only fills unset variables."""
    threads = args.omp_nthreads or min(8, max(1, args.nprocs))
    for name in THREAD_ENV:
        if args.omp_nthreads or name not in os.environ:
            os.environ[name] = str(threads)
    return threads


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING - 10 * min(verbose + 1, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    logging.getLogger("nipype").setLevel(logging.WARNING if verbose < 2 else logging.INFO)
    # nipype's logger carries its own (stdout) handler: propagating to ours would print twice
    logging.getLogger("nipype").propagate = False


def _error(message: str) -> None:
    print(f"infant-tissue: error: {message}", file=sys.stderr)


def validate_bids(bids_dir: Path) -> str | None:
    """Basic BIDS structure check; returns a problem or None."""
    desc = bids_dir / "dataset_description.json"
    if not desc.is_file():
        return f"{desc}: missing (not a BIDS dataset; --skip-bids-validation to go on anyway)"
    try:
        data = json.loads(desc.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return f"{desc}: invalid JSON ({exc})"
    if not isinstance(data, dict) or "Name" not in data or "BIDSVersion" not in data:
        return f"{desc}: needs 'Name' and 'BIDSVersion'"
    if not any(p.is_dir() and p.name.startswith("sub-") for p in bids_dir.iterdir()):
        return f"{bids_dir}: no sub-* folders"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    if isinstance(args, int):
        return args
    _setup_logging(args.verbose)
    if args.analysis_level not in LEVELS:
        _error(f"unknown analysis level {args.analysis_level!r}; use participant or group")
        return EXIT_LEVEL
    if not args.bids_dir.is_dir():
        _error(f"{args.bids_dir}: BIDS folder not found")
        return EXIT_NOINPUT
    if args.bids_dir.resolve() == args.output_dir.resolve():
        _error("output_dir must differ from bids_dir")
        return EXIT_USAGE
    if not args.skip_bids_validation:
        problem = validate_bids(args.bids_dir)
        if problem:
            _error(problem)
            return EXIT_VALIDATION
    if args.analysis_level == "group":
        return run_group_level(args)
    return run_participant_level(args)


def run_group_level(args) -> int:
    from ..group import run_group

    try:
        result = run_group(args.output_dir, args.bids_dir)
    except (ValueError, FileNotFoundError) as exc:
        _error(str(exc))
        return EXIT_NOINPUT
    print(f"group tables and figures in {args.output_dir / 'group'}")
    if not args.no_reports:
        _group_reports(args.output_dir, result)
    failed = getattr(result, "failed", []) or []
    missing = getattr(result, "missing", []) or []
    if failed or missing:
        print(
            f"{len(failed)} failed and {len(missing)} missing sessions are listed in "
            f"{args.output_dir / 'group' / 'sessions_status.tsv'}"
        )
    return EXIT_OK


def _group_reports(output_dir: Path, result) -> None:
    """Session reports again (now with the cohort panel; existing figures are kept) and the
    group report. Reports are a by-product: their failure is logged, never fatal."""
    from ..reports import generate_group_report, generate_session_reports

    units = [(s.subject, s.session) for s in result.sessions]
    generate_session_reports(output_dir, units, refresh_figures=False)
    try:
        path = generate_group_report(output_dir, result)
        print(f"group report: {path}")
    except Exception as exc:  # noqa: BLE001
        LOGGER.warning("group report failed: %s", exc)


def _session_report(config, unit, record, args) -> None:
    from ..reports import generate_session_report

    record.save(config.output_dir)
    if args.no_reports:
        return
    try:
        generate_session_report(config.output_dir, unit.subject, unit.session, record=record)
    except Exception as exc:  # noqa: BLE001 - a report must never fail a finished session
        LOGGER.warning("%s: report failed: %s", unit.label, exc)


def _new_record(config, unit):
    from ..reports import RunRecord

    inputs = {k: str(getattr(unit, k)) for k in ("t1w", "t2w") if getattr(unit, k, None)}
    return RunRecord(
        subject=unit.subject,
        session=unit.session,
        inputs=inputs,
        age_months=unit.age_months,
        age_source=unit.age_source,
        warnings=list(unit.warnings),
    )


def run_participant_level(args) -> int:
    _set_thread_env(args)
    os.environ.setdefault("NIPYPE_NO_ET", "1")  # nipype must not phone home
    os.environ.setdefault("TEMPLATEFLOW_AUTOUPDATE", "0")
    from ..bids import (
        BidsInputError,
        ParticipantNotFoundError,
        check_session_images,
        collect_sessions,
        load_bids_filters,
    )
    from ..config import RunConfig

    bundle = args.models or default_bundle()
    if bundle is None or not (Path(bundle) / "model.json").is_file():
        _error(f"{bundle or 'no --models'}: no weight bundle (model.json) found; give --models DIR")
        return EXIT_NOINPUT
    try:
        from ..bundle import load_bundle

        input_domain = load_bundle(bundle).input_domain
    except ValueError as exc:
        _error(str(exc))
        return EXIT_FAILED
    if args.keep_cerebellum and input_domain == "cerebrum":
        LOGGER.warning(
            "--keep-cerebellum: cerebellum and brain stem are not removed, but the model was "
            "trained without them (input domain 'cerebrum'): any there get cerebral tissue labels "
            "outside its training domain"
        )
    nprocs = max(1, args.nprocs)
    omp = args.omp_nthreads or min(8, nprocs)
    config = RunConfig(
        bids_dir=args.bids_dir.resolve(),
        output_dir=args.output_dir.resolve(),
        work_dir=(args.work_dir or Path.cwd() / "work").resolve(),
        bundle=Path(bundle).resolve(),
        inference_mode=args.inference_mode,
        vote=args.vote,
        device=args.device,
        nprocs=nprocs,
        omp_nthreads=omp,
        mem_gb=args.mem_gb,
        skull_stripped=args.skull_stripped,
        derivatives=args.derivatives.resolve() if args.derivatives else None,
        age_months=args.age_months,
        input_domain=input_domain,
        keep_cerebellum=args.keep_cerebellum,
    )
    try:
        filters = load_bids_filters(args.bids_filter_file) if args.bids_filter_file else None
    except FileNotFoundError:
        _error(f"{args.bids_filter_file}: filter file not found")
        return EXIT_NOINPUT
    except BidsInputError as exc:
        _error(str(exc))
        return EXIT_USAGE
    exit_code = EXIT_OK
    labels = args.participant_label
    try:
        sessions = collect_sessions(
            config.bids_dir, labels, args.session_label, filters, age_override=config.age_months
        )
    except ParticipantNotFoundError as exc:
        _error(str(exc))
        found = [lab for lab in labels if lab.removeprefix("sub-") not in exc.missing]
        if not found:
            return EXIT_NOINPUT
        exit_code = EXIT_FAILED
        sessions = collect_sessions(
            config.bids_dir, found, args.session_label, filters, age_override=config.age_months
        )
    if not sessions:
        _error(f"{config.bids_dir}: no participants to process")
        return EXIT_NOINPUT

    from ..derivatives import ensure_dataset_files

    ensure_dataset_files(config.output_dir, str(config.bids_dir))
    for unit in sessions:
        if unit.ok:
            check_session_images(unit)
        if not unit.ok:
            message = f"{unit.label}: " + "; ".join(unit.problems)
            _error(message)
            write_crash_file(config.output_dir, unit, message, "")
            record = _new_record(config, unit)
            record.status, record.error, record.finished = "failed", message, time.time()
            _session_report(config, unit, record, args)
            exit_code = EXIT_FAILED
            continue
        for warning in unit.warnings:
            LOGGER.warning("%s: %s", unit.label, warning)
        if not run_session(config, unit, args):
            exit_code = EXIT_FAILED
    return exit_code


def write_crash_file(output_dir: Path, unit, message: str, details: str) -> Path:
    """``OUT/sub-X/log/crash-<session>-<time>.txt``: the one-line error first, then details."""
    from ..images import write_atomic

    stamp = _dt.datetime.now().strftime("%Y%m%dT%H%M%S%f")
    path = (
        output_dir
        / f"sub-{unit.subject}"
        / "log"
        / (f"crash-{unit.session or 'nosession'}-{stamp}.txt")
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(message + "\n\n" + details, path)
    return path


def _session_outputs(config, unit) -> list[Path]:
    folder = config.output_dir / f"sub-{unit.subject}"
    if unit.session:
        folder = folder / f"ses-{unit.session}"
    return sorted((folder / "anat").glob(f"{unit.prefix}_*")) if (folder / "anat").is_dir() else []


def run_session(config, unit, args) -> bool:
    """Build and run one session's workflow; on failure report one line, write the crash file
    and remove the derivatives this run wrote for the session (no partial set is left)."""
    from nipype import config as nipype_config

    from ..workflows.base import init_session_wf

    log_dir = config.output_dir / f"sub-{unit.subject}" / "log"
    nipype_config.set("execution", "crashfile_format", "txt")
    nipype_config.set("execution", "crashdump_dir", str(log_dir / "nipype"))
    nipype_config.set("execution", "stop_on_first_crash", "true")
    nipype_config.set("monitoring", "enabled", "false")
    # nipype sets its own logger levels from its config when a workflow runs; without this its
    # scheduler prints a line every few seconds ("[MultiProc] Running 0 tasks...").
    level = "INFO" if args.verbose >= 2 else "WARNING"
    for key in ("workflow_level", "interface_level", "utils_level"):
        nipype_config.set("logging", key, level)
    from nipype import logging as nipype_logging

    nipype_logging.update_logging(nipype_config)
    from ..reports import RunRecorder
    from ..workflows.base import mask_method

    record = _new_record(config, unit)
    started = record.started
    before = set(_session_outputs(config, unit))
    try:
        record.mask_method, mask_inputs = mask_method(config, unit)
        record.template = (
            mask_inputs.get("cohort", "") and f"MNIInfant cohort {mask_inputs['cohort']}"
        )
        record.removal = _removal_description(config, unit, record.mask_method)
        wf = init_session_wf(config, unit)
        wf.base_dir = str(config.work_dir)
        plugin, plugin_args = _plugin(args, config)
        record.plugin = plugin
        if plugin in ("MultiProc", "Linear", "LegacyMultiProc"):
            plugin_args["status_callback"] = RunRecorder(record).status_callback
        LOGGER.info("%s: running (%s)", unit.label, plugin)
        wf.run(plugin=plugin, plugin_args=plugin_args)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line + crash file
        message = f"{unit.label}: {_first_line(exc, log_dir / 'nipype', started)}"
        _error(message)
        record.status, record.error, record.finished = "failed", message, time.time()
        for path in _session_outputs(config, unit):
            if path not in before or path.stat().st_mtime >= started:
                path.unlink(missing_ok=True)
        write_crash_file(
            config.output_dir,
            unit,
            message,
            traceback.format_exc() + _nipype_crash_text(log_dir / "nipype", started),
        )
        _session_report(config, unit, record, args)
        return False
    record.status, record.finished = "ok", time.time()
    record.warnings += _segmentation_warnings(Path(config.work_dir) / wf.name)
    record.warnings += _removal_warnings(config, unit)
    LOGGER.info("%s: done in %.0f s", unit.label, time.time() - started)
    _session_report(config, unit, record, args)
    if args.clean_workdir:
        shutil.rmtree(Path(config.work_dir) / wf.name, ignore_errors=True)
    return True


def _removal_description(config, unit, mask_method: str) -> str:
    """How the session's cerebellum + brain stem are handled, for the report."""
    from ..bids import mniinfant_cohort

    if config.remove_cerebellum:
        how = (
            "brain extraction's template registration"
            if mask_method == "template"
            else "registration of the template T2w (affine + SyN)"
        )
        return f"removed: MNIInfant cohort {mniinfant_cohort(unit.age_months)} mask, {how}"
    if config.input_domain == "cerebrum":
        return "kept (--keep-cerebellum): the model was trained without them"
    return "kept: the model was trained on whole brains"


def _removal_warnings(config, unit) -> list[str]:
    """The removal's plausibility problems (recorded in the removed region's sidecar)."""
    from ..templates import REMOVAL_DESC

    if not config.remove_cerebellum:
        return []
    folder = config.output_dir / f"sub-{unit.subject}"
    if unit.session:
        folder = folder / f"ses-{unit.session}"
    found = sorted((folder / "anat").glob(f"{unit.prefix}_*desc-{REMOVAL_DESC}_mask.json"))
    try:
        problems = json.loads(found[0].read_text()).get("Problems", []) if found else []
    except (OSError, ValueError, AttributeError):
        return []
    return [f"cerebellum + brain-stem removal looks implausible: {p}" for p in problems]


def _segmentation_warnings(session_work_dir: Path) -> list[str]:
    """Warnings the segmentation node recorded (it may have run in another process)."""
    info = session_work_dir / "segmentation_wf" / "segment" / "segmentation.json"
    try:
        return list(json.loads(info.read_text()).get("warnings", []))
    except (OSError, ValueError, AttributeError):
        return []


def _plugin(args, config) -> tuple[str, dict]:
    if args.nipype_plugin_file:
        import yaml

        data = yaml.safe_load(Path(args.nipype_plugin_file).read_text()) or {}
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


def _first_line(exc: Exception, crash_dir: Path, since: float) -> str:
    """The most specific one-line reason: the failing node's own exception when nipype has one."""
    text = _nipype_crash_text(crash_dir, since)
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line and ("Error" in line.split(":")[0] or "Exception" in line.split(":")[0]):
            return line.split(": ", 1)[-1] if ": " in line else line
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
