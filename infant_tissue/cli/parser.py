"""The BIDS-App's command line: ``infant-tissue BIDS_DIR OUTPUT_DIR {participant,group} [options]``."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from .. import __version__
from ._common import add_app_options, add_data_selection

LEVELS = ("participant", "group")

EXAMPLES = """\
examples:
  # every participant, CPU or GPU chosen automatically, the bundled/default model
  infant-tissue /data/bids /data/derivatives/infant-tissue participant
  # two participants, already skull-stripped inputs, a converted 3D-MASNet ensemble
  infant-tissue /data/bids /out participant --participant-label 01 sub-02 \\
      --skull-stripped --models /models/masnet-iseg2019
  # a quick CPU run with a documented fast mode, 4 sessions at once on a 16-core node
  infant-tissue /data/bids /out participant --inference-mode fast --nprocs 16 --omp-nthreads 4
  # the cohort tables and figures, after every participant has run
  infant-tissue /data/bids /out group
"""


def default_bundle() -> Path | None:
    """The model used without ``--models``: $INFANT_TISSUE_MODELS, else the packaged demo."""
    env = os.environ.get("INFANT_TISSUE_MODELS")
    if env:
        return Path(env)
    packaged = Path(__file__).resolve().parent.parent / "data" / "bundles" / "demo"
    return packaged if (packaged / "model.json").is_file() else None


def version_text() -> str:
    """``--version``: the app, the default bundle with its sha256, torch and CUDA."""
    lines = [f"infant-tissue {__version__}"]
    bundle = default_bundle()
    if bundle is not None and (bundle / "model.json").is_file():
        import hashlib

        meta = json.loads((bundle / "model.json").read_text())
        sha = hashlib.sha256((bundle / "model.json").read_bytes()).hexdigest()
        lines.append(
            f"model bundle {meta.get('name')} ({len(meta.get('members', []))} members) sha256 {sha}"
        )
    else:
        lines.append("model bundle: none installed (use --models)")
    try:
        import torch

        cuda = torch.version.cuda or "none (CPU build)"
        lines.append(f"torch {torch.__version__}, CUDA {cuda}")
    except ImportError:  # pragma: no cover
        lines.append("torch not installed")
    return "\n".join(lines)


class _VersionAction(argparse.Action):
    """``--version``, computed only when asked (it imports torch and hashes the bundle)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, **kw):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="infant-tissue",
        description="CSF/GM/WM segmentation of 6-month-old infant T1w+T2w MRI with 3D-MASNet "
        "(BIDS-App). Other commands: infant-tissue --commands.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("bids_dir", type=Path, help="the input BIDS dataset")
    p.add_argument("output_dir", type=Path, help="where derivatives are written")
    p.add_argument("analysis_level", help="participant or group")
    p.add_argument("--version", action=_VersionAction, help="show versions, bundle and exit")
    add_data_selection(p, "do not check the input dataset's basic BIDS structure")
    _, _, resources = add_app_options(p)
    resources.add_argument(
        "-w", "--work-dir", type=Path, help="intermediate files (default: ./work)"
    )
    resources.add_argument(
        "--nprocs",
        "--n-cpus",
        type=int,
        default=os.cpu_count() or 1,
        help="processes for nipype's MultiProc plugin, shared by all sessions (several sessions "
        "run at once; the segmentation takes one GPU slot per visible GPU)",
    )
    resources.add_argument(
        "--omp-nthreads",
        type=int,
        default=None,
        help="threads per process (ANTs, PyTorch); default min(8, nprocs)",
    )
    resources.add_argument(
        "--nipype-plugin-file",
        type=Path,
        metavar="YAML",
        help="nipype plugin and its args (MultiProc, SLURM, SGE, ...)",
    )
    p.add_argument(
        "--no-reports",
        action="store_true",
        help="skip the HTML QC reports (sub-X[_ses-Y].html, group/report.html)",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv)")
    return p


def validate_bids(bids_dir: Path) -> str | None:
    """Basic BIDS structure check; returns a problem or None."""
    desc = bids_dir / "dataset_description.json"
    if not desc.is_file():
        return f"{desc}: missing (not a BIDS dataset; --skip-bids-validation to go on anyway)"
    try:
        data = json.loads(desc.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return f"{desc}: invalid JSON ({exc})"
    if not isinstance(data, dict) or "Name" not in data or "BIDSVersion" not in data:
        return f"{desc}: needs 'Name' and 'BIDSVersion'"
    if not any(p.is_dir() and p.name.startswith("sub-") for p in bids_dir.iterdir()):
        return f"{bids_dir}: no sub-* folders"
    return None
