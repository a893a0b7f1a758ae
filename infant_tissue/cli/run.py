"""The BIDS-App: ``infant-tissue BIDS_DIR OUTPUT_DIR {participant,group} [options]``.

Parse, build the run configuration, call :mod:`infant_tissue.app`, return the exit code.
Exit codes (:class:`~infant_tissue.errors.ExitCode`) follow the BIDS-Apps execution draft: 0
success, 1 some participant failed, 16 BIDS validation failed, 17 unknown analysis level, 64
usage error, 66 missing input; and 73 when the output or work folder cannot be created or
written, 74 when the disk fills up.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._common import ExitCode, error, guarded, parse_args, setup_logging
from .parser import LEVELS, build_parser, default_bundle, validate_bids

PROG = "infant-tissue"

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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)
    if isinstance(args, int):
        return args
    setup_logging(PROG, args.verbose, timestamps=True)
    if args.analysis_level not in LEVELS:
        error(PROG, f"unknown analysis level {args.analysis_level!r}; use participant or group")
        return ExitCode.LEVEL
    if not args.bids_dir.is_dir():
        error(PROG, f"{args.bids_dir}: BIDS folder not found")
        return ExitCode.NOINPUT
    if args.bids_dir.resolve() == args.output_dir.resolve():
        error(PROG, "output_dir must differ from bids_dir")
        return ExitCode.USAGE
    if not args.skip_bids_validation:
        problem = validate_bids(args.bids_dir)
        if problem:
            error(PROG, problem)
            return ExitCode.VALIDATION
    if args.analysis_level == "group":
        from ..app import run_group_level

        return guarded(
            PROG, lambda: run_group_level(args.output_dir, args.bids_dir, not args.no_reports)
        )
    return guarded(PROG, lambda: _participant(args))


def _participant(args) -> int:
    import logging

    from ..app import run_participant
    from ..bundle import load_bundle
    from ..config import RunConfig
    from ..inference.modes import parse_mode as parse_inference_mode
    from ..utils.filters import load_bids_filters

    os.environ.setdefault("NIPYPE_NO_ET", "1")  # nipype must not phone home
    os.environ.setdefault("TEMPLATEFLOW_AUTOUPDATE", "0")
    omp = _set_thread_env(args)
    bundle = args.models or default_bundle()
    if bundle is None or not (Path(bundle) / "model.json").is_file():
        error(
            PROG,
            f"{bundle or 'no --models'}: no weight bundle (model.json) found; give --models DIR",
        )
        return ExitCode.NOINPUT
    loaded = load_bundle(bundle)
    input_domain = loaded.input_domain
    members = min(len(loaded), parse_inference_mode(args.inference_mode).members or len(loaded))
    if args.qc_norms is not None:
        from ..qc.norms import BrainVolumeNorms

        BrainVolumeNorms.read(args.qc_norms)  # a bad table stops the run before any work
    if args.keep_cerebellum and input_domain == "cerebrum":
        logging.getLogger("infant_tissue").warning(
            "--keep-cerebellum: cerebellum and brain stem are not removed, but the model was "
            "trained without them (input domain 'cerebrum'): any there get cerebral tissue labels "
            "outside its training domain"
        )
    filters = load_bids_filters(args.bids_filter_file) if args.bids_filter_file else None
    config = RunConfig(
        bids_dir=args.bids_dir.resolve(),
        output_dir=args.output_dir.resolve(),
        work_dir=(args.work_dir or Path.cwd() / "work").resolve(),
        bundle=Path(bundle).resolve(),
        inference_mode=args.inference_mode,
        vote=args.vote,
        device=args.device,
        nprocs=max(1, args.nprocs),
        omp_nthreads=omp,
        mem_gb=args.mem_gb,
        skull_stripped=args.skull_stripped,
        derivatives=args.derivatives.resolve() if args.derivatives else None,
        age_months=args.age_months,
        input_domain=input_domain,
        keep_cerebellum=args.keep_cerebellum,
        t2w_registered=args.t2w_registered,
        ensemble_members=members,
        qc_norms=args.qc_norms.resolve() if args.qc_norms else None,
        participant_labels=args.participant_label,
        session_labels=args.session_label,
        bids_filters=filters,
        reports=not args.no_reports,
        verbose=args.verbose,
        plugin_file=args.nipype_plugin_file,
        clean_workdir=args.clean_workdir,
    )
    return run_participant(config)
