"""Labelled training subjects from BIDS: raw T1w/T2w plus a derivatives folder of manual
``dseg`` label maps with their lookup table (``dseg.tsv``).

Each session is brought to what inference feeds the network: the T2w on the T1w's grid (rigidly
registered with ANTs, as the BIDS-App does, when it is stored on another grid), then a 1 mm RAS
grid around the labelled brain, skull-stripped to it and z-scored.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterable
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.processing import resample_from_to

from ..anat.grid import model_grid
from .data import Subject, zscore_nonzero

LOGGER = logging.getLogger("infant_tissue.training")

#: lookup-table names (lower case, as written by common tools) -> model class
TISSUE_NAMES: dict[str, int] = {
    "background": 0,
    "bg": 0,
    "csf": 1,
    "cerebrospinal fluid": 1,
    "cerebrospinal-fluid": 1,
    "gm": 2,
    "gray matter": 2,
    "grey matter": 2,
    "gray-matter": 2,
    "cortical gray matter": 2,
    "wm": 3,
    "white matter": 3,
    "white-matter": 3,
}
_DESC = re.compile(r"_desc-([A-Za-z0-9]+)_")


def read_lookup_table(path: str | Path) -> dict[int, int]:
    """A BIDS ``dseg.tsv`` (``index``, ``name`` and/or ``abbreviation``) as ``{index: class}``.

    Raises ValueError naming the file and the rows it cannot place: training on a label whose
    meaning was guessed would teach the network the wrong tissue.
    """
    path = Path(path)
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if not rows or "index" not in rows[0]:
        raise ValueError(f"{path}: not a dseg lookup table (needs an 'index' column)")
    mapping: dict[int, int] = {0: 0}
    unknown = []
    for row in rows:
        names = [(row.get(k) or "").strip().lower() for k in ("abbreviation", "name")]
        cls = next((TISSUE_NAMES[n] for n in names if n in TISSUE_NAMES), None)
        if cls is None:
            unknown.append(f"{row['index']} {row.get('name') or row.get('abbreviation')}")
            continue
        mapping[int(row["index"])] = cls
    if unknown:
        raise ValueError(
            f"{path}: labels not known as CSF, GM, WM or background: {', '.join(unknown)}"
        )
    if sorted(set(mapping.values()) - {0}) != [1, 2, 3]:
        raise ValueError(f"{path}: needs one row each for CSF, GM and WM")
    return mapping


def find_lookup_table(dseg_file: Path, derivatives: Path) -> Path:
    """The lookup table of ``dseg_file``: ``<same name>.tsv`` beside it, else the nearest
    ``[desc-<label>_]dseg.tsv`` up to the derivatives root (BIDS inheritance)."""
    own = dseg_file.with_name(dseg_file.name.split(".")[0] + ".tsv")
    if own.is_file():
        return own
    desc = _DESC.search("_" + dseg_file.name)
    names = ([f"desc-{desc.group(1)}_dseg.tsv"] if desc else []) + ["dseg.tsv"]
    folder = dseg_file.parent
    root = derivatives.resolve()
    while True:
        for name in names:
            if (folder / name).is_file():
                return folder / name
        if folder.resolve() == root or folder.parent == folder:
            break
        folder = folder.parent
    raise FileNotFoundError(f"{dseg_file}: no lookup table ({' or '.join(names)}) found")


def find_dseg(derivatives: Path, subject: str, session: str | None, desc: str | None) -> Path:
    """The session's one ``*_dseg.nii[.gz]`` (``desc`` picks among several)."""
    anat = derivatives / f"sub-{subject}"
    if session:
        anat = anat / f"ses-{session}"
    anat = anat / "anat"
    prefix = f"sub-{subject}" + (f"_ses-{session}" if session else "")
    found = sorted(
        p
        for p in (anat.glob(f"{prefix}_*dseg.nii*") if anat.is_dir() else [])
        if desc is None or f"_desc-{desc}_" in p.name
    )
    if not found:
        raise FileNotFoundError(f"{anat}: no {prefix}_*dseg.nii[.gz] label map")
    if len(found) > 1:
        raise ValueError(
            f"{anat}: {len(found)} dseg files ({', '.join(p.name for p in found)}); "
            "pick one with --dseg-desc"
        )
    return found[0]


def _t2w_on_t1w_grid(t1w_file: Path, t2w_file: Path) -> nib.Nifti1Image:
    import tempfile

    from ..anat.preprocessing import register_rigid

    LOGGER.info("%s: not on the T1w's grid; registering it rigidly (ANTs)", t2w_file.name)
    with tempfile.TemporaryDirectory(prefix="infant-tissue-t2w-") as tmp:
        out = Path(tmp) / "t2w.nii.gz"
        register_rigid(str(t1w_file), str(t2w_file), str(out), str(Path(tmp) / "t2w.mat"))
        img = nib.load(str(out))
        return nib.Nifti1Image(np.asanyarray(img.dataobj).astype(np.float32), img.affine)


def load_bids_subject(
    name: str, t1w_file: Path, t2w_file: Path, dseg_file: Path, mapping: dict[int, int]
) -> Subject:
    """One session on the model grid (see the module docstring)."""
    from ..utils.images import load_image, same_grid

    t1_img = load_image(t1w_file, kind="T1w")
    t2_img = load_image(t2w_file, kind="T2w")
    if not same_grid(t1_img, t2_img):
        t2_img = _t2w_on_t1w_grid(t1w_file, t2w_file)
    label_img = nib.load(str(dseg_file))
    raw = np.asanyarray(label_img.dataobj)
    if raw.shape != t1_img.shape[:3] or not np.allclose(label_img.affine, t1_img.affine, atol=1e-3):
        raise ValueError(f"{dseg_file}: not on the T1w's grid ({t1w_file.name})")
    values = set(np.unique(raw).astype(int).tolist())
    if values - set(mapping):
        raise ValueError(
            f"{dseg_file}: label values {sorted(values - set(mapping))} are not in its lookup table"
        )
    lut = np.zeros(max(mapping) + 1, np.uint8)
    for index, cls in mapping.items():
        lut[index] = cls
    model_labels = nib.Nifti1Image(lut[raw.astype(np.int64)], label_img.affine)
    target = model_grid(model_labels)
    label = np.asanyarray(resample_from_to(model_labels, target, order=0).dataobj).astype(np.uint8)
    brain = label > 0
    channels = []
    for img in (t1_img, t2_img):
        data = np.asanyarray(resample_from_to(img, target, order=1).dataobj).astype(np.float32)
        # skull-stripped to the labelled brain, strictly positive inside (the z-score's support)
        data = np.where(brain, np.maximum(data, 1e-3 * max(float(data.max()), 1e-6)), 0)
        channels.append(zscore_nonzero(data, str(img.get_filename() or "image")))
    return Subject(name, np.stack(channels).astype(np.float32), label, brain)


def load_bids_subjects(
    bids_dir: str | Path,
    derivatives: str | Path,
    *,
    participant_labels: Iterable[str] | None = None,
    dseg_desc: str | None = None,
) -> dict[str, Subject]:
    """Every session of ``bids_dir`` with a T1w, a T2w and a labelled dseg in ``derivatives``,
    keyed ``sub-X[_ses-Y]``; a session without labels is skipped with a log line, a broken one
    raises naming its file."""
    from ..utils.bids import collect_sessions

    bids_dir, derivatives = Path(bids_dir), Path(derivatives)
    subjects: dict[str, Subject] = {}
    for unit in collect_sessions(bids_dir, participant_labels):
        name = f"sub-{unit.subject}" + (f"_ses-{unit.session}" if unit.session else "")
        if unit.t1w is None or unit.t2w is None:
            LOGGER.warning("%s: skipped (%s)", name, "; ".join(unit.problems) or "no T1w/T2w")
            continue
        try:
            dseg = find_dseg(derivatives, unit.subject, unit.session, dseg_desc)
        except FileNotFoundError as exc:
            LOGGER.warning("%s: skipped: %s", name, exc)
            continue
        mapping = read_lookup_table(find_lookup_table(dseg, derivatives))
        subjects[name] = load_bids_subject(name, Path(unit.t1w), Path(unit.t2w), dseg, mapping)
    return subjects
