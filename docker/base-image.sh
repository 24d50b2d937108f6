#!/usr/bin/env bash
# A Debian bookworm base image with python3 (3.11) and python3-venv, made with debootstrap, for
# building docker/Dockerfile where no image registry is reachable (python:3.11-slim cannot be
# pulled). Cached: does nothing if the image already exists. Prints the image name.
#
#   docker/base-image.sh [IMAGE]          # default localhost/debian-bookworm:python3
#   ENGINE=podman|docker                  # default: whichever works (docker/engine.sh)
#   MIRROR=http://...                     # default: the Debian mirror apt uses on this machine
#
# Needs root and debootstrap (apt-get install -y debootstrap).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
IMAGE="${1:-localhost/debian-bookworm:python3}"
ENGINE="${ENGINE:-$("$here/engine.sh")}"
SUITE="${SUITE:-bookworm}"

if "$ENGINE" image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "$IMAGE"
    exit 0
fi

# The mirror apt already uses here (deb822 "URIs:" or one-line "deb URL suite ..."), read at run
# time: never a host name written into the repository.
apt_mirror() {
    local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list)
    local f
    for f in "${files[@]}"; do
        [ -f "$f" ] || continue
        awk '
            /^[[:space:]]*#/ {next}
            /^URIs:/ {for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) {print $i; exit}}
            /^deb[[:space:]]/ {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\// && $i ~ /\/debian\/?$/) {print $i; exit}}
        ' "$f"
    done | head -n1
}
MIRROR="${MIRROR:-$(apt_mirror)}"
if [ -z "$MIRROR" ]; then
    echo "base-image.sh: no Debian mirror found in /etc/apt/sources.list*; set MIRROR=" >&2
    exit 1
fi
command -v debootstrap >/dev/null || {
    echo "base-image.sh: debootstrap is missing (apt-get install -y debootstrap)" >&2
    exit 1
}

root="$(mktemp -d /var/tmp/mlpipe-rootfs.XXXXXX)"
trap 'rm -rf "$root"' EXIT
echo "base-image.sh: debootstrap $SUITE from $MIRROR" >&2
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$SUITE" "$root" "$MIRROR" >&2
# No package caches or apt lists in the image.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*
tar --numeric-owner -C "$root" -c . \
    | "$ENGINE" import --change 'CMD ["/bin/bash"]' - "$IMAGE" >&2
echo "$IMAGE"
