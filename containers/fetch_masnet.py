#!/usr/bin/env python3
"""Image build step: the published 3D-MASNet ensemble -> sha256 check -> infant-tissue bundle.

The reference implementation (github.com/RicardoZiTseng/3D-MASNet) publishes its iSeg-2019
ensemble as ten Keras-2 HDF5 files, ``weights/ensemble/0.h5`` ... ``9.h5`` (fused "deploy" form,
the files ``settings/predict_ensemble.json`` of that repository lists). This script

1. gets every file, either from the repository at a pinned commit (``--source url``:
   ``{repo}/raw/{commit}/{path}``, which GitHub redirects to the raw file or to its Git LFS
   object) or from a local copy laid out like the repository (``--source local``);
2. checks each file against its expected sha256, given in the environment as
   ``MASNET_SHA256_<i>`` (``i`` = position in ``--files``; Docker build arguments of that name
   are visible to ``RUN``); a missing or different checksum stops the build;
3. converts them with ``infant-tissue import-keras`` into a weight bundle and verifies it with
   ``infant-tissue model-info``. The HDF5 files are not kept.

Only the standard library is used for the download (no curl/git needed in the base image); the
CA bundle is OpenSSL's default, or ``SSL_CERT_FILE`` when set.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

DEFAULT_FILES = [f"weights/ensemble/{i}.h5" for i in range(10)]
LFS_POINTER = b"version https://git-lfs.github.com/spec/"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: Path, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "infant-tissue-image-build"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as fh:
            shutil.copyfileobj(response, fh, 1 << 20)
    except OSError as exc:  # URLError, HTTPError, timeouts
        raise SystemExit(f"fetch_masnet: cannot download {url}: {exc}") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", choices=("url", "local"), required=True)
    p.add_argument("--repo", default="https://github.com/RicardoZiTseng/3D-MASNet")
    p.add_argument("--commit", default="", help="40-hex commit of --repo (url source)")
    p.add_argument("--local", type=Path, help="a copy laid out like the repository (local)")
    p.add_argument("--files", nargs="+", default=DEFAULT_FILES, help="paths inside the repo")
    p.add_argument("--out", type=Path, required=True, help="bundle folder to create")
    p.add_argument("--name", default="masnet-iseg2019")
    p.add_argument("--licence", default="")
    p.add_argument("--timeout", type=float, default=120.0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    expected = {
        i: os.environ.get(f"MASNET_SHA256_{i}", "").strip().lower() for i in range(len(args.files))
    }
    missing = [f"MASNET_SHA256_{i} ({args.files[i]})" for i, sha in expected.items() if not sha]
    if missing:
        print(
            "fetch_masnet: no expected sha256 for: " + ", ".join(missing) + ".\n"
            "  Every weight file is checked against a build argument. Download the files once at "
            "the pinned commit, run 'sha256sum weights/ensemble/*.h5' and pass each value, e.g.\n"
            "  docker build --build-arg MASNET_SHA256_0=<sha256 of 0.h5> ... .",
            file=sys.stderr,
        )
        return 2
    bad = [
        f"MASNET_SHA256_{i}"
        for i, sha in expected.items()
        if not re.fullmatch(r"[0-9a-f]{64}", sha)
    ]
    if bad:
        print(f"fetch_masnet: not a sha256 (64 hex digits): {', '.join(bad)}", file=sys.stderr)
        return 2
    if args.source == "url" and not re.fullmatch(r"[0-9a-f]{40}", args.commit):
        print("fetch_masnet: --commit must be a full 40-hex commit (pinned)", file=sys.stderr)
        return 2
    if args.source == "local" and (args.local is None or not args.local.is_dir()):
        print(f"fetch_masnet: local copy {args.local} is not a folder", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="masnet-") as tmp:
        fetched: list[Path] = []
        for i, rel in enumerate(args.files):
            dest = Path(tmp) / f"{i:02d}-{Path(rel).name}"
            if args.source == "url":
                url = f"{args.repo.rstrip('/')}/raw/{args.commit}/{rel}"
                print(f"fetch_masnet: {url}", flush=True)
                download(url, dest, args.timeout)
            else:
                src = args.local / rel
                if not src.is_file():
                    print(f"fetch_masnet: {src}: missing", file=sys.stderr)
                    return 2
                shutil.copyfile(src, dest)
            with open(dest, "rb") as fh:
                if fh.read(len(LFS_POINTER)) == LFS_POINTER:
                    print(
                        f"fetch_masnet: {rel}: got a Git LFS pointer, not the file", file=sys.stderr
                    )
                    return 1
            actual = sha256(dest)
            if actual != expected[i]:
                print(
                    f"fetch_masnet: {rel}: sha256 {actual} != MASNET_SHA256_{i} {expected[i]}",
                    file=sys.stderr,
                )
                return 1
            print(f"fetch_masnet: {rel}: sha256 ok ({dest.stat().st_size} bytes)", flush=True)
            fetched.append(dest)

        licence = args.licence or (
            f"3D-MASNet iSeg-2019 ensemble (Zeng et al., Hum Brain Mapp 2022, doi:10.1002/hbm.26174) "
            f"from {args.repo} at {args.commit or 'a local copy'}; that repository carries no licence "
            "file: check the authors' terms before redistributing."
        )
        cmd = ["infant-tissue", "import-keras", *map(str, fetched), "--out", str(args.out)]
        cmd += ["--name", args.name, "--licence", licence]
        print("fetch_masnet: " + " ".join(cmd[:2]) + f" ({len(fetched)} files) -> {args.out}")
        subprocess.run(cmd, check=True)
    subprocess.run(["infant-tissue", "model-info", str(args.out)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
