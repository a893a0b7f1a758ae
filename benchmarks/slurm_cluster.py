"""Throughput of ``infant-tissue batch --submit`` on the local one-node SLURM cluster.

Starts the cluster (containers/slurm/start-local-cluster.sh; ``--cold`` stops and purges it
first, to time a fresh start), writes N phantom subjects, submits the array and group jobs with
the installed infant-tissue (no container) and prints: cluster start time, each task's time
from its log, the wall time from submission to the end of the group job, and participants per
hour. Needs root and Debian's slurm-wlm and munge.

    sudo .venv/bin/python benchmarks/slurm_cluster.py --n-subjects 4 --shape 64 72 64
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "containers" / "slurm"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def start_cluster(cold: bool) -> tuple[str, float]:
    if cold:
        subprocess.run(["bash", str(CLUSTER / "stop-local-cluster.sh"), "--purge"], check=True)
    started = time.monotonic()
    out = subprocess.run(
        ["bash", str(CLUSTER / "start-local-cluster.sh")], capture_output=True, text=True
    )
    if out.returncode != 0:
        sys.exit(out.stderr.strip())
    conf = re.search(r"^SLURM_CONF=(.+)$", out.stdout, re.MULTILINE).group(1)
    return conf, time.monotonic() - started


def wait_for(job_ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queued = subprocess.run(
            ["squeue", "-h", "-j", ",".join(job_ids)], capture_output=True, text=True
        ).stdout.strip()
        if not queued:
            return
        time.sleep(1)
    sys.exit(f"jobs {job_ids} still queued after {timeout:.0f} s")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-subjects", type=int, default=2)
    p.add_argument("--shape", type=int, nargs=3, default=(32, 40, 32))
    p.add_argument("--cpus-per-task", type=int, default=1)
    p.add_argument("--inference-mode", default="fast")
    p.add_argument("--cold", action="store_true", help="stop and purge the cluster first")
    p.add_argument("--timeout", type=float, default=1800)
    args = p.parse_args()

    conf, start_s = start_cluster(args.cold)
    os.environ["SLURM_CONF"] = conf
    exe = Path(sys.executable).with_name("infant-tissue")
    with tempfile.TemporaryDirectory(prefix="slurm-bench-") as tmp:
        root = Path(tmp)
        bids, out = root / "bids", root / "out"
        shape = [str(n) for n in args.shape]
        subprocess.run(
            [str(exe), "make-phantoms", str(bids), "--n-subjects", str(args.n_subjects)]
            + ["--seed", "7", "--shape", *shape, "--skull-stripped"],
            check=True,
            capture_output=True,
        )
        load_before = os.getloadavg()[0]
        submitted = time.monotonic()
        done = subprocess.run(
            [str(exe), "batch", str(bids), str(out), "-w", str(root / "work"), "--submit"]
            + ["--cpus-per-task", str(args.cpus_per_task), "--mem", "2G", "--group-mem", "1G"]
            + ["--skull-stripped", "--device", "cpu", "--inference-mode", args.inference_mode],
            capture_output=True,
            text=True,
            check=True,
        )
        array_id = re.search(r"submitted array job (\d+)", done.stdout).group(1)
        group_id = re.search(r"submitted group job (\d+)", done.stdout).group(1)
        wait_for([array_id, group_id], args.timeout)
        wall = time.monotonic() - submitted
        logs = out / "code" / "slurm" / "logs"
        tasks = []
        for log in sorted(logs.glob(f"infant-tissue_{array_id}_*.out")):
            found = re.search(r"exit (\d+) after (\d+) s", log.read_text())
            tasks.append((int(found.group(1)), int(found.group(2))) if found else (-1, -1))
        group_ok = (out / "group" / "tissue_volumes.tsv").is_file()

    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"cluster start: {start_s:.1f} s ({'cold' if args.cold else 'warm'})")
    print(
        f"{args.n_subjects} sessions of {'x'.join(shape)} voxels, {args.cpus_per_task} CPU(s) "
        f"per task, {args.inference_mode} mode, load average before {load_before:.1f}"
    )
    print("task (exit, seconds): " + ", ".join(f"{t[0]}/{t[1]}" for t in tasks))
    print(f"submission -> group job done: {wall:.0f} s; group table written: {group_ok}")
    print(f"throughput: {args.n_subjects * 3600 / wall:.0f} participants/hour")
    return 0 if group_ok and all(t[0] == 0 for t in tasks) else 1


if __name__ == "__main__":
    sys.exit(main())
