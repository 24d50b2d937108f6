#!/usr/bin/env bash
# Build docker/Dockerfile with docker or podman (whichever works; ENGINE= to choose) and print the
# image it made: mlpipe:<hash of the build inputs>, also tagged mlpipe:latest. If an image with
# that hash exists, nothing is rebuilt. `make image` runs this; tests/system/test_containers.py too.
# pip's cache lives in the engine's build cache (a RUN --mount=type=cache in the Dockerfile); the
# torch and dependency layers depend on the dependency lists only (docker/requirements.py).
#
#   BASE_IMAGE   python:3.11-slim if the engine has it or can pull it, else the Debian bookworm
#                + python3 base that docker/base-image.sh makes with debootstrap (and caches)
#   TORCH_INDEX  empty (default): CPU torch from docker/wheels/, fetched here with
#                `pip download` (set PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
#                where PyPI's default torch is the CUDA build); a wheel index (.../whl/cu126):
#                torch from there, for a CUDA image
#   EXTRAS       extras installed in the step image (default dagster,wandb,onnx)
#   IMAGE_NAME   default mlpipe (mlpipe-inference for the inference image)
#
#   docker/build-image.sh [step|inference] [--print-tag]
#   step (default): docker/Dockerfile, every step; inference: docker/Dockerfile.inference, the
#   slim image (no torch) that inference steps use with inference.backend: onnx
set -euo pipefail
cd "$(dirname "$0")/.."
KIND=step
case "${1:-}" in step|inference) KIND="$1"; shift ;; esac
ENGINE="$(docker/engine.sh)"
if [ "$KIND" = inference ]; then
    IMAGE_NAME="${IMAGE_NAME:-mlpipe-inference}"
    DOCKERFILE=docker/Dockerfile.inference
else
    IMAGE_NAME="${IMAGE_NAME:-mlpipe}"
    DOCKERFILE=docker/Dockerfile
fi
EXTRAS="${EXTRAS:-dagster,wandb,onnx}"
TORCH_INDEX="${TORCH_INDEX:-}"
TORCH_VERSION="$(sed -n 's/^torch==//p' constraints.txt)"
SLIM="docker.io/library/python:3.11-slim"

if [ -z "${BASE_IMAGE:-}" ]; then
    if "$ENGINE" image inspect "$SLIM" >/dev/null 2>&1 \
        || timeout 120 "$ENGINE" pull -q "$SLIM" >/dev/null 2>&1; then
        BASE_IMAGE="$SLIM"
    else
        echo "build-image.sh: cannot pull $SLIM; using a debootstrap base" >&2
        BASE_IMAGE="$(ENGINE="$ENGINE" docker/base-image.sh)"
    fi
fi

# The tag: a hash of everything that goes into the image (files as .dockerignore lets them in).
inputs_hash() {
    {
        printf '%s\n' "base=$BASE_IMAGE" "extras=$EXTRAS" "torch=$TORCH_VERSION" \
            "torch_index=$TORCH_INDEX"
        find pyproject.toml constraints.txt README.md .dockerignore "$DOCKERFILE" \
            docker/requirements.py src \
            -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info/*' -print0 \
            | LC_ALL=C sort -z | xargs -0 sha256sum
    } | sha256sum | cut -c1-12
}
TAG="$IMAGE_NAME:$(inputs_hash)"
if [ "${1:-}" = "--print-tag" ]; then
    echo "$TAG"
    exit 0
fi
# One build at a time per engine and image name (parallel test workers, two checkouts, `make image`
# while tests run): a second caller waits, then finds the first one's image and reuses it.
LOCK="${TMPDIR:-/tmp}/mlpipe-build-image-$ENGINE-$(printf %s "$IMAGE_NAME" | tr -c 'A-Za-z0-9_.-' _).lock"
exec 9>"$LOCK"
if ! flock -w "${BUILD_LOCK_TIMEOUT_S:-3600}" 9; then
    echo "build-image.sh: another build held $LOCK for ${BUILD_LOCK_TIMEOUT_S:-3600} s; giving up" >&2
    exit 1
fi
if "$ENGINE" image inspect "$TAG" >/dev/null 2>&1; then
    echo "build-image.sh: $TAG exists (build inputs unchanged)" >&2
    "$ENGINE" tag "$TAG" "$IMAGE_NAME:latest"
    echo "$TAG"
    exit 0
fi

if [ "$KIND" = inference ]; then  # no torch wheel: the inference image has none
    args=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
else
# docker/wheels/ holds the CPU torch wheel only (or nothing: torch then comes from TORCH_INDEX).
mkdir -p docker/wheels
keep="torch-$TORCH_VERSION+cpu-*"
[ -z "$TORCH_INDEX" ] || keep="-"
find docker/wheels -type f ! -name "$keep" -delete
if [ -z "$TORCH_INDEX" ]; then
    "${PYTHON:-python3}" -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
        --platform manylinux_2_28_x86_64 "torch==$TORCH_VERSION" -d docker/wheels >&2
    if ! ls docker/wheels | grep -q '+cpu'; then
        echo "build-image.sh: pip fetched $(ls docker/wheels) (not the CPU build); set" \
            "PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu, or TORCH_INDEX for CUDA" >&2
        exit 1
    fi
fi

args=(--build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "EXTRAS=$EXTRAS"
      --build-arg "TORCH_VERSION=$TORCH_VERSION" --build-arg "TORCH_INDEX=$TORCH_INDEX")
fi
if [ "$ENGINE" = podman ]; then
    # runc (crun cannot set up cgroups on some hosts), chroot isolation, explicit rlimits (the
    # default ones can be refused). pip's cache is a cache mount in the Dockerfile.
    args+=(--runtime runc --isolation chroot --ulimit nofile=1024:4096 --ulimit nproc=1024:4096)
    # pip's CA bundle here (an HTTPS-intercepting proxy's CA), mounted read-only: in no layer.
    ca="${PIP_CERT:-$("${PYTHON:-python3}" -m pip config get global.cert 2>/dev/null || true)}"
    if [ -n "$ca" ] && [ -f "$ca" ]; then
        args+=(-v "$ca:/etc/pip-build-ca.crt:ro" --build-arg PIP_CA=/etc/pip-build-ca.crt)
    fi
fi
echo "build-image.sh: $ENGINE build $TAG (base $BASE_IMAGE)" >&2
"$ENGINE" build "${args[@]}" -f "$DOCKERFILE" -t "$TAG" -t "$IMAGE_NAME:latest" . >&2
echo "$TAG"
