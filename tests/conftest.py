"""Shared fixtures; makes the helper modules in tests/ importable from sub-folders."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("NIPYPE_NO_ET", "1")  # no network from nipype in tests
os.environ.setdefault("TEMPLATEFLOW_AUTOUPDATE", "0")
os.environ.setdefault("MPLBACKEND", "Agg")

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

SHARED = TESTS.parent.parent / "shared"


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield


@pytest.fixture
def shared_dir() -> Path:
    """``../shared`` beside the repository (real infant data, seeds); skip when absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not present on this machine")
    return SHARED


@pytest.fixture(scope="session")
def standin_templateflow(tmp_path_factory) -> Path:
    """A TemplateFlow home with phantom stand-ins of MNIInfant cohorts 3 and 4 (T1w, T2w, brain
    and cerebellum + brain-stem masks), the size of the tests' phantoms."""
    from app_fixtures import SHAPE

    from infant_tissue.phantoms.templates import write_templateflow

    home = tmp_path_factory.mktemp("templateflow")
    write_templateflow(home, [3, 4], shape=SHAPE)
    return home


@pytest.fixture(scope="session")
def app_run(tmp_path_factory):
    """One participant run over four subjects (two good, two broken), then the group level."""
    from app_fixtures import run_app, skull_stripped_dataset, tiny_bundle

    tmp = tmp_path_factory.mktemp("app")
    truth = skull_stripped_dataset(tmp / "bids")
    bundle = tiny_bundle(tmp / "bundle")
    args = [
        str(tmp / "bids"),
        str(tmp / "out"),
        "participant",
        "--skull-stripped",
        "--models",
        str(bundle),
        "--inference-mode",
        "whole",
        "--nprocs",
        "1",
        "--omp-nthreads",
        "1",
        "-w",
        str(tmp / "work"),
        "--device",
        "cpu",
        # iSeg-style inputs: cerebellum and brain stem are already removed
        "--keep-cerebellum",
    ]
    proc = run_app(*args)
    group = run_app(tmp / "bids", tmp / "out", "group", timeout=600)
    return tmp, proc, group, truth, args
