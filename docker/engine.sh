#!/usr/bin/env bash
# Prints the container engine that works here: $ENGINE if set, else docker if its daemon answers,
# else podman if it runs. Exits 1 (and says how to get one) if neither does.
set -euo pipefail
if [ -n "${ENGINE:-}" ]; then
    echo "$ENGINE"
    exit 0
fi
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    echo docker
elif command -v podman >/dev/null && podman info >/dev/null 2>&1; then
    echo podman
else
    echo "no container engine: install docker, or podman (Debian: apt-get install -y podman" \
        "buildah runc debootstrap)" >&2
    exit 1
fi
