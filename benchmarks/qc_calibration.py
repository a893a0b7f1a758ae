"""Calibration of the QC verdict on phantoms with known defects (issue 12).

Clean phantom sessions and sessions with each degradation of
:mod:`infant_tissue.phantoms.degrade` at two severities run through the BIDS-App as a lab would
run them (skull-stripped phantoms with cerebellum and brain stem, the packaged demo bundle on
the CPU, faithful mode, phantom brain-volume norms from ``make-phantoms``). The misaligned-T2w
sessions, and two clean controls acquired on the T1w's grid, run with ``--t2w-registered`` (the
T2w declared already aligned, so nothing repairs the shift).

    python benchmarks/qc_calibration.py [--clean 10] [--nprocs 2] [--mode faithful] [--keep DIR]

Prints one row per session (degradation, severity, verdict, mean disagreement, Dice per tissue
against the phantom's truth in the segmented cerebrum, the reasons) and the summary figures of
issue 12: the share of severe cases flagged (warn or fail; goal ≥ 90 %), the share of clean
sessions flagged (goal ≤ 10 %) and the error enrichment of the disagreement map (error rate of
voxels with disagreement ≥ 0.5 over that of the rest, pooled over the sessions; goal ≥ 3×).
Record them in benchmarks/README.md with the machine. ``--metrics-json FILE`` also writes every
session's metrics (to re-tune the thresholds of ``infant_tissue/qc/verdict.py`` offline).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from infant_tissue.phantoms import sample_subject
from infant_tissue.phantoms.degrade import (
    DEGRADATIONS,
    SEVERITIES,
    aligned_acquisition,
    degrade_session,
)
from infant_tissue.phantoms.forms import make_bids_subject
from infant_tissue.phantoms.io import write_bids_sessions
from infant_tissue.phantoms.norms import phantom_norms
from infant_tissue.phantoms.templates import write_templateflow
from infant_tissue.qc import read_session_qc
from infant_tissue.qc.metrics import CONTESTED
from infant_tissue.qc.verdict import verdict
from infant_tissue.utils.templates import mniinfant_cohort

SEED = 4242
TISSUES = {"GM": 1, "WM": 2, "CSF": 3}  # NiPreps dseg codes


def build(root: Path, shape, n_clean: int) -> dict[str, list[dict]]:
    """Write the two datasets (``registration``: normal run; ``registered``: with
    ``--t2w-registered``) and return what each session is."""
    plans: dict[str, list[tuple]] = {"registration": [], "registered": []}
    index = 0
    for _ in range(n_clean):
        plans["registration"].append((index, "clean", "none"))
        index += 1
    for _ in range(2):
        plans["registered"].append((index, "aligned", "none"))
        index += 1
    for name in DEGRADATIONS:
        for severity in SEVERITIES:
            run = "registered" if name == "misaligned_t2w" else "registration"
            plans[run].append((index, name, severity))
            index += 1
    cases: dict[str, list[dict]] = {}
    ages: set[float] = set()
    for run, plan in plans.items():
        sessions, described = [], []
        for i, name, severity in plan:
            subject = sample_subject(SEED, i, shape)
            if name == "aligned":
                # the T2w acquired on the T1w's grid without motion: correctly "registered"
                volumes = make_bids_subject(aligned_acquisition(subject), skull_stripped=True)
                sessions.append((subject, volumes, None))
                stated = subject.age_months
            else:
                session = degrade_session(subject, name, severity)
                sessions.append((subject, session.volumes, session.stated_age_months))
                stated = session.stated_age_months
            ages.add(stated)
            described.append(
                {"subject": subject.participant, "degradation": name, "severity": severity}
            )
        write_bids_sessions(root / run / "bids", sessions)
        cases[run] = described
    cohorts = sorted({mniinfant_cohort(a) for a in ages})
    write_templateflow(root / "templateflow", cohorts, seed=SEED + 77, shape=shape)
    phantom_norms(shape, seed=SEED).write(root / "qc_norms.tsv")
    return cases


def run_app(root: Path, run: str, args) -> float:
    env = {**os.environ, "TEMPLATEFLOW_HOME": str(root / "templateflow")}
    cmd = [
        sys.executable, "-m", "infant_tissue.cli.main",
        str(root / run / "bids"), str(root / run / "out"), "participant",
        "--skull-stripped", "--qc-norms", str(root / "qc_norms.tsv"),
        "--device", "cpu", "--nprocs", str(args.nprocs), "--omp-nthreads", "1",
        "--inference-mode", args.mode, "--no-reports", "-w", str(root / run / "work"),
    ]  # fmt: skip
    if run == "registered":
        cmd.append("--t2w-registered")
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode not in (0, 1):
        raise SystemExit(f"{run}: the app failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def _anat(out: Path, sub: str) -> Path:
    return out / f"sub-{sub}" / "ses-01" / "anat"


def score(root: Path, run: str, case: dict) -> dict:
    """Verdict, metrics, Dice and voxel error counts by disagreement of one session."""
    sub, prefix = case["subject"], f"sub-{case['subject']}_ses-01"
    anat = _anat(root / run / "out", sub)
    truth_dir = _anat(root / run / "bids" / "derivatives" / "manual", sub)
    qc_file = anat / f"{prefix}_desc-tissue_qc.json"
    if not qc_file.is_file():
        return {**case, "verdict": "crashed", "reasons": ["the session did not finish"]}
    qc = read_session_qc(qc_file)
    # judged again with the rules as they are now: the verdict is a pure function of the
    # metrics, so thresholds can be tuned on a finished run (--reuse)
    qc.verdict, qc.reasons = verdict(qc.metrics)
    pred = np.asanyarray(nib.load(anat / f"{prefix}_space-T1w_dseg.nii.gz").dataobj)
    truth = np.asanyarray(nib.load(truth_dir / f"{prefix}_desc-manual_dseg.nii.gz").dataobj)
    hindbrain = np.asanyarray(
        nib.load(truth_dir / f"{prefix}_desc-cerebellumbrainstem_mask.nii.gz").dataobj
    )
    truth = np.where(hindbrain > 0, 0, truth)  # the product segments the cerebrum
    dice = {}
    for tissue, code in TISSUES.items():
        a, b = pred == code, truth == code
        dice[tissue] = float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))
    brain = np.asanyarray(nib.load(anat / f"{prefix}_space-T1w_desc-brain_mask.nii.gz").dataobj)
    removed = anat / f"{prefix}_space-T1w_desc-cerebellumbrainstem_mask.nii.gz"
    segmented = brain > 0
    if removed.is_file():
        segmented &= np.asanyarray(nib.load(removed).dataobj) == 0
    counts = {"contested": [0, 0], "rest": [0, 0]}  # [errors, voxels]
    maps = anat / f"{prefix}_space-T1w_desc-disagreement_probseg.nii.gz"
    if maps.is_file():
        disagreement = np.asanyarray(nib.load(maps).dataobj)[segmented]
        errors = (pred != truth)[segmented]
        high = disagreement >= CONTESTED - 1e-6
        counts["contested"] = [int(errors[high].sum()), int(high.sum())]
        counts["rest"] = [int(errors[~high].sum()), int((~high).sum())]
    return {
        **case,
        "run": run,
        "verdict": qc.verdict,
        "reasons": qc.reasons,
        "metrics": qc.metrics,
        "dice": dice,
        "errors": counts,
    }


def _rate(pair) -> float:
    return pair[0] / pair[1] if pair[1] else float("nan")


def summary(rows: list[dict]) -> dict:
    flagged = [r for r in rows if r["verdict"] in ("warn", "fail")]
    severe = [r for r in rows if r["severity"] == "severe"]
    clean = [r for r in rows if r["degradation"] in ("clean", "aligned")]

    def pool(subset: list[dict]) -> dict[str, np.ndarray]:
        total = {"contested": np.zeros(2), "rest": np.zeros(2)}
        for r in subset:
            for key in total:
                total[key] += r.get("errors", {}).get(key, (0, 0))
        return total

    pooled, clean_pooled = pool(rows), pool(clean)
    return {
        "severe_flagged": sum(r in flagged for r in severe) / max(len(severe), 1),
        "clean_flagged": sum(r in flagged for r in clean) / max(len(clean), 1),
        "enrichment_all": _rate(pooled["contested"]) / _rate(pooled["rest"]),
        "enrichment_clean": _rate(clean_pooled["contested"]) / _rate(clean_pooled["rest"]),
        "contested_share_all": pooled["contested"][1]
        / max(pooled["contested"][1] + pooled["rest"][1], 1),
        "n_severe": len(severe),
        "n_clean": len(clean),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clean", type=int, default=10, help="clean sessions (default 10)")
    p.add_argument("--nprocs", type=int, default=os.cpu_count() or 2)
    p.add_argument("--shape", type=int, nargs=3, default=(64, 72, 64))
    p.add_argument("--mode", default="faithful", help="inference mode (default: faithful)")
    p.add_argument("--keep", type=Path, help="keep the datasets and runs in this folder")
    p.add_argument("--reuse", action="store_true", help="score the runs already in --keep")
    p.add_argument("--metrics-json", type=Path, help="write every session's results here")
    args = p.parse_args()

    root = Path(args.keep or tempfile.mkdtemp(prefix="infant-tissue-qc-"))
    started = time.perf_counter()
    if args.reuse:
        cases = json.loads((root / "cases.json").read_text())
    else:
        for sub in ("registration", "registered", "templateflow"):
            shutil.rmtree(root / sub, ignore_errors=True)
        cases = build(root, args.shape, args.clean)
        (root / "cases.json").write_text(json.dumps(cases))
        for run in cases:
            seconds = run_app(root, run, args)
            print(f"{run}: {len(cases[run])} sessions in {seconds:.0f} s", flush=True)
    rows = [score(root, run, case) for run in cases for case in cases[run]]
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"mode {args.mode}; {time.perf_counter() - started:.0f} s in all")  # fmt: skip
    print(f"{'degradation':<15} {'severity':<8} {'verdict':<8} {'disagr.':>7} "
          f"{'GM':>5} {'WM':>5} {'CSF':>5}  reasons")  # fmt: skip
    for r in rows:
        m, d = r.get("metrics", {}), r.get("dice", {})
        dis = m.get("disagreement_mean")
        print(
            f"{r['degradation']:<15} {r['severity']:<8} {r['verdict']:<8} "
            f"{'n/a' if dis is None else f'{dis:.3f}':>7} "
            + " ".join(f"{d.get(t, float('nan')):5.2f}" for t in TISSUES)
            + "  " + " | ".join(x for x in r["reasons"] if not x.startswith("note"))
        )  # fmt: skip
    s = summary(rows)
    print(
        f"\nsevere cases flagged: {s['severe_flagged']:.0%} of {s['n_severe']} (goal >= 90%)\n"
        f"clean sessions flagged: {s['clean_flagged']:.0%} of {s['n_clean']} (goal <= 10%)\n"
        f"error enrichment of disagreement >= {CONTESTED}: {s['enrichment_all']:.1f}x over all "
        f"sessions, {s['enrichment_clean']:.1f}x over the clean ones (goal >= 3x); "
        f"contested voxels: {s['contested_share_all']:.1%} of the segmented brain"
    )
    if args.metrics_json:
        args.metrics_json.write_text(json.dumps({"rows": rows, "summary": s}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
