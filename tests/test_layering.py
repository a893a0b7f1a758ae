"""The model code stays free of the application shell: importing it loads neither nipype nor
pybids (checked in a fresh interpreter, where nothing else has imported them)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "infant_tissue.nn",
        "infant_tissue.inference",
        "infant_tissue.inference.predictor",
        "infant_tissue.inference.files",
        "infant_tissue.bundle",
        "infant_tissue.training.trainer",
    ],
)
def test_model_code_imports_neither_nipype_nor_pybids(module):
    code = (
        "import sys, importlib\n"
        f"importlib.import_module({module!r})\n"
        "from infant_tissue.inference import segment  # the lazy names resolve too\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('nipype', 'bids'))\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "", f"{module} imports {done.stdout.strip()}"


def test_validating_the_command_line_does_not_import_torch():
    code = (
        "import sys\n"
        "from infant_tissue.cli._common import parse_device, parse_mode\n"
        "parse_mode('fast'); parse_device('cuda:1')\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr[-2000:]
