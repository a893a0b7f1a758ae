"""``infant-tissue batch``: exit codes and files (fast), then a real run on a one-node SLURM
cluster started by containers/slurm/start-local-cluster.sh (skipped without slurm-wlm/root)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infant_tissue.cli import batch
from infant_tissue.cli.main import main as cli_main

REPO = Path(__file__).resolve().parents[2]
START_CLUSTER = REPO / "containers" / "slurm" / "start-local-cluster.sh"
STOP_CLUSTER = REPO / "containers" / "slurm" / "stop-local-cluster.sh"


def fake_bids(root: Path, sessions: dict[str, list[str | None]], no_t2w=()) -> Path:
    """A BIDS tree whose images are empty files: ``batch`` only looks at names."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "fake", "BIDSVersion": "1.10.0"})
    )
    for subject, labels in sessions.items():
        for session in labels:
            anat = root / f"sub-{subject}" / (f"ses-{session}" if session else "") / "anat"
            anat.mkdir(parents=True, exist_ok=True)
            prefix = f"sub-{subject}" + (f"_ses-{session}" if session else "")
            (anat / f"{prefix}_T1w.nii.gz").write_bytes(b"")
            if subject not in no_t2w:
                (anat / f"{prefix}_T2w.nii.gz").write_bytes(b"")
    return root


def tasks_of(batch_dir: Path) -> list[list[str]]:
    return [row.split("\t") for row in (batch_dir / "tasks.tsv").read_text().splitlines()[1:]]


def test_longitudinal_dataset_with_container(tmp_path, capsys):
    bids = fake_bids(tmp_path / "bids", {"01": ["V01", "V02"], "02": ["V01"]})
    image = tmp_path / "infant-tissue.sif"
    image.write_bytes(b"")
    out = tmp_path / "out"
    argv = ["batch", str(bids), str(out), "--container", str(image), "--gpus", "1"]
    argv += ["--max-running", "2", "--skull-stripped", "--", "--vote", "soft"]
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out
    batch_dir = out / "code" / "slurm"
    assert tasks_of(batch_dir) == [
        ["0", "01", "V01", "sub-01_ses-V01"],
        ["1", "01", "V02", "sub-01_ses-V02"],
        ["2", "02", "V01", "sub-02_ses-V01"],
    ]
    script = (batch_dir / "participant.sbatch").read_text()
    assert "#SBATCH --array=0-2%2" in script and "#SBATCH --gres=gpu:1" in script
    assert "singularity exec --nv --cleanenv" in script
    assert "--skull-stripped" in script and "--vote soft" in script
    assert f"sbatch --dependency=afterany:${{jid%%;*}} {batch_dir}/group.sbatch" in printed
    for name in ("participant.sbatch", "group.sbatch", "submit.sh"):
        subprocess.run(["bash", "-n", str(batch_dir / name)], check=True)


def test_sessionless_dataset_and_participant_filter(tmp_path):
    bids = fake_bids(tmp_path / "bids", {"01": [None], "02": [None], "03": [None]})
    out, batch_dir = tmp_path / "out", tmp_path / "jobs"
    argv = [str(bids), str(out), "--participant-label", "sub-03", "01"]
    argv += ["--batch-dir", str(batch_dir), "-w", str(tmp_path / "w"), "--no-container"]
    assert batch.main(argv) == 0
    assert tasks_of(batch_dir) == [["0", "01", "n/a", "sub-01"], ["1", "03", "n/a", "sub-03"]]
    script = (batch_dir / "participant.sbatch").read_text()
    assert "#SBATCH --array=0-1\n" in script
    exe = Path(sys.executable).with_name("infant-tissue")
    assert script.count(f"{exe} {bids} {out} participant") == 1
    assert "singularity" not in script


def test_session_filter(tmp_path):
    bids = fake_bids(tmp_path / "bids", {"01": ["A", "B"], "02": ["A", "B"]})
    batch_dir = tmp_path / "jobs"
    argv = [
        str(bids),
        str(tmp_path / "o"),
        "--session-label",
        "ses-B",
        "--batch-dir",
        str(batch_dir),
    ]
    assert batch.main(argv) == 0
    assert [row[3] for row in tasks_of(batch_dir)] == ["sub-01_ses-B", "sub-02_ses-B"]


def test_subject_with_sessions_and_loose_images_gets_one_task(tmp_path):
    bids = fake_bids(tmp_path / "bids", {"01": ["A", None], "02": ["A"]})
    batch_dir = tmp_path / "jobs"
    assert batch.main([str(bids), str(tmp_path / "o"), "--batch-dir", str(batch_dir)]) == 0
    assert tasks_of(batch_dir) == [["0", "01", "n/a", "sub-01"], ["1", "02", "A", "sub-02_ses-A"]]


def test_unusable_sessions_are_skipped_with_a_reason(tmp_path, capsys):
    bids = fake_bids(tmp_path / "bids", {"01": [None], "02": [None]}, no_t2w=("02",))
    batch_dir = tmp_path / "jobs"
    assert batch.main([str(bids), str(tmp_path / "o"), "--batch-dir", str(batch_dir)]) == 0
    assert tasks_of(batch_dir) == [["0", "01", "n/a", "sub-01"]]
    assert "skipped sub-02" in capsys.readouterr().err


@pytest.mark.parametrize("label", ["../x", "sub-../../etc", "01;rm"])
def test_path_traversal_labels_are_a_usage_error(tmp_path, capsys, label):
    bids = fake_bids(tmp_path / "bids", {"01": [None]})
    assert batch.main([str(bids), str(tmp_path / "o"), "--participant-label", label]) == 64
    assert "letters and digits" in capsys.readouterr().err
    assert batch.main([str(bids), str(tmp_path / "o"), "--session-label", label]) == 64


def test_no_subjects_is_exit_66_with_one_line(tmp_path, capsys):
    bids = tmp_path / "empty"
    bids.mkdir()
    (bids / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.10.0"}')
    assert batch.main([str(bids), str(tmp_path / "o")]) == 66
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bids) in err and err.startswith("infant-tissue")


def test_missing_inputs_are_exit_66(tmp_path, capsys):
    bids = fake_bids(tmp_path / "bids", {"01": [None]})
    out = str(tmp_path / "o")
    assert batch.main([str(tmp_path / "nope"), out]) == 66
    assert batch.main([str(bids), out, "--participant-label", "02"]) == 66
    assert batch.main([str(bids), out, "--container", str(tmp_path / "no.sif")]) == 66
    assert batch.main([str(bids), out, "--models", str(tmp_path / "no-models")]) == 66
    err = capsys.readouterr().err
    assert "nope: BIDS folder not found" in err and "sub-02" in err and "no.sif" in err


def test_usage_errors_are_exit_64(tmp_path, capsys):
    bids = fake_bids(tmp_path / "bids", {"01": [None]})
    image = tmp_path / "i.sif"
    image.write_bytes(b"")
    out = str(tmp_path / "o")
    assert batch.main([]) == 64
    assert batch.main([str(bids), str(bids)]) == 64
    assert batch.main([str(bids), out, "--container", str(image), "--no-container"]) == 64
    assert batch.main([str(bids), out, "--mem", "lots"]) == 64
    assert batch.main([str(bids), out, "--time", "1h"]) == 64
    assert batch.main([str(bids), out, "--cpus-per-task", "0"]) == 64
    assert batch.main([str(bids), out, "--unknown-option"]) == 64
    assert batch.main(["--help"]) == 0
    assert "--dependency=afterany" in capsys.readouterr().out


def test_submit_with_a_stand_in_sbatch(tmp_path, monkeypatch, capsys):
    """--submit calls sbatch twice, the group job depending on the array job's id."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    fake = bin_dir / "sbatch"
    fake.write_text(
        f'#!/bin/sh\necho "$@" >> {calls}\nn=$(wc -l < {calls})\necho "$((4000 + n));cluster"\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    bids = fake_bids(tmp_path / "bids", {"01": [None], "02": [None]})
    batch_dir = tmp_path / "jobs"
    assert (
        batch.main([str(bids), str(tmp_path / "o"), "--batch-dir", str(batch_dir), "--submit"]) == 0
    )
    assert calls.read_text().splitlines() == [
        f"--parsable {batch_dir}/participant.sbatch",
        f"--parsable --dependency=afterany:4001 {batch_dir}/group.sbatch",
    ]
    printed = capsys.readouterr().out
    assert "submitted array job 4001 (2 tasks)" in printed and "group job 4002" in printed

    fake.write_text("#!/bin/sh\necho 'sbatch: error: invalid partition' >&2\nexit 1\n")
    assert (
        batch.main([str(bids), str(tmp_path / "o"), "--batch-dir", str(batch_dir), "--submit"])
        == 69
    )
    assert "invalid partition" in capsys.readouterr().err


def test_nipype_slurm_plugin_file_is_read_by_the_app():
    from infant_tissue.app import _plugin

    path = REPO / "infant_tissue" / "data" / "nipype_slurm.yml"
    config = type("Config", (), {"plugin_file": path})()
    plugin, plugin_args = _plugin(config, runs=[])
    assert plugin == "SLURM"
    assert "--time=" in plugin_args["sbatch_args"] and plugin_args["max_jobs"] > 0
    from nipype.pipeline.plugins import SLURMPlugin

    SLURMPlugin(plugin_args=plugin_args)  # nipype accepts every key


# --- a real SLURM cluster ----------------------------------------------------------------------

needs_slurm = pytest.mark.skipif(
    shutil.which("sbatch") is None or shutil.which("slurmctld") is None or os.geteuid() != 0,
    reason="needs root and Debian's slurm-wlm and munge (apt-get install -y slurm-wlm munge)",
)


def _cluster_running() -> bool:
    state = Path(os.environ.get("INFANT_TISSUE_SLURM_DIR", "/var/spool/infant-tissue-slurm"))
    try:
        os.kill(int((state / "slurmctld.pid").read_text()), 0)
    except (OSError, ValueError):
        return False
    return True


@pytest.fixture(scope="module")
def slurm_conf():
    """Start the local cluster; stop it afterwards unless it was already running."""
    was_running = _cluster_running()
    started = time.monotonic()
    done = subprocess.run(
        ["bash", str(START_CLUSTER)], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"local SLURM cluster did not start: {done.stderr.strip()}")
    conf = re.search(r"^SLURM_CONF=(.+)$", done.stdout, re.MULTILINE).group(1)
    print(f"\nlocal cluster ready in {time.monotonic() - started:.1f} s")
    yield conf
    if not was_running:
        subprocess.run(["bash", str(STOP_CLUSTER)], capture_output=True, timeout=60, check=False)


def _wait_for(job_ids: list[str], env: dict[str, str], timeout: float) -> float:
    """Seconds until none of the jobs is queued or running; fails the test on timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        queued = subprocess.run(
            ["squeue", "-h", "-j", ",".join(job_ids), "-o", "%i %T"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        ).stdout.strip()
        if not queued:
            return time.monotonic() - started
        time.sleep(2)
    pytest.fail(f"jobs {job_ids} still queued after {timeout} s: {queued}")


def _job_states(job_id: str, env: dict[str, str]) -> list[tuple[str, str]]:
    """(JobState, ExitCode) of a job, one per array task (no sacct on the test cluster)."""
    text = subprocess.run(
        ["scontrol", "show", "job", job_id], capture_output=True, text=True, env=env, check=True
    ).stdout
    return re.findall(r"JobState=(\S+).*?ExitCode=(\S+)", text, re.DOTALL)


@needs_slurm
@pytest.mark.slow
def test_array_and_group_jobs_on_a_local_cluster(tmp_path, slurm_conf, monkeypatch, capsys):
    monkeypatch.setenv("SLURM_CONF", slurm_conf)
    env = dict(os.environ)
    bids, out = tmp_path / "bids", tmp_path / "out"
    phantoms = ["make-phantoms", str(bids), "--n-subjects", "2", "--seed", "7"]
    # Stand-in MNIInfant templates for the cerebellum + brain-stem removal: the array tasks have
    # no network, exactly as on a cluster, and find them through --templateflow-home.
    templates = tmp_path / "templateflow"
    phantoms += ["--shape", "32", "40", "32", "--skull-stripped", "--templateflow", str(templates)]
    assert cli_main(phantoms) == 0
    capsys.readouterr()

    argv = [str(bids), str(out), "-w", str(tmp_path / "work"), "--no-container", "--submit"]
    argv += ["--templateflow-home", str(templates)]
    argv += ["--cpus-per-task", "1", "--mem", "2G", "--time", "00:15:00", "--group-mem", "1G"]
    argv += ["--skull-stripped", "--inference-mode", "fast", "--device", "cpu"]
    started = time.monotonic()
    assert batch.main(argv) == 0
    printed = capsys.readouterr().out
    array_id = re.search(r"submitted array job (\d+)", printed).group(1)
    group_id = re.search(r"submitted group job (\d+)", printed).group(1)
    _wait_for([array_id, group_id], env, timeout=240)
    wall = time.monotonic() - started

    assert _job_states(array_id, env) == [("COMPLETED", "0:0")] * 2
    assert _job_states(group_id, env) == [("COMPLETED", "0:0")]
    logs = out / "code" / "slurm" / "logs"
    task_seconds = []
    for task in (0, 1):
        log = (logs / f"infant-tissue_{array_id}_{task}.out").read_text()
        task_seconds.append(int(re.search(r"exit 0 after (\d+) s", log).group(1)))
    assert (logs / f"infant-tissue-group_{group_id}.out").is_file()
    for subject in ("01", "02"):
        anat = out / f"sub-{subject}" / "ses-01" / "anat"
        prefix = f"sub-{subject}_ses-01"
        assert (anat / f"{prefix}_space-T1w_dseg.nii.gz").stat().st_size > 0
        assert (anat / f"{prefix}_desc-tissue_volumes.tsv").stat().st_size > 0
        assert (tmp_path / "work" / f"{prefix}").is_dir()
    assert (out / "group" / "tissue_volumes.tsv").is_file()
    status = (out / "group" / "sessions_status.tsv").read_text()
    assert status.count("\tok") == 2, status
    with capsys.disabled():
        print(
            f"\n2-session array on the local cluster: tasks {task_seconds} s, "
            f"submit -> group done {wall:.0f} s, {2 * 3600 / wall:.0f} participants/hour"
        )
