"""Static checks of the container recipes (Dockerfile, Singularity.def) and their build helpers.

No container engine is needed: the Dockerfile is parsed as text (its instructions, with line
continuations joined), the Singularity recipe with ``spython`` when installed. Building and
running the image for real is ``containers/build-test.sh`` (root, buildah/podman).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
SINGULARITY = ROOT / "Singularity.def"
CONTAINERS = ROOT / "containers"

#: Environment that keeps the app off the network and off $HOME, in both recipes.
NO_HOME_NO_NETWORK = {
    "TEMPLATEFLOW_HOME": "/opt/templateflow",
    "TEMPLATEFLOW_AUTOUPDATE": "0",
    "NIPYPE_NO_ET": "1",
    "INFANT_TISSUE_MODELS": "/opt/infant-tissue/models/default",
    "MPLCONFIGDIR": None,  # any value under /tmp
    "XDG_CACHE_HOME": None,
    "XDG_CONFIG_HOME": None,
    "TORCH_HOME": None,
}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped and continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    assert not pending, "Dockerfile ends inside a continuation"
    return out


def docker_args() -> dict[str, str | None]:
    args: dict[str, str | None] = {}
    for keyword, rest in dockerfile_instructions():
        if keyword == "ARG":
            name, eq, value = rest.partition("=")
            args[name] = value.strip('"') if eq else args.get(name)
    return args


def docker_key_values(instruction: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for keyword, rest in dockerfile_instructions():
        if keyword == instruction:
            for token in shlex.split(rest):
                key, _, value = token.partition("=")
                values[key] = value
    return values


# --- Dockerfile -------------------------------------------------------------------------------


def test_dockerfile_base_image_is_an_argument_with_a_cuda_pytorch_default():
    instructions = dockerfile_instructions()
    first = instructions[0]
    assert first[0] == "ARG" and first[1].startswith("BASE_IMAGE=")
    assert re.fullmatch(
        r"BASE_IMAGE=pytorch/pytorch:2\.\d+\.\d+-cuda1\d\.\d+-cudnn9-runtime", first[1]
    ), first[1]
    assert ("FROM", "${BASE_IMAGE}") in instructions
    assert sum(1 for keyword, _ in instructions if keyword == "FROM") == 1


def test_dockerfile_build_arguments():
    args = docker_args()
    for name in (
        "BASE_IMAGE",
        "VERSION",
        "VCS_REF",
        "BUILD_DATE",
        "TORCH_SOURCE",
        "TEMPLATES_SOURCE",
        "MASNET_SOURCE",
        "MASNET_REPO",
        "MASNET_COMMIT",
        "DEFAULT_BUNDLE",
        "BUILD_CA_BUNDLE",
    ):
        assert name in args, name
    assert args["TORCH_SOURCE"] == "base"
    assert args["TEMPLATES_SOURCE"] == "templateflow"
    assert args["MASNET_SOURCE"] == "url"
    assert args["DEFAULT_BUNDLE"] == "masnet"
    assert args["VERSION"] == (ROOT / "version").read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{40}", args["MASNET_COMMIT"] or ""), "pinned full commit"
    assert args["MASNET_REPO"] == "https://github.com/RicardoZiTseng/3D-MASNet"
    # no build argument is needed: the files' git blob ids at the pinned commit are pinned in
    # fetch_masnet.py; blob-id overrides and sha256 values are optional and empty by default
    assert args["MASNET_COMMIT"] == _fetch_masnet().PINNED_COMMIT
    assert args.get("MASNET_BLOB_IDS", "missing") == ""
    for i in range(10):
        assert args.get(f"MASNET_SHA256_{i}", "missing") == "", i


def test_dockerfile_labels():
    labels = docker_key_values("LABEL")
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert labels["org.opencontainers.image.revision"] == "${VCS_REF}"
    assert labels["org.opencontainers.image.created"] == "${BUILD_DATE}"
    assert labels["org.opencontainers.image.base.name"] == "${BASE_IMAGE}"
    assert labels["org.opencontainers.image.title"] == "infant-tissue"
    assert "${MASNET_COMMIT}" in labels.values()


def test_dockerfile_environment_needs_no_home_and_no_network():
    env = docker_key_values("ENV")
    for name, value in NO_HOME_NO_NETWORK.items():
        assert name in env, name
        if value is None:
            assert env[name].startswith("/tmp/"), (name, env[name])
        else:
            assert env[name] == value, name
    assert env["HOME"] == "/tmp"
    # thread counts come from --omp-nthreads at run time, not from the image
    assert not any(k.endswith("_NUM_THREADS") for k in env)


def test_dockerfile_user_workdir_and_entrypoint():
    instructions = dockerfile_instructions()
    keywords = [k for k, _ in instructions]
    user = [rest for k, rest in instructions if k == "USER"]
    assert len(user) == 1
    args = docker_args()
    resolved = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)] or "", user[0])
    uid = resolved.split(":")[0]
    assert uid not in ("0", "root") and uid.isdigit(), resolved
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")
    entry = [rest for k, rest in instructions if k == "ENTRYPOINT"]
    assert entry == ['["infant-tissue"]']
    assert "CMD" not in keywords  # arguments pass straight to the BIDS-App
    assert [rest for k, rest in instructions if k == "WORKDIR"] == ["/tmp"]


def test_dockerfile_network_steps_have_local_alternatives():
    instructions = dockerfile_instructions()
    runs = " ".join(rest for k, rest in instructions if k == "RUN")
    assert "fetch_templates.py" in runs and '--source "${TEMPLATES_SOURCE}"' in runs
    assert "fetch_masnet.py" in runs and '--source "${MASNET_SOURCE}"' in runs
    assert "/build/local/torch-*.whl" in runs
    assert "--local /build/local/templateflow" in runs
    assert "--local /build/local/3D-MASNet" in runs
    # the optional large inputs are bind-mounted (never kept in a layer); small ones are copied
    assert "source=containers/local," in runs
    copied = " ".join(rest for k, rest in instructions if k in ("COPY", "ADD"))
    assert "containers/local" not in copied
    for source in ("containers/requirements.lock", "infant_tissue", "pyproject.toml", "version"):
        assert source in copied, source
    assert not re.search(r"(^|\s)\.(\s|$)", copied), "the whole context must not be copied"


def test_dockerignore_keeps_the_build_inputs():
    lines = [x.strip() for x in (ROOT / ".dockerignore").read_text().splitlines() if x.strip()]
    lines = [x for x in lines if not x.startswith("#")]
    assert lines[0] == "*"
    for needed in ("pyproject.toml", "version", "README.md", "infant_tissue", "containers"):
        assert f"!{needed}" in lines, needed


def test_requirements_lock_is_pinned_and_leaves_torch_to_the_base_image():
    lock = (CONTAINERS / "requirements.lock").read_text().splitlines()
    reqs = [x for x in lock if x.strip() and not x.startswith("#")]
    names = set()
    for line in reqs:
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+\-]+", line), line
        names.add(line.split("==")[0].lower().replace("_", "-"))
    assert not names & {"torch", "infant-tissue", "pytest", "ruff"}
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        name = re.split(r"[<>=!~ \[;]", dep, maxsplit=1)[0].lower().replace("_", "-")
        if name != "torch":
            assert name in names, f"{name} is a dependency but not in requirements.lock"


# --- Singularity ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def singularity_recipe():
    parsers = pytest.importorskip("spython.main.parse.parsers", reason="spython not installed")
    recipe = parsers.SingularityParser(str(SINGULARITY)).recipe
    return next(iter(recipe.values()))


def test_singularity_is_built_from_the_docker_image(singularity_recipe):
    header = SINGULARITY.read_text()
    assert re.search(r"^Bootstrap:\s*docker(-daemon)?\s*$", header, re.M)
    version = (ROOT / "version").read_text().strip()
    assert singularity_recipe.fromHeader == f"infant-tissue:{version}"


def test_singularity_runscript_passes_arguments_through(singularity_recipe):
    runscript = singularity_recipe.cmd.strip()
    assert runscript == 'exec infant-tissue "$@"'
    assert "--help" not in runscript


def test_singularity_environment_needs_no_home_and_no_network(singularity_recipe):
    env = {}
    for item in singularity_recipe.environ:
        key, _, value = item.partition("=")
        env[key] = value
    for name, value in NO_HOME_NO_NETWORK.items():
        assert name in env, name
        if value is None:
            assert env[name].startswith("/tmp/"), (name, env[name])
        else:
            assert env[name] == value, name
    assert env["PYTHONNOUSERSITE"] == "1"  # host ~/.local must not leak in
    assert "HOME" not in env  # Singularity owns HOME; nothing depends on it
    assert env["PATH"].startswith("/opt/infant-tissue/venv/bin:")
    docker_env = docker_key_values("ENV")
    for name in NO_HOME_NO_NETWORK:
        assert env[name] == docker_env[name], f"{name} differs between the recipes"


# --- build helpers ------------------------------------------------------------------------------


def _run_script(name: str, *args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(CONTAINERS / name), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _fetch_masnet():
    spec = importlib.util.spec_from_file_location("fetch_masnet", CONTAINERS / "fetch_masnet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_git_blob_id_is_what_git_hash_object_prints(tmp_path):
    path = tmp_path / "weights.h5"
    path.write_bytes(bytes(range(256)) * 1000 + b"\0 end")
    git = subprocess.run(
        ["git", "hash-object", str(path)], capture_output=True, text=True, check=True
    )
    assert _fetch_masnet().git_blob_id(path) == git.stdout.strip()


def test_every_default_file_has_a_pinned_blob_id():
    module = _fetch_masnet()
    assert module.PINNED_COMMIT == "0930fcff8c96e38616c19a880ba18d252958a967"
    for name in module.DEFAULT_FILES:
        assert re.fullmatch(r"[0-9a-f]{40}", module.PINNED_BLOB_IDS[name]), name
    assert module.PINNED_BLOB_IDS["weights/ensemble/0.h5"] == (
        "811344e7be1bbb5b96f7bd7d5e923788d9f57000"
    )


def test_fetch_masnet_refuses_a_file_whose_blob_id_differs(tmp_path):
    folder = tmp_path / "weights" / "ensemble"
    folder.mkdir(parents=True)
    (folder / "0.h5").write_bytes(b"not the published file")
    env = {"PATH": str(Path(sys.executable).parent)}
    done = _run_script(
        "fetch_masnet.py", "--source", "local", "--local", str(tmp_path), "--files",
        "weights/ensemble/0.h5", "--out", str(tmp_path / "b"), env=env,
    )  # fmt: skip
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    actual = _fetch_masnet().git_blob_id(folder / "0.h5")
    assert "weights/ensemble/0.h5" in lines[0] and actual in lines[0]
    assert "811344e7be1bbb5b96f7bd7d5e923788d9f57000" in lines[0]
    assert not (tmp_path / "b").exists()


def test_fetch_masnet_checks_an_optional_sha256_too(tmp_path):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "0.h5").write_bytes(b"a fixture")
    blob = _fetch_masnet().git_blob_id(tmp_path / "w" / "0.h5")
    env = {
        "PATH": str(Path(sys.executable).parent),
        "MASNET_BLOB_IDS": blob,
        "MASNET_SHA256_0": "0" * 64,
    }
    done = _run_script(
        "fetch_masnet.py", "--source", "local", "--local", str(tmp_path), "--files", "w/0.h5",
        "--out", str(tmp_path / "b"), env=env,
    )  # fmt: skip
    assert done.returncode == 1
    assert "sha256" in done.stderr and "MASNET_SHA256_0" in done.stderr


def test_fetch_masnet_needs_ids_for_files_the_pin_does_not_cover(tmp_path):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "0.h5").write_bytes(b"a fixture")
    env = {"PATH": str(Path(sys.executable).parent)}
    done = _run_script(
        "fetch_masnet.py", "--source", "local", "--local", str(tmp_path), "--files", "w/0.h5",
        "--out", str(tmp_path / "b"), env=env,
    )  # fmt: skip
    assert done.returncode == 1 and "MASNET_BLOB_IDS" in done.stderr


def test_fetch_masnet_url_source_needs_a_pinned_commit(tmp_path):
    env = {"PATH": str(Path(sys.executable).parent)}
    done = _run_script(
        "fetch_masnet.py", "--source", "url", "--commit", "master", "--files", "w/0.h5",
        "--out", str(tmp_path / "b"), env=env,
    )  # fmt: skip
    assert done.returncode == 2 and "40-hex" in done.stderr


def test_thread_environment_follows_omp_nthreads(monkeypatch):
    from infant_tissue.cli import run

    for name in run.THREAD_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert run._set_thread_env(argparse.Namespace(omp_nthreads=None, nprocs=16)) == 8
    assert run.os.environ["OMP_NUM_THREADS"] == "3"  # the default does not override the caller
    assert run.os.environ["MKL_NUM_THREADS"] == "8"
    assert run._set_thread_env(argparse.Namespace(omp_nthreads=2, nprocs=16)) == 2
    assert all(run.os.environ[name] == "2" for name in run.THREAD_ENV)
