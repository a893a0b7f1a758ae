#!/usr/bin/env bash
# Build the infant-tissue image from the real Dockerfile without Docker or network access beyond
# PyPI/Debian, then run it the way a cluster would: non-root, read-only root filesystem, no
# network, /tmp as tmpfs, data bind-mounted.
#
#   sudo containers/build-test.sh            # as root (buildah/podman storage in /var/lib/containers)
#
# * base image: Debian bookworm (Python 3.11) made by debootstrap, imported into podman storage
#   (reused when it exists; REBUILD_BASE=1 to redo). It has no torch, so TORCH_SOURCE=local
#   installs the CPU wheel ($TORCH_WHEEL).
# * network steps of the Dockerfile use local stand-ins (containers/make_test_inputs.py):
#   reference-layout Keras HDF5 fixtures for the 3D-MASNet ensemble, checked against their git
#   blob ids (MASNET_BLOB_IDS) and sha256 (MASNET_SHA256_<i>) and imported with import-keras;
#   phantom TemplateFlow files with their cerebellum + brain-stem masks.
#   DEFAULT_BUNDLE=demo: the runs use the packaged demo bundle.
# * runs: --version; make-phantoms; participant (--device cpu) and group on 2 phantom subjects;
#   the CPU-fallback log line of --device auto; model-info of the imported fixture bundle.
#
# Prints build time, image size, run times, per-stage times and peak memory; exits non-zero on
# any failure. Needs: buildah, podman, debootstrap (apt-get install buildah podman debootstrap
# runc), the project venv (.venv) to generate the fixtures.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

IMAGE="${IMAGE:-localhost/infant-tissue:build-test}"
BASE_IMAGE="${BASE_IMAGE:-localhost/infant-tissue-test-base:bookworm-py311}"
SCRATCH="${SCRATCH:-/var/tmp/infant-tissue-build-test}"
TORCH_WHEEL="${TORCH_WHEEL:-/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl}"
HOST_CA="${HOST_CA:-/etc/ssl/certs/ca-certificates.crt}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PYTHON="${PYTHON_HOST:-$ROOT/.venv/bin/python}"
NPROCS="${NPROCS:-2}"
LAYERS="${LAYERS:-false}"   # true: keep intermediate layers (faster rebuilds, more disk)

log() { printf '\n=== %s\n' "$*"; }
die() { printf 'build-test: FAILED: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }

for tool in buildah podman debootstrap; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install buildah podman debootstrap runc)"
done
[ "$(id -u)" = 0 ] || die "run as root (debootstrap, buildah chroot isolation)"
[ -x "$PYTHON" ] || die "$PYTHON: project venv missing (make venv)"
[ -f "$TORCH_WHEEL" ] || die "$TORCH_WHEEL: CPU torch wheel missing (set TORCH_WHEEL)"
mkdir -p "$SCRATCH"

# Podman on these hosts needs explicit ulimits; no network, read-only root, non-root user.
RUN_AS=(podman run --rm --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 --network none
        --read-only --tmpfs /tmp:rw,exec,mode=1777,size=4g --user)
RUN=("${RUN_AS[@]}" 1000:1000)

# --- 1. base image ------------------------------------------------------------------------------
if [ "${REBUILD_BASE:-0}" = 1 ] || ! podman image exists "$BASE_IMAGE"; then
    log "base image $BASE_IMAGE: debootstrap bookworm (python3.11)"
    t0=$(now)
    rm -rf "$SCRATCH/rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$SCRATCH/rootfs" "$DEBIAN_MIRROR" > "$SCRATCH/debootstrap.log" 2>&1 \
        || { tail -20 "$SCRATCH/debootstrap.log"; die "debootstrap"; }
    rm -rf "$SCRATCH"/rootfs/var/cache/apt/archives/*.deb "$SCRATCH"/rootfs/var/lib/apt/lists/*
    tar -C "$SCRATCH/rootfs" --numeric-owner -c . | podman import -q - "$BASE_IMAGE" >/dev/null
    rm -rf "$SCRATCH/rootfs"
    echo "base image built in $(secs "$t0" "$(now)") s"
fi
podman run --rm --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 "$BASE_IMAGE" \
    python3 -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
    || die "$BASE_IMAGE must have Python 3.11 (the CPU torch wheel is cp311)"

# --- 2. offline stand-ins for the Dockerfile's downloads ----------------------------------------
log "test inputs in containers/local (Keras fixtures, phantom TemplateFlow, CPU torch wheel)"
"$PYTHON" containers/make_test_inputs.py --torch-wheel "$TORCH_WHEEL"
SHA_ARGS=()
i=0
while read -r sha path; do
    [ "$path" = "weights/ensemble/$i.h5" ] || die "unexpected SHA256SUMS line: $path"
    SHA_ARGS+=(--build-arg "MASNET_SHA256_$i=$sha")
    i=$((i + 1))
done < containers/local/3D-MASNet/SHA256SUMS
# the fixtures are not the pinned upstream files: tell the build their git blob ids
SHA_ARGS+=(--build-arg "MASNET_BLOB_IDS=$(cat containers/local/3D-MASNet/BLOBIDS)")
[ "$i" = 10 ] || die "expected 10 fixture files, got $i"

# --- 3. build -----------------------------------------------------------------------------------
VERSION="$(cat version)"
VCS_REF="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
log "buildah bud $IMAGE (BASE_IMAGE=$BASE_IMAGE, version $VERSION, commit $VCS_REF)"
t0=$(now)
buildah bud --isolation chroot --pull=never --layers="$LAYERS" -f Dockerfile -t "$IMAGE" \
    -v "$HOST_CA:/run/build-ca.crt:ro" --build-arg BUILD_CA_BUNDLE=/run/build-ca.crt \
    --build-arg BASE_IMAGE="$BASE_IMAGE" \
    --build-arg TORCH_SOURCE=local \
    --build-arg TEMPLATES_SOURCE=local \
    --build-arg MASNET_SOURCE=local \
    --build-arg DEFAULT_BUNDLE=demo \
    "${SHA_ARGS[@]}" \
    --build-arg VERSION="$VERSION" --build-arg VCS_REF="$VCS_REF" \
    --build-arg BUILD_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    . 2>&1 | tee "$SCRATCH/build.log" || die "build (see $SCRATCH/build.log)"
BUILD_S=$(secs "$t0" "$(now)")
podman image exists "$IMAGE" || die "build (see $SCRATCH/build.log)"
SIZE_B=$(podman image inspect --format '{{.Size}}' "$IMAGE")
BASE_B=$(podman image inspect --format '{{.Size}}' "$BASE_IMAGE")
SIZE="$(python3 -c "import sys; print(f'{int(sys.argv[1]) / 1e9:.2f} GB (base {int(sys.argv[2]) / 1e6:.0f} MB)')" "$SIZE_B" "$BASE_B")"

log "labels"
LABELS="$(podman image inspect --format '{{json .Labels}}' "$IMAGE")"
echo "$LABELS"
for want in "\"org.opencontainers.image.version\":\"$VERSION\"" \
            "\"org.opencontainers.image.revision\":\"$VCS_REF\""; do
    grep -qF "$want" <<<"$LABELS" || die "label $want missing"
done
[ "$(podman image inspect --format '{{.Config.User}}' "$IMAGE")" = "1000:1000" ] || die "USER"

# --- 4. runs: non-root, read-only root, no network ----------------------------------------------
DATA="$SCRATCH/data"
rm -rf "$DATA" && mkdir -p "$DATA/bids" "$DATA/out"
chown -R 1000:1000 "$DATA"

log "--version"
VERSION_TEXT="$("${RUN[@]}" "$IMAGE" --version)" || die "--version"
echo "$VERSION_TEXT"
grep -qx "infant-tissue $VERSION" <<<"$VERSION_TEXT" || die "--version: app version"
grep -q "^model bundle demo-phantom-tiny .* sha256 [0-9a-f]\{64\}" <<<"$VERSION_TEXT" \
    || die "--version: bundle name and sha256"
grep -q "^torch .*, CUDA " <<<"$VERSION_TEXT" || die "--version: torch/CUDA"

log "no arguments: usage, exit 64 (no forced --help)"
set +e; "${RUN[@]}" "$IMAGE" >/dev/null 2>&1; rc=$?; set -e
[ "$rc" = 64 ] || die "no-argument run exited $rc, expected 64"

log "imported 3D-MASNet fixture bundle"
INFO="$("${RUN[@]}" "$IMAGE" model-info /opt/infant-tissue/models/masnet-iseg2019)" \
    || die "model-info of the imported bundle"
echo "$INFO"
grep -q "^members  *10 (all checksums verified" <<<"$INFO" || die "imported bundle: 10 members"

log "CPU fallback is logged (--device auto, no GPU)"
FALLBACK="$("${RUN[@]}" --entrypoint python "$IMAGE" -c 'import logging
logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s: %(message)s")
from infant_tissue.inference.devices import resolve_device
print("device:", resolve_device("auto"))' 2>&1)" || die "resolve_device(auto)"
echo "$FALLBACK"
grep -q "running on the CPU" <<<"$FALLBACK" || die "no CPU-fallback log line"

log "phantom dataset (make-phantoms in the container)"
"${RUN[@]}" -v "$DATA:/data" "$IMAGE" make-phantoms /data/bids --n-subjects 2 --seed 7 \
    --shape 64 72 64 --skull-stripped --overwrite || die "make-phantoms"

log "participant (2 subjects, --device cpu, --nprocs $NPROCS; work dir in the /tmp tmpfs; -vv)"
# The same infant-tissue executable as the ENTRYPOINT, wrapped to report peak memory.
MEASURE='import resource, subprocess, sys
rc = subprocess.call(["infant-tissue", *sys.argv[1:]])
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
peak = "n/a"
for f in ("/sys/fs/cgroup/memory/memory.max_usage_in_bytes", "/sys/fs/cgroup/memory.peak"):
    try:
        peak = f"{int(open(f).read()) / 2**20:.0f} MiB"
        break
    except (OSError, ValueError):
        pass
print(f"MEMORY largest process {rss:.0f} MiB; container cgroup peak (incl. tmpfs work dir) {peak}")
sys.exit(rc)'
t0=$(now)
"${RUN[@]}" -v "$DATA/bids:/bids:ro" -v "$DATA/out:/out" --entrypoint python "$IMAGE" \
    -c "$MEASURE" /bids /out participant --skull-stripped --device cpu \
    --nprocs "$NPROCS" --omp-nthreads "$NPROCS" -vv > "$SCRATCH/participant.log" 2>&1 \
    || { tail -n 40 "$SCRATCH/participant.log"; die "participant (see $SCRATCH/participant.log)"; }
PARTICIPANT_S=$(secs "$t0" "$(now)")
grep -E "infant_tissue(\.[a-z_.]+)? (INFO|WARNING|ERROR)|infant-tissue: error|^MEMORY" \
    "$SCRATCH/participant.log" | grep -v "windows × members" || true
grep -q "done in" "$SCRATCH/participant.log" || die "participant"
for sub in 01 02; do
    ls "$DATA"/out/sub-$sub/ses-*/anat/sub-${sub}_ses-*_space-T1w_dseg.nii.gz >/dev/null \
        || die "participant: no dseg for sub-$sub"
    ls "$DATA"/out/sub-${sub}_ses-*.html >/dev/null || die "participant: no report for sub-$sub"
done
grep -q "infant-tissue: error" "$SCRATCH/participant.log" && die "participant reported an error"

log "group"
t0=$(now)
"${RUN[@]}" -v "$DATA/bids:/bids:ro" -v "$DATA/out:/out" "$IMAGE" /bids /out group 2>&1 \
    | tee "$SCRATCH/group.log" || die "group"
GROUP_S=$(secs "$t0" "$(now)")
[ -n "$(ls -A "$DATA/out/group" 2>/dev/null)" ] || die "group: no group/ outputs"
[ -f "$DATA/out/group/report.html" ] || die "group: no group/report.html"
ls "$DATA/out/group"

log "group again as a user without a passwd entry (uid 4321, as under Singularity)"
cp -a "$DATA/out" "$DATA/out-4321" && chown -R 4321:4321 "$DATA/out-4321"
"${RUN_AS[@]}" 4321:4321 -v "$DATA/bids:/bids:ro" -v "$DATA/out-4321:/out" "$IMAGE" /bids /out group \
    > "$SCRATCH/group-4321.log" 2>&1 || { cat "$SCRATCH/group-4321.log"; die "group as uid 4321"; }
echo "ok"

# --- 5. summary ---------------------------------------------------------------------------------
log "per-stage times (nipype node elapsed, s; mean over subjects)"
python3 - "$SCRATCH/participant.log" <<'EOF'
import re, sys, collections
times = collections.defaultdict(list)
seen = set()  # nipype's own handler and the root one may both print a line
for line in open(sys.argv[1]):
    m = re.search(r'Finished "([^"]+)", elapsed time ([0-9.]+)s', line)
    if m and m.groups() not in seen:
        seen.add(m.groups())
        times[m.group(1)].append(float(m.group(2)))
if not times:
    sys.exit("no nipype node timings in the log")
for node, values in times.items():
    print(f"  {node:<18} {sum(values) / len(values):8.2f}  (n={len(values)})")
EOF
cat <<EOF

=== build-test summary ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, $(uname -m))
build time          ${BUILD_S} s (buildah bud --layers=$LAYERS, base image present)
image size          ${SIZE}
participant run     ${PARTICIPANT_S} s (2 subjects 64x72x64, CPU, --nprocs $NPROCS)
group run           ${GROUP_S} s
$(grep '^MEMORY' "$SCRATCH/participant.log")
--version:
$(sed 's/^/  /' <<<"$VERSION_TEXT")
build-test: OK
EOF
