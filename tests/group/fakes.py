"""Fake participant-level outputs for the group-level tests.

One long-format volume table and JSON sidecar per session, QC records, crash files for failed
sessions, and a TSV reader for the group tables; shared by the tests of the readers and of the
whole run.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

VOXEL_MM3 = 0.512  # 0.8 mm isotropic, the Baby Connectome Project resolution


def _prefix(sub: str, ses: str | None) -> str:
    return f"sub-{sub}" + (f"_ses-{ses}" if ses else "")


def _anat(root: Path, sub: str, ses: str | None) -> Path:
    return root / f"sub-{sub}" / (f"ses-{ses}" if ses else "") / "anat"


def voxels_for_age(age: float, seed: int) -> dict[str, int]:
    """Plausible voxel counts (0.8 mm voxels) growing with age at tissue-specific rates."""
    wobble = 1.0 + 0.02 * np.sin(seed)  # small, deterministic between-subject variation
    mm3 = {
        "GM": (380_000 + 15_000 * age) * wobble,
        "WM": (250_000 + 8_000 * age) / wobble,
        "CSF": 70_000 + 2_000 * age + 1_000 * seed,
    }
    return {t: round(v / VOXEL_MM3) for t, v in mm3.items()}


def volume_table(voxels: dict[str, int], pv_factor: float = 0.99) -> str:
    """The participant level's long-format table for given voxel counts."""
    rows = ["tissue\tlabel\tvoxels\tvolume_mm3\tvolume_pv_mm3"]
    total_vox, total_vol, total_pv = 0, 0.0, 0.0
    for tissue, label in (("GM", 1), ("WM", 2), ("CSF", 3)):
        vol = voxels[tissue] * VOXEL_MM3
        pv = round(vol * pv_factor, 3)
        rows.append(f"{tissue}\t{label}\t{voxels[tissue]}\t{vol:.3f}\t{pv:.3f}")
        total_vox, total_vol, total_pv = total_vox + voxels[tissue], total_vol + vol, total_pv + pv
    rows.append(f"brain\tn/a\t{total_vox}\t{total_vol:.3f}\t{total_pv:.3f}")
    return "\n".join(rows) + "\n"


def write_session(
    root: Path,
    sub: str,
    ses: str | None,
    age: float | None,
    voxels: dict[str, int],
    *,
    table: str | None = None,
    report: bool = False,
) -> Path:
    anat = _anat(root, sub, ses)
    anat.mkdir(parents=True, exist_ok=True)
    stem = anat / f"{_prefix(sub, ses)}_desc-tissue_volumes"
    stem.with_suffix(".tsv").write_text(volume_table(voxels) if table is None else table)
    sidecar = {
        "Subject": sub,
        "Session": ses,
        "AgeMonths": age,
        "AgeSource": "sessions.tsv:age" if age is not None else "unknown",
        "ModelBundle": "tiny-test",
        "InferenceMode": "faithful",
        "tissue": {"Description": "tissue name"},
    }
    stem.with_suffix(".json").write_text(json.dumps(sidecar))
    (anat / f"{_prefix(sub, ses)}_space-T1w_dseg.nii.gz").write_bytes(b"fake")
    if report:
        (root / f"{_prefix(sub, ses)}.html").write_text("<html></html>")
    return stem.with_suffix(".tsv")


def write_crash(root: Path, sub: str, ses: str | None, line: str) -> Path:
    log = root / f"sub-{sub}" / "log"
    log.mkdir(parents=True, exist_ok=True)
    path = log / f"crash-{ses or 'nosession'}-20240101T120000.txt"
    path.write_text(f"{line}\nTraceback (most recent call last):\n  ...\n")
    return path


def read_tsv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as fobj:
        reader = csv.DictReader(fobj, delimiter="\t")
        return list(reader.fieldnames or []), list(reader)


def num(text: str) -> float | None:
    return None if text == "n/a" else float(text)


def write_qc(
    root: Path,
    sub: str,
    ses: str | None,
    verdict: str,
    reasons: list[str] | None = None,
    metrics: dict[str, float | None] | None = None,
    thresholds: dict | None = None,
) -> Path:
    """A session's ``*_desc-tissue_qc.json`` as the participant level writes it
    (:meth:`infant_tissue.qc.SessionQC.to_json`)."""
    from infant_tissue.qc import SessionQC

    record = SessionQC(
        verdict,
        list(reasons or []),
        dict(metrics or {}),
        thresholds or {},
        {"Subject": sub, "Session": ses, "Members": 3, "InferenceMode": "faithful"},
    )
    path = _anat(root, sub, ses) / f"{_prefix(sub, ses)}_desc-tissue_qc.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record.to_json(), indent=2))
    return path
