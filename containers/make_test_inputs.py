#!/usr/bin/env python3
"""Stand-ins for the image build's network downloads, for an offline test build.

Writes into ``containers/local/`` (ignored by git), the folder the Dockerfile reads when the
``*_SOURCE`` build arguments say ``local``:

* ``3D-MASNet/weights/ensemble/{0..9}.h5``: Keras-2 HDF5 files in the reference implementation's
  layout (fused "deploy" form, reduced width, random weights) made by the NumPy re-implementation
  of the Keras model used in the tests (``tests/keras_numpy_reference.py``), and
  ``3D-MASNet/SHA256SUMS`` for the ``MASNET_SHA256_<i>`` build arguments;
* ``3D-MASNet/BLOBIDS``: their git blob ids for ``MASNET_BLOB_IDS``;
* ``templateflow/tpl-MNIInfant/cohort-{1..5}/``: phantom heads (T1w, T2w, brain mask,
  cerebellum + brain-stem mask, 1 mm) named like the real ``tpl-MNIInfant`` res-1 files, so the
  app's TemplateFlow lookups find them.

Run with the project's environment: ``.venv/bin/python containers/make_test_inputs.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def keras_files(dest: Path, members: int) -> list[Path]:
    sys.path.insert(0, str(ROOT / "tests"))
    from keras_numpy_reference import KerasDUNetReference

    folder = dest / "weights" / "ensemble"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(members):
        ref = KerasDUNetReference(deploy=True, seed=seed, dtype=np.float32)
        ref.forward(np.random.default_rng(seed + 100).normal(size=(16, 16, 16, 2)))  # makes weights
        path = folder / f"{seed}.h5"
        ref.save_weights(path)
        paths.append(path)
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(dest)}" for p in paths]
    (dest / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    # git blob ids (what 'git hash-object' prints) for MASNET_BLOB_IDS: fixtures are not the
    # pinned files, so the build is told their ids
    blobs = []
    for p in paths:
        data = p.read_bytes()
        blobs.append(hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest())
    (dest / "BLOBIDS").write_text(" ".join(blobs) + "\n")
    return paths


def templateflow(home: Path, cohorts: list[int], shape: tuple[int, int, int]) -> None:
    """Phantom cohorts named like the real ``tpl-MNIInfant`` res-1 files, with the cerebellum +
    brain-stem masks a lab's prepared folder would hold (the image build keeps given masks; the
    adult labels do not register onto phantom anatomy)."""
    from infant_tissue.phantoms.templates import write_templateflow

    write_templateflow(home, cohorts, seed=70, shape=shape)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "containers" / "local")
    p.add_argument("--members", type=int, default=10)
    p.add_argument("--cohorts", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--shape", type=int, nargs=3, default=(48, 56, 48))
    p.add_argument("--torch-wheel", type=Path, help="also link/copy this wheel into --out")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for sub in ("3D-MASNet", "templateflow"):
        shutil.rmtree(args.out / sub, ignore_errors=True)
    keras_files(args.out / "3D-MASNet", args.members)
    templateflow(args.out / "templateflow", args.cohorts, tuple(args.shape))
    if args.torch_wheel:
        for old in args.out.glob("torch-*.whl"):
            old.unlink()
        target = args.out / args.torch_wheel.name
        try:
            target.hardlink_to(args.torch_wheel)
        except OSError:
            shutil.copyfile(args.torch_wheel, target)
    print(f"test inputs in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
