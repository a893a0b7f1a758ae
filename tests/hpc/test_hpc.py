"""SLURM script generation (infant_tissue.hpc): content of the scripts, no cluster needed."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from infant_tissue import hpc
from infant_tissue.hpc import (
    AppOptions,
    BatchError,
    BatchPlan,
    Container,
    Resources,
    Task,
)

TASKS = (Task(0, "01", "V01"), Task(1, "01", "V02"), Task(2, "02", None))


def plan(tmp_path: Path, **changes) -> BatchPlan:
    values = {
        "bids_dir": tmp_path / "bids",
        "output_dir": tmp_path / "out",
        "work_dir": tmp_path / "work",
        "batch_dir": tmp_path / "out" / "code" / "slurm",
        "tasks": TASKS,
        "resources": Resources(cpus_per_task=8, mem="32G", time="02:00:00", gpus="1"),
        "group_resources": Resources(job_name="infant-tissue-group", cpus_per_task=1, mem="4G"),
        "container": Container(tmp_path / "infant-tissue.sif"),
    }
    values.update(changes)
    return BatchPlan(**values)


def sbatch_options(script: str) -> dict[str, str]:
    options = {}
    for line in script.splitlines():
        if line.startswith("#SBATCH "):
            key, _, value = line[len("#SBATCH ") :].partition("=")
            options[key] = value
    return options


def test_labels_are_checked_and_stripped():
    assert hpc.check_label("sub-01", "participant") == "01"
    assert hpc.check_label("V02", "session") == "V02"
    assert hpc.check_label("ses-V02", "session") == "V02"
    for bad in ("../x", "sub-../x", "01 02", "a;b", "", "a/b", "sub-"):
        with pytest.raises(BatchError, match="letters and digits"):
            hpc.check_label(bad, "participant")


def test_make_tasks_numbers_from_zero_and_refuses_unsafe_labels():
    units = [
        SimpleNamespace(subject="01", session="A"),
        SimpleNamespace(subject="02", session=None),
    ]
    assert hpc.make_tasks(units) == [Task(0, "01", "A"), Task(1, "02", None)]
    with pytest.raises(BatchError):
        hpc.make_tasks([SimpleNamespace(subject="01", session="../../etc")])


def test_subject_with_loose_images_and_sessions_is_one_task():
    """A run without --session-label does all of a subject's sessions: no duplicate tasks."""
    units = [
        SimpleNamespace(subject="01", session="A"),
        SimpleNamespace(subject="01", session="B"),
        SimpleNamespace(subject="01", session=None),
        SimpleNamespace(subject="02", session="A"),
    ]
    assert hpc.make_tasks(units) == [Task(0, "01", None), Task(1, "02", "A")]


def test_line_breaks_cannot_reach_the_sbatch_header(tmp_path):
    for resources in (Resources(partition="gpu\nrm -rf /"), Resources(extra=("--qos=a\rb",))):
        with pytest.raises(BatchError, match="line break"):
            hpc.participant_script(plan(tmp_path, resources=resources))


def test_task_table_maps_index_to_subject_and_session():
    rows = [line.split("\t") for line in hpc.task_table(TASKS).splitlines()]
    assert rows == [
        ["task_id", "subject", "session", "name"],
        ["0", "01", "V01", "sub-01_ses-V01"],
        ["1", "01", "V02", "sub-01_ses-V02"],
        ["2", "02", "n/a", "sub-02"],
    ]


def test_array_header(tmp_path):
    p = plan(tmp_path, resources=Resources(gpus="a100:2", partition="gpu", account="lab"))
    options = sbatch_options(hpc.participant_script(p))
    assert options["--array"] == "0-2"
    assert options["--output"] == f"{p.batch_dir}/logs/%x_%A_%a.out"
    assert options["--gres"] == "gpu:a100:2"
    assert options["--partition"] == "gpu" and options["--account"] == "lab"
    assert options["--job-name"] == "infant-tissue"
    assert options["--cpus-per-task"] == "4" and options["--mem"] == "16G"


def test_array_throttle_and_extra_options(tmp_path):
    resources = Resources(max_running=2, extra=("--qos=long", "--constraint=skylake"))
    script = hpc.participant_script(plan(tmp_path, resources=resources))
    options = sbatch_options(script)
    assert options["--array"] == "0-2%2"
    assert options["--qos"] == "long" and options["--constraint"] == "skylake"
    assert "--gres" not in options  # no GPU asked for
    # every #SBATCH line comes before the first command, or sbatch ignores it
    lines = script.splitlines()
    last_sbatch = max(i for i, line in enumerate(lines) if line.startswith("#SBATCH"))
    first_command = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))
    assert last_sbatch < first_command


def test_container_command_binds_and_cleanenv(tmp_path):
    app = AppOptions(
        models=tmp_path / "models",
        flags=("--skull-stripped", "--inference-mode", "fast"),
    )
    script = hpc.participant_script(plan(tmp_path, app=app))
    assert "singularity exec --nv --cleanenv" in script
    assert f"-B {tmp_path}/bids:/data:ro" in script
    assert f"-B {tmp_path}/out:/out " in script
    assert f"-B {tmp_path}/work:/work " in script
    assert f"-B {tmp_path}/models:/models:ro" in script
    assert f"{tmp_path}/infant-tissue.sif \\\n    infant-tissue /data /out participant" in script
    assert '--participant-label "$subject"' in script
    assert '-w "/work/$name"' in script
    assert "--models /models" in script
    assert "--inference-mode fast" in script and "--skull-stripped" in script
    # threads follow what SLURM gave the task
    assert "ncpus=${SLURM_CPUS_PER_TASK:-8}" in script
    assert '--omp-nthreads "$ncpus"' in script and '--nprocs "$ncpus"' in script
    # --cleanenv drops the host environment; what the app needs is passed explicitly
    assert 'export SINGULARITYENV_PYTHONNOUSERSITE="1"' in script
    assert 'export SINGULARITYENV_TEMPLATEFLOW_AUTOUPDATE="0"' in script


def test_apptainer_runtime_and_templateflow(tmp_path):
    app = AppOptions(templateflow_home=tmp_path / "tf", omp_nthreads=3)
    container = Container(tmp_path / "it.sif", runtime="apptainer", binds=("/scratch:/scratch",))
    script = hpc.participant_script(plan(tmp_path, app=app, container=container))
    assert script.count("apptainer exec --nv --cleanenv") == 1
    assert f"-B {tmp_path}/tf:/templateflow:ro" in script
    assert 'export APPTAINERENV_TEMPLATEFLOW_HOME="/templateflow"' in script
    assert "-B /scratch:/scratch" in script
    assert "--omp-nthreads 3" in script
    assert "SINGULARITYENV_" not in script


def test_no_container_runs_the_executable_by_absolute_path(tmp_path):
    exe = tmp_path / "venv" / "bin" / "infant-tissue"
    app = AppOptions(bids_filter_file=tmp_path / "f.json", templateflow_home=tmp_path / "tf")
    p = plan(tmp_path, container=None, executable=exe, app=app)
    script = hpc.participant_script(p)
    assert f"{exe} {tmp_path}/bids {tmp_path}/out participant" in script
    assert f'-w "{tmp_path}/work/$name"' in script
    assert f"--bids-filter-file {tmp_path}/f.json" in script
    assert f"export TEMPLATEFLOW_HOME={tmp_path}/tf" in script
    assert "singularity" not in script and "-B " not in script
    group = hpc.group_script(p)
    assert f"{exe} {tmp_path}/bids {tmp_path}/out group" in group


def test_no_container_needs_an_absolute_executable(tmp_path):
    with pytest.raises(BatchError, match="absolute"):
        hpc.participant_script(plan(tmp_path, container=None, executable=Path("infant-tissue")))


def test_paths_with_spaces_are_quoted_or_refused(tmp_path):
    spaced = tmp_path / "my data"
    script = hpc.participant_script(plan(tmp_path, bids_dir=spaced / "bids"))
    assert f"-B '{spaced}/bids:/data:ro'" in script
    with pytest.raises(BatchError, match="batch-dir"):
        hpc.participant_script(plan(tmp_path, batch_dir=spaced / "slurm"))


def test_group_job(tmp_path):
    p = plan(tmp_path, app=AppOptions(group_flags=("--skip-bids-validation",)))
    script = hpc.group_script(p)
    options = sbatch_options(script)
    assert "--array" not in options and "--gres" not in options
    assert options["--output"] == f"{p.batch_dir}/logs/%x_%j.out"
    assert options["--job-name"] == "infant-tissue-group" and options["--cpus-per-task"] == "1"
    assert "infant-tissue /data /out group" in script
    assert "--skip-bids-validation" in script


def test_submit_line_uses_afterany(tmp_path):
    line = hpc.submit_line(tmp_path)
    assert line.startswith(f"jid=$(sbatch --parsable {tmp_path}/participant.sbatch) && ")
    assert line.endswith(f"sbatch --dependency=afterany:${{jid%%;*}} {tmp_path}/group.sbatch")


@pytest.mark.parametrize(
    ("output", "job_id"), [("1234\n", "1234"), ("987;cluster-a\n", "987"), ("  42", "42")]
)
def test_parse_job_id(output, job_id):
    assert hpc.parse_job_id(output) == job_id


def test_parse_job_id_refuses_garbage():
    with pytest.raises(BatchError, match="no job id"):
        hpc.parse_job_id("sbatch: error: Batch job submission failed\n")


def test_submit_chains_the_group_job_on_the_array(tmp_path):
    files = hpc.write_batch(plan(tmp_path))
    calls: list[list[str]] = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout=f"{100 + len(calls)};c\n", stderr="")

    assert hpc.submit(files, run=fake_run) == ("101", "102")
    assert calls == [
        ["sbatch", "--parsable", str(files.participant)],
        ["sbatch", "--parsable", "--dependency=afterany:101", str(files.group)],
    ]


def test_submit_reports_sbatch_errors(tmp_path):
    files = hpc.write_batch(plan(tmp_path))

    def refusing(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, stdout="", stderr="sbatch: error: bad\n")

    with pytest.raises(BatchError, match="sbatch: error: bad"):
        hpc.submit(files, run=refusing)
    with pytest.raises(BatchError, match="not found"):
        hpc.submit(files, sbatch=str(tmp_path / "no-sbatch"))


def test_write_batch_layout(tmp_path):
    p = plan(tmp_path)
    files = hpc.write_batch(p)
    assert sorted(x.name for x in p.batch_dir.iterdir()) == [
        "group.sbatch",
        "logs",
        "participant.sbatch",
        "submit.sh",
        "tasks.tsv",
    ]
    assert p.work_dir.is_dir() and p.log_dir.is_dir()
    # the array script pins the task table it was generated with
    digest = hashlib.sha256(files.tasks.read_bytes()).hexdigest()
    assert digest in files.participant.read_text()
    for script in (files.participant, files.group, files.submit):
        subprocess.run(["bash", "-n", str(script)], check=True)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_array_task_reads_its_row(tmp_path):
    """Run the generated script's task-selection part with a stand-in for the app."""
    exe = tmp_path / "fake-infant-tissue"
    exe.write_text('#!/bin/sh\necho "$@" > "$(dirname "$0")/call-$SLURM_ARRAY_TASK_ID"\n')
    exe.chmod(0o755)
    p = plan(tmp_path, container=None, executable=exe)
    files = hpc.write_batch(p)
    env = {"PATH": "/usr/bin:/bin", "SLURM_ARRAY_TASK_ID": "1", "SLURM_CPUS_PER_TASK": "3"}
    subprocess.run(["bash", str(files.participant)], check=True, env=env, capture_output=True)
    call = (tmp_path / "call-1").read_text().split()
    assert call[:3] == [str(p.bids_dir), str(p.output_dir), "participant"]
    assert call[call.index("--participant-label") + 1] == "01"
    assert call[call.index("--session-label") + 1] == "V02"
    assert call[call.index("-w") + 1] == f"{p.work_dir}/sub-01_ses-V02"
    assert call[call.index("--omp-nthreads") + 1] == "3"
    assert (p.work_dir / "sub-01_ses-V02").is_dir()

    env["SLURM_ARRAY_TASK_ID"] = "2"  # no session: no --session-label, and set -u holds
    subprocess.run(["bash", str(files.participant)], check=True, env=env, capture_output=True)
    assert "--session-label" not in (tmp_path / "call-2").read_text()

    env["SLURM_ARRAY_TASK_ID"] = "7"
    missing = subprocess.run(["bash", str(files.participant)], env=env, capture_output=True)
    assert missing.returncode == 2 and b"no task 7" in missing.stderr

    files.tasks.write_text(files.tasks.read_text().replace("V02", "V03"))
    env["SLURM_ARRAY_TASK_ID"] = "1"
    changed = subprocess.run(["bash", str(files.participant)], env=env, capture_output=True)
    assert changed.returncode == 2 and b"changed since" in changed.stderr


def test_failing_app_fails_the_task(tmp_path):
    exe = tmp_path / "failing"
    exe.write_text("#!/bin/sh\nexit 1\n")
    exe.chmod(0o755)
    files = hpc.write_batch(plan(tmp_path, container=None, executable=exe))
    env = {"PATH": "/usr/bin:/bin", "SLURM_ARRAY_TASK_ID": "0"}
    done = subprocess.run(["bash", str(files.participant)], env=env, capture_output=True)
    assert done.returncode == 1
    assert b"sub-01_ses-V01 exit 1 after" in done.stdout
