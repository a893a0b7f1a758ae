"""Per-stage preprocessing time and peak memory on the real 6-month template pair.

Runs the participant level's preprocessing steps (the pure functions the nipype nodes wrap) in
order on ``shared/real-infant/templates-6mo`` (0.8 mm, 320³, skull-stripped, oblique affine) as a
``--skull-stripped`` session with the cerebellum + brain-stem removal: validation and RAS
reorientation, rigid T2w registration, brain mask, N4 on both images, the removal (the template's
T2w registered to the subject, the mask warped and split), resampling to the 1 mm model grid. The
template is the real pair itself (a TemplateFlow home is built the way the image build does:
mask derived from the packaged adult labels; that build-time step is timed too but is not part of
a session). Peak memory is the process's maximum resident set size after each stage.

    python benchmarks/preprocessing.py [--threads 2] [--out build/benchmarks/preprocessing]

Prints a table; the figures go into benchmarks/README.md. Target: all preprocessing of one
session ≤ 5 min on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT.parent / "shared" / "real-infant" / "templates-6mo"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "build" / "benchmarks" / "preprocessing")
    p.add_argument("--derive-mm", type=float, default=2.0, help="build-time derivation voxel size")
    args = p.parse_args()
    if not REAL.is_dir():
        raise SystemExit(f"{REAL}: the real template pair is not here")
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import nibabel as nib
    import numpy as np

    from infant_tissue.anat import cerebellum as cb
    from infant_tissue.anat import grid
    from infant_tissue.anat import preprocessing as pp

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    f = lambda name: str(out / name)  # noqa: E731
    t1w, t2w = str(REAL / "Template-Month6-T1w.nii.gz"), str(REAL / "Template-Month6-T2w.nii.gz")
    stages: list[tuple[str, float, float]] = []

    def stage(name, call):
        start = time.perf_counter()
        result = call()
        stages.append((name, time.perf_counter() - start, peak_mb()))
        print(f"{name:<34} {stages[-1][1]:7.1f} s   peak {stages[-1][2]:7.0f} MB", flush=True)
        return result

    # build time (once per cohort, in the image build): the template's removal mask
    img = nib.load(t1w)
    nib.save(
        nib.Nifti1Image((np.asanyarray(img.dataobj) > 0).astype(np.uint8), img.affine),
        f("tpl_brain_mask.nii.gz"),
    )
    problems = stage(
        "build: derive template mask",
        lambda: cb.derive_template_mask(
            t2w,
            f("tpl_brain_mask.nii.gz"),
            f("tpl_region.nii.gz"),
            work_dir=f("derive"),
            resolution_mm=args.derive_mm,
        ),
    )
    build = len(stages)
    # one session
    stage("validate + reorient T1w", lambda: pp.reorient_to_ras(t1w, f("t1w_ras.nii.gz"), "T1w"))
    stage("validate + reorient T2w", lambda: pp.reorient_to_ras(t2w, f("t2w_ras.nii.gz"), "T2w"))
    stage(
        "register T2w to T1w (rigid)",
        lambda: pp.register_rigid(
            f("t1w_ras.nii.gz"), f("t2w_ras.nii.gz"), f("t2w_in_t1w.nii.gz"), f("t2w.mat")
        ),
    )
    stage(
        "brain mask (skull-stripped)",
        lambda: pp.mask_from_skull_stripped(f("t1w_ras.nii.gz"), f("mask.nii.gz")),
    )
    stage(
        "N4 T1w", lambda: pp.n4_correct(f("t1w_ras.nii.gz"), f("mask.nii.gz"), f("t1w_n4.nii.gz"))
    )
    stage(
        "N4 T2w",
        lambda: pp.n4_correct(f("t2w_in_t1w.nii.gz"), f("mask.nii.gz"), f("t2w_n4.nii.gz")),
    )
    transforms = stage(
        "removal: register template T2w",
        lambda: cb.register_template(
            f("t2w_in_t1w.nii.gz"), f("mask.nii.gz"), t2w, f("tpl_brain_mask.nii.gz"), f("xfm_")
        ),
    )
    stage(
        "removal: warp + split",
        lambda: (
            cb.warp_to_subject(
                f("tpl_region.nii.gz"), f("t1w_ras.nii.gz"), transforms, f("w.nii.gz")
            ),
            cb.split_brain(
                f("mask.nii.gz"), f("w.nii.gz"), f("removed.nii.gz"), f("cerebrum.nii.gz")
            ),
        ),
    )
    stage(
        "resample to the 1 mm model grid",
        lambda: grid.resample_to_model_grid(
            f("t1w_n4.nii.gz"),
            f("t2w_n4.nii.gz"),
            f("cerebrum.nii.gz"),
            f("t1w_model.nii.gz"),
            f("t2w_model.nii.gz"),
            f("mask_model.nii.gz"),
        ),
    )
    removed = np.asanyarray(nib.load(f("removed.nii.gz")).dataobj) > 0
    brain = np.asanyarray(nib.load(f("mask.nii.gz")).dataobj) > 0
    session = stages[build:]
    total = sum(s[1] for s in session)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "threads": args.threads,
        "stages": [{"stage": n, "seconds": round(s, 1), "peak_mb": round(m)} for n, s, m in stages],
        "session_total_seconds": round(total, 1),
        "peak_mb": round(max(s[2] for s in stages)),
        "template_mask_problems": problems,
        "session_removed_share": round(float(removed.sum() / brain.sum()), 4),
        "session_removal_problems": cb.check_removed_region(
            removed, brain, nib.load(f("mask.nii.gz")).affine
        ),
    }
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"session preprocessing total {total:.1f} s (target <= 300 s); peak {result['peak_mb']} MB"
    )
    print(json.dumps({k: v for k, v in result.items() if k != "stages"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
