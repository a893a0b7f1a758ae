"""The group level's age model against the cohort-wide robust z, on seeded phantom cohorts.

Each cohort: ``n - 1`` phantom infants at ages evenly spread over 3-12 months (the head scales
with :func:`infant_tissue.qc.norms.growth`) and one more at the median age whose label map loses
every second gray-matter voxel. Volumes are counted on the truth label maps, as the
participant level counts them on its own. For each method the script prints, over the cohorts:
how often the halved GM volume is flagged (|z| > 3.5); how often the youngest or the oldest
session is flagged in any measure; how often any normal session is flagged in any of the 7
measures (3 volumes, brain, 3 fractions).

    python benchmarks/group_age_model.py [--cohorts 20] [--sizes 14 26]

CPU only, about 1-3 minutes on two cores (48x56x48 phantoms).
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np

from infant_tissue.group.outliers import score_outliers
from infant_tissue.group.read import SessionVolumes
from infant_tissue.phantoms import make_iseg_subject, sample_subject

SHAPE = (48, 56, 48)
GM, TISSUES = 2, {"CSF": 1, "GM": 2, "WM": 3}  # model coding


def cohort(seed: int, n: int) -> list[SessionVolumes]:
    """``n - 1`` normal sessions over 3-12 months, then the planted one at the median age."""
    ages = [*np.linspace(3.0, 12.0, n - 1), None]
    ages[-1] = float(np.median(ages[:-1]))
    records = []
    for index, age in enumerate(ages):
        labels = make_iseg_subject(sample_subject(seed, index, SHAPE, age_months=age)).labels
        labels = labels.copy()
        if index == n - 1:
            gm = np.flatnonzero(labels == GM)
            labels.flat[gm[::2]] = 0
        voxels = {t: int((labels == k).sum()) for t, k in TISSUES.items()}
        voxels["brain"] = sum(voxels.values())
        vol = {t: float(v) for t, v in voxels.items()}  # 1 mm voxels
        records.append(
            SessionVolumes(f"{index + 1:02d}", None, voxels, vol, dict.fromkeys(vol), age)
        )
    return records


def tally(records: list[SessionVolumes]) -> dict[str, dict[str, bool]]:
    """Per method: planted GM flagged, an extreme flagged, any normal flagged."""
    scores = score_outliers(records)
    planted, youngest, oldest = records[-1].subject, records[0].subject, records[-2].subject
    out = {}
    for method, key in (("age model", "z"), ("cohort z", "robust_z")):
        flags = {
            (r["subject"], r["measure"])
            for r in scores.rows
            if r[key] is not None and abs(r[key]) > 3.5
        }
        out[method] = {
            "planted": (planted, "gm_mm3") in flags,
            "extreme": any(s in (youngest, oldest) for s, _ in flags),
            "normal": any(s != planted for s, _ in flags),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cohorts", type=int, default=20)
    parser.add_argument("--sizes", type=int, nargs="+", default=[14, 26])
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    for n in args.sizes:
        started = time.perf_counter()
        counts = {m: {"planted": 0, "extreme": 0, "normal": 0} for m in ("age model", "cohort z")}
        for seed in range(1, args.cohorts + 1):
            for method, got in tally(cohort(seed, n)).items():
                for what, hit in got.items():
                    counts[method][what] += hit
        took = time.perf_counter() - started
        print(f"\n{args.cohorts} cohorts of {n} sessions (3-12 months), {took:.0f} s")
        print("method     | halved GM flagged | youngest/oldest flagged | any normal flagged")
        for method, c in counts.items():
            print(
                f"{method:10} | {c['planted']:>10}/{args.cohorts:<6} | "
                f"{c['extreme']:>15}/{args.cohorts:<7} | {c['normal']:>10}/{args.cohorts}"
            )


if __name__ == "__main__":
    main()
