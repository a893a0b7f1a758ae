"""Sessions per hour of the participant level: sessions one after another vs all in one graph.

N phantom sessions (skull-stripped, with cerebellum and brain stem, so every preprocessing
stage runs, the removal included) are processed twice with the same options and the packaged
demo bundle on the CPU:

* **serial**: one ``infant-tissue ... participant --participant-label X`` per session, one after
  the other (what the participant level did before sessions ran concurrently; each run still
  uses MultiProc with ``--nprocs`` inside its session);
* **concurrent**: one run over all sessions (one nipype graph: the preprocessing of one session
  overlaps the segmentation of another).

    python benchmarks/throughput.py [--sessions 4] [--nprocs 2] [--shape 64 72 64]

Prints the wall time and sessions/hour of each, and their ratio; record them in
benchmarks/README.md with the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "infant_tissue.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode != 0:
        raise SystemExit(f"run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=4)
    p.add_argument("--nprocs", type=int, default=os.cpu_count() or 2)
    p.add_argument("--omp-nthreads", type=int, default=1)
    p.add_argument("--shape", type=int, nargs=3, default=(64, 72, 64))
    p.add_argument("--mode", default="fast", help="inference mode (default: fast)")
    p.add_argument("--keep", type=Path, help="keep the runs in this folder")
    args = p.parse_args()

    tmp = Path(args.keep or tempfile.mkdtemp(prefix="infant-tissue-throughput-"))
    bids, home = tmp / "bids", tmp / "templateflow"
    shutil.rmtree(tmp / "serial", ignore_errors=True)
    shutil.rmtree(tmp / "concurrent", ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "infant_tissue.cli.main", "make-phantoms", str(bids),
         "--n-subjects", str(args.sessions), "--seed", "31", "--shape", *map(str, args.shape),
         "--skull-stripped", "--overwrite", "--templateflow", str(home)],
        check=True, capture_output=True,
    )  # fmt: skip
    env = {**os.environ, "TEMPLATEFLOW_HOME": str(home)}
    common = ["participant", "--skull-stripped", "--device", "cpu", "--no-reports",
              "--inference-mode", args.mode, "--nprocs", str(args.nprocs),
              "--omp-nthreads", str(args.omp_nthreads)]  # fmt: skip
    labels = [f"{i + 1:02d}" for i in range(args.sessions)]

    serial = 0.0
    for label in labels:
        serial += run(
            [str(bids), str(tmp / "serial"), *common, "--participant-label", label,
             "-w", str(tmp / "work-serial")],
            env,
        )  # fmt: skip
    concurrent = run(
        [str(bids), str(tmp / "concurrent"), *common, "-w", str(tmp / "work-conc")], env
    )

    n = args.sessions
    rows = [("serial", serial), ("concurrent", concurrent)]
    print(
        f"{n} phantom sessions {'x'.join(map(str, args.shape))} (skull-stripped, cerebellum "
        f"removed), demo bundle, mode {args.mode}, --nprocs {args.nprocs} --omp-nthreads "
        f"{args.omp_nthreads}, CPU: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs"
    )
    for name, seconds in rows:
        print(f"  {name:<11} {seconds:7.1f} s   {3600 * n / seconds:6.1f} sessions/hour")
    print(f"  concurrent / serial throughput: {serial / concurrent:.2f}x")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
