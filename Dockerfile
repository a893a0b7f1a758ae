# syntax=docker/dockerfile:1
#
# infant-tissue BIDS-App: CUDA PyTorch (from the base image), locked Python dependencies, the app,
# the TemplateFlow infant templates and the published 3D-MASNet ensemble. Everything is fetched at
# build time: the container needs no network, no writable HOME and runs as any user on a
# read-only root filesystem (caches go to /tmp). Usage, GPU/CPU and Singularity: docs/usage.md.
#
#   docker build -t infant-tissue:$(cat version) .
#
# needs no build argument: the 3D-MASNet weight files are checked against the git blob ids of the
# pinned commit (containers/fetch_masnet.py). Optional labels: --build-arg VERSION=$(cat version)
# --build-arg VCS_REF=$(git rev-parse HEAD) --build-arg BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ).
#
# Offline builds: every download can come from containers/local/ instead (ignored by git):
#   TORCH_SOURCE=local      containers/local/torch-*.whl   (a base image without torch)
#   TEMPLATES_SOURCE=local  containers/local/templateflow/ (a TemplateFlow home)
#   MASNET_SOURCE=local     containers/local/3D-MASNet/    (a copy of the repository's files)
# containers/build-test.sh builds this file that way on a Debian base with the CPU wheel.

ARG BASE_IMAGE=pytorch/pytorch:2.8.0-cuda12.9-cudnn9-runtime
FROM ${BASE_IMAGE}

ARG BASE_IMAGE
# Interpreter of the base image; the app's virtual environment sees its packages (torch).
ARG PYTHON=python3
# base: torch comes with BASE_IMAGE (CUDA build); local: install containers/local/torch-*.whl
ARG TORCH_SOURCE=base
# CA bundle visible inside the build for networks that re-sign TLS (see containers/with-build-ca.sh)
ARG BUILD_CA_BUNDLE=

ENV VIRTUAL_ENV=/opt/infant-tissue/venv \
    PATH=/opt/infant-tissue/venv/bin:${PATH} \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONNOUSERSITE=1 \
    LANG=C.UTF-8 \
    LC_ALL=C.UTF-8

# Small build inputs are copied (their content is part of every builder's cache key, buildah's
# included); the large optional ones in containers/local/ are bind-mounted, so they never stay in
# a layer. The helpers stay in the image under /opt/infant-tissue/build as a record of the build.
ARG BUILD_DIR=/opt/infant-tissue/build
COPY containers/requirements.lock containers/with-build-ca.sh ${BUILD_DIR}/

# --- PyTorch -----------------------------------------------------------------------------------
RUN --mount=type=bind,source=containers/local,target=/build/local \
    set -eu; \
    "${PYTHON}" -m venv --system-site-packages "${VIRTUAL_ENV}"; \
    case "${TORCH_SOURCE}" in \
      base) ;; \
      local) sh "${BUILD_DIR}/with-build-ca.sh" pip install --no-cache-dir \
               -c "${BUILD_DIR}/requirements.lock" /build/local/torch-*.whl ;; \
      *) echo "TORCH_SOURCE must be 'base' or 'local'" >&2; exit 2 ;; \
    esac; \
    python -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda)" \
      || { echo "no torch: use a PyTorch base image or TORCH_SOURCE=local" >&2; exit 1; }

# --- locked dependencies (containers/requirements.lock; torch excluded) -------------------------
RUN PIP_CONSTRAINT="${BUILD_DIR}/requirements.lock" sh "${BUILD_DIR}/with-build-ca.sh" \
      pip install --no-cache-dir -r "${BUILD_DIR}/requirements.lock"

# --- the app -----------------------------------------------------------------------------------
COPY pyproject.toml version README.md ${BUILD_DIR}/src/
COPY infant_tissue ${BUILD_DIR}/src/infant_tissue
RUN set -eu; \
    cp -r "${BUILD_DIR}/src" /tmp/src; \
    find /tmp/src -name __pycache__ -prune -exec rm -rf {} +; \
    pip install --no-cache-dir --no-deps --no-build-isolation /tmp/src; \
    rm -rf /tmp/src

# --- TemplateFlow infant templates, read-only ---------------------------------------------------
# templateflow: download with the TemplateFlow client; local: copy containers/local/templateflow.
# Each cohort then gets its cerebellum + brain-stem mask (derived from the package's adult label
# map through TemplateFlow's MNI152NLin6Asym -> MNIInfant transform, or by registration), checked
# for plausibility; a lab's folder that already holds the masks keeps them.
ARG TEMPLATES_SOURCE=templateflow
ARG TEMPLATE_COHORTS="1 2 3 4 5"
COPY containers/fetch_templates.py ${BUILD_DIR}/
RUN --mount=type=bind,source=containers/local,target=/build/local \
    sh "${BUILD_DIR}/with-build-ca.sh" python "${BUILD_DIR}/fetch_templates.py" \
      --source "${TEMPLATES_SOURCE}" --home /opt/templateflow \
      --local /build/local/templateflow --cohorts ${TEMPLATE_COHORTS} \
    && chmod -R a+rX,go-w /opt/templateflow

# --- the published 3D-MASNet ensemble -> weight bundle --------------------------------------------
# url: {MASNET_REPO}/raw/{MASNET_COMMIT}/weights/ensemble/{0..9}.h5; local: containers/local/
# 3D-MASNet/ laid out like the repository; none: no MASNet bundle (DEFAULT_BUNDLE=demo).
# Each file must have the git blob id pinned in fetch_masnet.py for MASNET_COMMIT (other files or
# commits: MASNET_BLOB_IDS, space-separated); MASNET_SHA256_<i>, when given, is checked as well.
ARG MASNET_SOURCE=url
ARG MASNET_REPO=https://github.com/RicardoZiTseng/3D-MASNet
ARG MASNET_COMMIT=0930fcff8c96e38616c19a880ba18d252958a967
ARG MASNET_BLOB_IDS=
ARG MASNET_SHA256_0=
ARG MASNET_SHA256_1=
ARG MASNET_SHA256_2=
ARG MASNET_SHA256_3=
ARG MASNET_SHA256_4=
ARG MASNET_SHA256_5=
ARG MASNET_SHA256_6=
ARG MASNET_SHA256_7=
ARG MASNET_SHA256_8=
ARG MASNET_SHA256_9=
# Bundle used without --models: masnet (the imported ensemble) or demo (the packaged phantom demo)
ARG DEFAULT_BUNDLE=masnet
COPY containers/fetch_masnet.py ${BUILD_DIR}/
RUN --mount=type=bind,source=containers/local,target=/build/local \
    set -eu; \
    models=/opt/infant-tissue/models; \
    mkdir -p "${models}"; \
    case "${MASNET_SOURCE}" in \
      url|local) sh "${BUILD_DIR}/with-build-ca.sh" python "${BUILD_DIR}/fetch_masnet.py" \
                   --source "${MASNET_SOURCE}" --repo "${MASNET_REPO}" --commit "${MASNET_COMMIT}" \
                   --local /build/local/3D-MASNet --out "${models}/masnet-iseg2019" ;; \
      none) ;; \
      *) echo "MASNET_SOURCE must be 'url', 'local' or 'none'" >&2; exit 2 ;; \
    esac; \
    case "${DEFAULT_BUNDLE}" in \
      masnet) target="${models}/masnet-iseg2019" ;; \
      demo) target="$(python -c 'import infant_tissue, os; print(os.path.join(os.path.dirname(infant_tissue.__file__), "data", "bundles", "demo"))')" ;; \
      *) echo "DEFAULT_BUNDLE must be 'masnet' or 'demo'" >&2; exit 2 ;; \
    esac; \
    test -f "${target}/model.json" || { echo "${target}: no bundle" >&2; exit 1; }; \
    ln -s "${target}" "${models}/default"; \
    chmod -R a+rX,go-w "${models}"

# --- run-time environment: no network, no HOME, caches in /tmp, threads from --omp-nthreads ------
ENV INFANT_TISSUE_MODELS=/opt/infant-tissue/models/default \
    TEMPLATEFLOW_HOME=/opt/templateflow \
    TEMPLATEFLOW_AUTOUPDATE=0 \
    NIPYPE_NO_ET=1 \
    NO_ET=1 \
    NIPYPE_CONFIG_DIR=/opt/infant-tissue/etc/nipype \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    XDG_CONFIG_HOME=/tmp/.config \
    MPLCONFIGDIR=/tmp/.config/matplotlib \
    TORCH_HOME=/tmp/.cache/torch \
    PYTHONUNBUFFERED=1

ARG VERSION=0.1.0
ARG APP_UID=1000
ARG APP_GID=1000
RUN set -eu; \
    mkdir -p "${NIPYPE_CONFIG_DIR}"; \
    getent group "${APP_GID}" >/dev/null || groupadd --gid "${APP_GID}" infant; \
    getent passwd "${APP_UID}" >/dev/null \
      || useradd --uid "${APP_UID}" --gid "${APP_GID}" --no-create-home --home-dir /tmp \
           --shell /usr/sbin/nologin infant; \
    unreadable="$(find /opt/infant-tissue /opt/templateflow ! -perm -o+r -print -quit)"; \
    test -z "${unreadable}" || { echo "${unreadable}: not readable by other users" >&2; exit 1; }; \
    python -c "import ants, bids, matplotlib, monai, nibabel, nilearn, nipype, templateflow"; \
    infant-tissue model-info "${INFANT_TISSUE_MODELS}" >/dev/null; \
    infant-tissue --version; \
    test "$(infant-tissue --version | head -n 1)" = "infant-tissue ${VERSION}" \
      || { echo "build argument VERSION=${VERSION} differs from the package version" >&2; exit 1; }; \
    rm -rf /tmp/.cache /tmp/.config

ARG VCS_REF=unknown
ARG BUILD_DATE=unknown
LABEL org.opencontainers.image.title="infant-tissue" \
      org.opencontainers.image.description="BIDS-App: CSF/GM/WM segmentation of 6-month-old infant T1w+T2w MRI with 3D-MASNet" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE_IMAGE}" \
      org.opencontainers.image.documentation="docs/usage.md" \
      io.github.infant-tissue.masnet.repository="${MASNET_REPO}" \
      io.github.infant-tissue.masnet.commit="${MASNET_COMMIT}" \
      io.github.infant-tissue.masnet.source="${MASNET_SOURCE}" \
      io.github.infant-tissue.templates.source="${TEMPLATES_SOURCE}" \
      io.github.infant-tissue.default-bundle="${DEFAULT_BUNDLE}"

USER ${APP_UID}:${APP_GID}
WORKDIR /tmp
ENTRYPOINT ["infant-tissue"]
