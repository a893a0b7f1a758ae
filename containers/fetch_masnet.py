#!/usr/bin/env python3
"""Image build step: the published 3D-MASNet ensemble -> git blob id check -> infant-tissue bundle.

The reference implementation (github.com/RicardoZiTseng/3D-MASNet) publishes its iSeg-2019
ensemble as ten Keras-2 HDF5 files, ``weights/ensemble/0.h5`` ... ``9.h5`` (fused "deploy" form,
the files ``settings/predict_ensemble.json`` of that repository lists). This script

1. gets every file, either from the repository at a pinned commit (``--source url``:
   ``{repo}/raw/{commit}/{path}``) or from a local copy laid out like the repository
   (``--source local``);
2. checks each file against its **git blob id** (SHA-1 of ``"blob <size>\\0"`` + content, what
   ``git hash-object`` prints): the pinned commit's tree fixes the identity of every file, so the
   ids at :data:`PINNED_COMMIT` are pinned below (:data:`PINNED_BLOB_IDS`) and no build argument
   is needed. Other files or commits give their ids in ``MASNET_BLOB_IDS`` (space-separated, one
   per ``--files`` entry). ``MASNET_SHA256_<i>`` (``i`` = position in ``--files``), when set, is
   checked as well. A Git LFS pointer, a missing id or a different one stops the build, with one
   line naming the file and both ids;
3. converts them with ``infant-tissue import-keras`` into a weight bundle (input domain
   ``cerebrum``, the repository's Apache-2.0 licence recorded) and verifies it with
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

#: The commit of RicardoZiTseng/3D-MASNet the image is built from, and the git blob id of each
#: weight file in its tree (the repository has no .gitattributes: plain blobs, no LFS).
PINNED_COMMIT = "0930fcff8c96e38616c19a880ba18d252958a967"
PINNED_BLOB_IDS = {
    "weights/ensemble/0.h5": "811344e7be1bbb5b96f7bd7d5e923788d9f57000",
    "weights/ensemble/1.h5": "168155cd3299d0f078174e104f914cfe37a9449c",
    "weights/ensemble/2.h5": "b3424f23a98c76d62b2432c03f505ace43fcfa60",
    "weights/ensemble/3.h5": "7aa0801c94d59fde3456f187ee95d1dad4ea57dc",
    "weights/ensemble/4.h5": "e53051d707eaea7cda0bad02dc568678a00f7fec",
    "weights/ensemble/5.h5": "575bfce322eb55a3cdb27e633657300a1e28475e",
    "weights/ensemble/6.h5": "00684acd9e39e54825633de63d29ff1a18e8b4d1",
    "weights/ensemble/7.h5": "082a8d950863a2933d0bdc356f49d117c860d2e6",
    "weights/ensemble/8.h5": "0f16be47dfeffea20e56bc4b83b67e9ea2b2cfc1",
    "weights/ensemble/9.h5": "92c70f15653457124a72b208654c3ae868e848f1",
    "weights/example/test.h5": "c1cc852d96b35aa1d88abb5376125f2a8af20630",
}
#: The repository's licence at that commit (``LICENSE``, Apache License 2.0).
LICENCE_BLOB_ID = "8bbe09cd335d3da0509c52ee207647cb6cb79368"


def git_blob_id(path: Path) -> str:
    """What ``git hash-object FILE`` prints: SHA-1 of ``b"blob <size>\\0"`` + the content."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    p.add_argument("--commit", default=PINNED_COMMIT, help="40-hex commit of --repo")
    p.add_argument("--local", type=Path, help="a copy laid out like the repository (local)")
    p.add_argument("--files", nargs="+", default=DEFAULT_FILES, help="paths inside the repo")
    p.add_argument("--out", type=Path, required=True, help="bundle folder to create")
    p.add_argument("--name", default="masnet-iseg2019")
    p.add_argument("--licence", default="")
    p.add_argument("--timeout", type=float, default=120.0)
    return p.parse_args(argv)


def expected_ids(files: list[str], commit: str) -> tuple[dict[int, str], dict[int, str]]:
    """Blob ids (required) and sha256 values (optional) each file must have."""
    given = os.environ.get("MASNET_BLOB_IDS", "").split()
    if given:
        if len(given) != len(files):
            raise SystemExit(
                f"fetch_masnet: MASNET_BLOB_IDS has {len(given)} ids for {len(files)} files"
            )
        blobs = dict(enumerate(x.lower() for x in given))
    else:
        pinned = commit == PINNED_COMMIT
        blobs = {i: PINNED_BLOB_IDS.get(f, "") if pinned else "" for i, f in enumerate(files)}
    missing = [files[i] for i, b in blobs.items() if not b]
    if missing:
        raise SystemExit(
            f"fetch_masnet: no pinned git blob id for {', '.join(missing)} at commit {commit}; "
            "give them in MASNET_BLOB_IDS ('git ls-tree -r COMMIT weights' lists them)"
        )
    bad = [files[i] for i, b in blobs.items() if not re.fullmatch(r"[0-9a-f]{40}", b)]
    if bad:
        raise SystemExit(f"fetch_masnet: not a git blob id (40 hex digits) for {', '.join(bad)}")
    sha256s = {i: os.environ.get(f"MASNET_SHA256_{i}", "").strip().lower() for i in blobs}
    bad = [
        f"MASNET_SHA256_{i}"
        for i, v in sha256s.items()
        if v and not re.fullmatch(r"[0-9a-f]{64}", v)
    ]
    if bad:
        raise SystemExit(f"fetch_masnet: not a sha256 (64 hex digits): {', '.join(bad)}")
    return blobs, sha256s


def check_file(rel: str, path: Path, blob: str, sha: str, index: int) -> str | None:
    """One line naming the file and the problem, or None when the file is the pinned one."""
    with open(path, "rb") as fh:
        if fh.read(len(LFS_POINTER)) == LFS_POINTER:
            return f"fetch_masnet: {rel}: got a Git LFS pointer, not the file"
    actual = git_blob_id(path)
    if actual != blob:
        return f"fetch_masnet: {rel}: git blob id {actual} differs from the pinned {blob}"
    if sha and sha256(path) != sha:
        return f"fetch_masnet: {rel}: sha256 {sha256(path)} != MASNET_SHA256_{index} {sha}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not re.fullmatch(r"[0-9a-f]{40}", args.commit):
        print("fetch_masnet: --commit must be a full 40-hex commit (pinned)", file=sys.stderr)
        return 2
    if args.source == "local" and (args.local is None or not args.local.is_dir()):
        print(f"fetch_masnet: local copy {args.local} is not a folder", file=sys.stderr)
        return 2
    blobs, sha256s = expected_ids(args.files, args.commit)

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
            problem = check_file(rel, dest, blobs[i], sha256s[i], i)
            if problem:
                print(problem, file=sys.stderr)
                return 1
            print(f"fetch_masnet: {rel}: git blob id ok ({dest.stat().st_size} bytes)", flush=True)
            fetched.append(dest)

        licence = args.licence or (
            f"3D-MASNet iSeg-2019 ensemble (Zeng et al., Hum Brain Mapp 2023, doi:10.1002/hbm.26174) "
            f"from {args.repo} at commit {args.commit}, whose LICENSE (git blob {LICENCE_BLOB_ID}) "
            "is the Apache License 2.0. The networks were trained on iSeg-2019 data, whose own "
            "terms of use apply to those data."
        )
        cmd = ["infant-tissue", "import-keras", *map(str, fetched), "--out", str(args.out)]
        cmd += ["--name", args.name, "--licence", licence]
        print("fetch_masnet: " + " ".join(cmd[:2]) + f" ({len(fetched)} files) -> {args.out}")
        subprocess.run(cmd, check=True)
    subprocess.run(["infant-tissue", "model-info", str(args.out)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
