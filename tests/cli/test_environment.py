"""Environment failures and bad options: one line, the exit code, nothing partial, no traceback.

The disk conditions are real: small or read-only tmpfs mounts (root and mount rights needed;
skipped with that reason elsewhere), a file where the output folder should be.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import pytest

from infant_tissue.cli import batch
from infant_tissue.cli.main import main

from ..app_fixtures import run_app, skull_stripped_dataset, tiny_bundle

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "16m", readonly: bool = False):
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'not root'})")
    try:
        if readonly:
            subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("env")
    skull_stripped_dataset(tmp / "bids")
    return tmp / "bids", tiny_bundle(tmp / "bundle")


def _participant(bids, out, bundle, work, *extra):
    return run_app(
        bids, out, "participant", "--participant-label", "01", "--skull-stripped",
        "--keep-cerebellum", "--models", bundle, "--inference-mode", "whole", "--device", "cpu",
        "--nprocs", "1", "--omp-nthreads", "1", "--no-reports", "-w", work, *extra, timeout=600,
    )  # fmt: skip


def _one_error(proc) -> str:
    errors = [line for line in proc.stderr.splitlines() if line.startswith("infant-tissue: error")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "nipype.workflow" not in proc.stderr
    return errors[0]


def test_output_path_that_is_a_file(dataset, tmp_path):
    bids, bundle = dataset
    blocker = tmp_path / "out.txt"
    blocker.write_text("not a folder\n")
    done = _participant(bids, blocker, bundle, tmp_path / "work")
    assert done.returncode == 73
    assert str(blocker) in _one_error(done)
    assert blocker.read_text() == "not a folder\n"
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())


def test_output_folder_that_cannot_be_created(dataset, tmp_path):
    bids, bundle = dataset
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "derivatives"
    done = _participant(bids, out, bundle, tmp_path / "work")
    assert done.returncode == 73
    assert str(out) in _one_error(done)


def test_read_only_output(dataset, tmp_path):
    bids, bundle = dataset
    with tmpfs(tmp_path / "ro", readonly=True) as out:
        done = _participant(bids, out, bundle, tmp_path / "work")
        assert done.returncode == 73
        line = _one_error(done)
        assert str(out) in line and "read-only file system" in line
        assert list(out.iterdir()) == []


def test_work_folder_not_writable(dataset, tmp_path):
    bids, bundle = dataset
    with tmpfs(tmp_path / "ro", readonly=True) as work:
        done = _participant(bids, tmp_path / "out", bundle, work)
        assert done.returncode == 73
        line = _one_error(done)
        assert str(work) in line and "work folder" in line


def test_full_disk_fails_the_session_cleanly(dataset, tmp_path):
    """The output disk fills while the session writes: one line naming the disk-full file, exit
    1, no derivative left behind, nipype's tracebacks not on the console."""
    bids, bundle = dataset
    with tmpfs(tmp_path / "small", size="48k") as out:
        done = _participant(bids, out, bundle, tmp_path / "work")
        assert done.returncode == 1
        line = _one_error(done)
        assert line.startswith("infant-tissue: error: sub-01:") and "no space left" in line
        anat = out / "sub-01" / "anat"
        assert not anat.is_dir() or not [p for p in anat.iterdir() if p.suffix != ".json"]
        assert not [p for p in out.rglob("*") if ".tmp-" in p.name]


def test_dataset_under_a_datatype_named_parent_folder(dataset, tmp_path):
    """pybids reads a datatype from the absolute path: /data/perf/study must still work."""
    import shutil

    from infant_tissue.utils.bids import collect_sessions

    bids, _ = dataset
    moved = tmp_path / "perf" / "func" / "study"
    shutil.copytree(bids, moved)
    units = collect_sessions(moved, ["01", "02"])
    assert [u.ok for u in units] == [True, True]
    assert all(u.t1w.parent.name == "anat" and u.t2w is not None for u in units)


@pytest.mark.parametrize(
    ("option", "value"),
    [("--inference-mode", "fastt"), ("--device", "gpu"), ("--inference-mode", "tile20")],
)
def test_option_typos_exit_64_before_anything_runs(dataset, tmp_path, capsys, option, value):
    bids, bundle = dataset
    out = tmp_path / "out"
    assert main([str(bids), str(out), "participant", "--models", str(bundle), option, value]) == 64
    assert value in capsys.readouterr().err
    assert not out.exists()
    code = batch.main([str(bids), str(out), option, value, "--batch-dir", str(tmp_path / "b")])
    assert code == 64
    assert not (tmp_path / "b").exists()
