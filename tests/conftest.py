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
