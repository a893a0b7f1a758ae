"""``infant-tissue import-keras`` and ``model-info`` as a user runs them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from keras_numpy_reference import KerasDUNetReference

from infant_tissue.cli.main import main


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("keras")
    paths = []
    for seed, deploy in ((0, True), (1, True), (2, False)):
        ref = KerasDUNetReference(deploy=deploy, seed=seed, dtype=np.float32)
        ref.forward(np.zeros((8, 8, 8, 2)))
        path = tmp / f"{seed}.h5"
        ref.save_weights(path)
        paths.append(path)
    return paths


def test_import_then_model_info(tmp_path, keras_files, capsys):
    out = tmp_path / "masnet"
    assert main(["import-keras", *map(str, keras_files), "--out", str(out), "--name", "t"]) == 0
    assert "3 members" in capsys.readouterr().out
    assert main(["model-info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "members       3 (all checksums verified" in info
    assert "dunet-mixacb fused" in info


def test_console_script_runs_as_a_subprocess(tmp_path, keras_files):
    out = tmp_path / "b"
    cmd = [sys.executable, "-m", "infant_tissue.cli.main", "import-keras", str(keras_files[0])]
    done = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (out / "model.json").is_file()


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"not hdf5 at all", "cannot read as HDF5"), (None, "no such file")],
    ids=["not-hdf5", "missing"],
)
def test_bad_input_gives_one_line_and_no_bundle(tmp_path, capsys, content, expected):
    bad = tmp_path / "bad.h5"
    if content is not None:
        bad.write_bytes(content)
    code = main(["import-keras", str(bad), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == (1 if content is not None else 66)
    assert len(err.splitlines()) == 1 and expected in err and "bad.h5" in err
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == (["bad.h5"] if content is not None else [])


def test_truncated_second_file_leaves_no_partial_bundle(tmp_path, keras_files, capsys):
    broken = tmp_path / "broken.h5"
    data = keras_files[1].read_bytes()
    broken.write_bytes(data[: len(data) // 3])
    code = main(["import-keras", str(keras_files[0]), str(broken), "--out", str(tmp_path / "o")])
    assert code == 1
    assert "broken.h5" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.h5"]


def test_usage_errors_exit_64(capsys):
    assert main(["import-keras"]) == 64
    assert main([]) == 64
    assert main(["--commands"]) == 0
    assert "import-keras" in capsys.readouterr().out


def test_existing_output_needs_force(tmp_path, keras_files, capsys):
    out = tmp_path / "b"
    assert main(["import-keras", str(keras_files[0]), "--out", str(out)]) == 0
    assert main(["import-keras", str(keras_files[0]), "--out", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["import-keras", str(keras_files[0]), "--out", str(out), "--force"]) == 0
