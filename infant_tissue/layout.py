"""THE output layout: every file name the participant and group levels write is made here.

One owner for the ``sub-X[_ses-Y]`` prefix, the derivative names (pybids' ``build_path`` with a
derivatives pattern; entities carried over from the source T1w), the per-session log, crash,
run-record, report and figure paths, and the dataset-level files. Writers, readers, reports and
the group level ask this module for a path instead of spelling one, so a name cannot disagree
between the step that writes a file and the step that looks for it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import __version__
from .labels import DSEG_LOOKUP_TSV
from .utils.atomic import write_atomic

#: Where a session's derivatives go, and how they are named (pybids path pattern). Every entity
#: value is checked to be alphanumeric first, so no label can smuggle a path into the output.
DERIVATIVE_PATTERN = (
    "sub-{subject}[/ses-{session}]/anat/sub-{subject}[_ses-{session}][_acq-{acquisition}]"
    "[_ce-{ceagent}][_rec-{reconstruction}][_run-{run}][_space-{space}][_label-{label}]"
    "[_desc-{desc}]_{suffix<T1w|T2w|mask|dseg|probseg|volumes|qc>}{extension<.nii.gz|.json|.tsv>}"
)
#: Entities kept from the source file name (pybids names), in BIDS order.
SOURCE_ENTITIES = ("subject", "session", "acquisition", "ceagent", "reconstruction", "run")

#: The derivatives of one session: key -> (suffix, entities, extension). Names end the same way
#: whatever the source's own entities, so readers find them by :func:`derivative_ending`.
SESSION_DERIVATIVES: dict[str, tuple[str, dict[str, str], str]] = {
    "t1w": ("T1w", {"desc": "preproc"}, ".nii.gz"),
    "t2w": ("T2w", {"space": "T1w", "desc": "preproc"}, ".nii.gz"),
    "mask": ("mask", {"space": "T1w", "desc": "brain"}, ".nii.gz"),
    "removed": ("mask", {"space": "T1w", "desc": "cerebellumbrainstem"}, ".nii.gz"),
    "dseg": ("dseg", {"space": "T1w"}, ".nii.gz"),
    "prob_GM": ("probseg", {"space": "T1w", "label": "GM"}, ".nii.gz"),
    "prob_WM": ("probseg", {"space": "T1w", "label": "WM"}, ".nii.gz"),
    "prob_CSF": ("probseg", {"space": "T1w", "label": "CSF"}, ".nii.gz"),
    "volumes": ("volumes", {"desc": "tissue"}, ".tsv"),
    # the ensemble's own uncertainty (probseg: values in [0, 1] on the T1w grid; the sidecars
    # say what they are)
    "disagreement": ("probseg", {"space": "T1w", "desc": "disagreement"}, ".nii.gz"),
    "entropy": ("probseg", {"space": "T1w", "desc": "entropy"}, ".nii.gz"),
    # QC metrics and verdict of the session (qc/), next to the volume table
    "qc": ("qc", {"desc": "tissue"}, ".json"),
}

#: A crash file's name: ``crash-<session or 'nosession'>-<YYYYmmddTHHMMSSffffff>.txt`` (read
#: leniently: a ``ses-`` before the session and any stamp, as files copied by hand may have)
CRASH_NAME = re.compile(r"^crash-(?:ses-)?(?P<session>[A-Za-z0-9]+)-[^/]*\.txt$")
NO_SESSION = "nosession"

BIDSIGNORE = (
    "*.html\ngroup\nlog\nfigures\n*_desc-tissue_volumes.tsv\n*_desc-tissue_volumes.json\n"
    "*_desc-tissue_qc.json\n"
)
README = """# infant-tissue derivatives

Tissue segmentations (CSF, GM, WM) of infant T1w + T2w MRI made by infant-tissue (3D-MASNet).
Per session: `*_desc-preproc_T1w`, `*_space-T1w_desc-preproc_T2w`, `*_space-T1w_desc-brain_mask`,
`*_space-T1w_desc-cerebellumbrainstem_mask` (the region removed before segmentation),
`*_space-T1w_dseg` (1 GM, 2 WM, 3 CSF; see `dseg.tsv`), `*_space-T1w_label-{GM,WM,CSF}_probseg`
`*_space-T1w_desc-{disagreement,entropy}_probseg` (where the ensemble's members disagree, how
uncertain its mean probabilities are), `*_desc-tissue_volumes.tsv` and `*_desc-tissue_qc.json`
(QC metrics and the pass/warn/fail verdict); `group/` holds the cohort tables made by the group level.
QC reports: `sub-X[_ses-Y].html` (figures in `sub-X/figures/`) and `group/report.html`.
"""
CODE_URL = "https://github.com/infant-tissue/infant-tissue"
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9]+$")


# --- sessions ------------------------------------------------------------------------------------


def session_prefix(subject: str, session: str | None = None) -> str:
    """``sub-X`` or ``sub-X_ses-Y``: the start of every file name of a session."""
    return f"sub-{subject}" + (f"_ses-{session}" if session else "")


def session_label(subject: str, session: str | None = None) -> str:
    """``sub-X`` or ``sub-X ses-Y``: how messages name a session."""
    return f"sub-{subject}" + (f" ses-{session}" if session else "")


def anat_dir(output_dir: str | os.PathLike[str], subject: str, session: str | None) -> Path:
    folder = Path(output_dir) / f"sub-{subject}"
    return (folder / f"ses-{session}" if session else folder) / "anat"


def log_dir(output_dir: str | os.PathLike[str], subject: str) -> Path:
    """``OUT/sub-X/log``: crash files, run records, nipype's own crash files (``nipype/``)."""
    return Path(output_dir) / f"sub-{subject}" / "log"


def figures_dir(output_dir: str | os.PathLike[str], subject: str) -> Path:
    return Path(output_dir) / f"sub-{subject}" / "figures"


def report_path(output_dir: str | os.PathLike[str], subject: str, session: str | None) -> Path:
    """``OUT/sub-X[_ses-Y].html`` (where the group tables look for it)."""
    return Path(output_dir) / f"{session_prefix(subject, session)}.html"


def runtime_path(output_dir: str | os.PathLike[str], subject: str, session: str | None) -> Path:
    """``OUT/sub-X/log/sub-X[_ses-Y]_runtime.json``: the session's run record."""
    return log_dir(output_dir, subject) / f"{session_prefix(subject, session)}_runtime.json"


def crash_path(
    output_dir: str | os.PathLike[str],
    subject: str,
    session: str | None,
    when: dt.datetime | None = None,
) -> Path:
    """``OUT/sub-X/log/crash-<session>-<time>.txt``."""
    stamp = (when or dt.datetime.now()).strftime("%Y%m%dT%H%M%S%f")
    return log_dir(output_dir, subject) / f"crash-{session or NO_SESSION}-{stamp}.txt"


def crash_session(path: str | os.PathLike[str]) -> tuple[bool, str | None]:
    """(is a crash file, its session or None) from a file name."""
    match = CRASH_NAME.match(Path(path).name)
    if not match:
        return False, None
    return True, None if match["session"] == NO_SESSION else match["session"]


def crash_files(
    output_dir: str | os.PathLike[str], subject: str, session: str | None
) -> list[Path]:
    """The session's crash files, oldest first."""
    folder = log_dir(output_dir, subject)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if crash_session(p) == (True, session)]
    return sorted(found, key=lambda p: p.name)


def group_dir(output_dir: str | os.PathLike[str]) -> Path:
    return Path(output_dir) / "group"


# --- derivatives ---------------------------------------------------------------------------------


def source_entities(source_file: str | os.PathLike[str]) -> dict[str, str]:
    """Entities of a BIDS file name that carry over to its derivatives (subject, session, acq...)."""
    from bids.layout import parse_file_entities

    # the leading slash: pybids finds "sub-" only after a path separator; the name alone, so no
    # parent folder can lend the file an entity
    found = parse_file_entities("/" + Path(source_file).name)
    if "subject" not in found:
        raise ValueError(f"{source_file}: not a BIDS file name (no sub- entity)")
    return {k: str(found[k]) for k in SOURCE_ENTITIES if k in found}


def derivative_path(
    output_dir: str | os.PathLike[str],
    source_file: str | os.PathLike[str],
    suffix: str,
    extension: str = ".nii.gz",
    **entities: str | None,
) -> Path:
    """``OUT/sub-X[/ses-Y]/anat/sub-X[_ses-Y]..._<space,label,desc>_<suffix><extension>``,
    entities from the source T1w's name (:data:`DERIVATIVE_PATTERN`)."""
    from bids.layout.writing import build_path

    values = {**source_entities(source_file)}
    for key, value in entities.items():
        if value is not None:
            values[key] = value
    for key, value in values.items():
        if not _SAFE_VALUE.match(value):
            raise ValueError(f"unsafe BIDS entity value {key}-{value!r}")
    path = build_path({**values, "suffix": suffix, "extension": extension}, [DERIVATIVE_PATTERN])
    if path is None:
        raise ValueError(f"no derivative name for suffix {suffix!r}, extension {extension!r}")
    return Path(output_dir) / path


def derivative_ending(key: str) -> str:
    """How the name of one of :data:`SESSION_DERIVATIVES` ends, after the source's entities."""
    suffix, entities, extension = SESSION_DERIVATIVES[key]
    names = {"space": "space", "label": "label", "desc": "desc"}
    parts = [f"{names[k]}-{entities[k]}" for k in ("space", "label", "desc") if k in entities]
    return "".join(f"_{p}" for p in parts) + f"_{suffix}{extension}"


def find_session_derivatives(
    output_dir: str | os.PathLike[str], subject: str, session: str | None
) -> dict[str, Path]:
    """The session's derivative files that exist, by :data:`SESSION_DERIVATIVES` key (plus
    ``dseg_json``, the dseg's sidecar)."""
    folder = anat_dir(output_dir, subject, session)
    if not folder.is_dir():
        return {}
    prefix = session_prefix(subject, session) + "_"
    names = sorted(p for p in folder.iterdir() if p.name.startswith(prefix))
    found: dict[str, Path] = {}
    for key in SESSION_DERIVATIVES:
        ending = derivative_ending(key)
        match = [p for p in names if p.name.endswith(ending)]
        if match:
            found[key] = match[0]
    if "dseg" in found:
        sidecar = found["dseg"].with_name(found["dseg"].name.replace(".nii.gz", ".json"))
        if sidecar.is_file():
            found["dseg_json"] = sidecar
    return found


def session_outputs(
    output_dir: str | os.PathLike[str], subject: str, session: str | None
) -> list[Path]:
    """Every file of the session in its ``anat`` folder (what a failed run must not leave)."""
    folder = anat_dir(output_dir, subject, session)
    prefix = session_prefix(subject, session) + "_"
    return sorted(folder.glob(f"{prefix}*")) if folder.is_dir() else []


def bids_relative(path: str | os.PathLike[str]) -> str:
    """Path from the ``sub-*`` folder on (``sub-01/ses-1/anat/x.nii.gz``), as BIDS URIs use."""
    parts = str(path).replace("\\", "/").split("/")
    for i, part in enumerate(parts):
        if part.startswith("sub-") and i < len(parts) - 1:
            return "/".join(parts[i:])
    return parts[-1]


def write_derivative(obj: Any, path: Path, sidecar: Mapping[str, Any] | None = None) -> Path:
    """Write a derivative and its JSON sidecar atomically (sidecar first: a reader that finds the
    image always finds its description)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if sidecar is not None:
        json_path = path.with_name(path.name.split(".")[0] + ".json")
        write_atomic(json.dumps(dict(sidecar), indent=2) + "\n", json_path)
    write_atomic(obj, path)
    return path


def ensure_dataset_files(output_dir: str | os.PathLike[str], bids_dir: str | None = None) -> None:
    """Create ``dataset_description.json``, the dseg lookup tables and ``.bidsignore`` once.

    Many participants may run concurrently into the same folder (array jobs): each file is
    created with an exclusive link, so exactly one writer wins and nobody sees a partial file.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    generated: dict[str, Any] = {
        "Name": "infant-tissue",
        "Version": __version__,
        "CodeURL": CODE_URL,
    }
    if os.environ.get("INFANT_TISSUE_IMAGE"):
        generated["Container"] = {"Type": "docker", "Tag": os.environ["INFANT_TISSUE_IMAGE"]}
    description: dict[str, Any] = {
        "Name": "infant-tissue outputs",
        "BIDSVersion": "1.10.0",
        "DatasetType": "derivative",
        "GeneratedBy": [generated],
    }
    if bids_dir:
        description["SourceDatasets"] = [{"URL": Path(bids_dir).resolve().as_uri()}]
    for name, content in (
        ("dataset_description.json", json.dumps(description, indent=2) + "\n"),
        ("desc-tissue_dseg.tsv", DSEG_LOOKUP_TSV),
        ("dseg.tsv", DSEG_LOOKUP_TSV),
        (".bidsignore", BIDSIGNORE),
        ("README.md", README),
    ):
        try:
            write_atomic(content, out / name, overwrite=False)
        except FileExistsError:
            pass
