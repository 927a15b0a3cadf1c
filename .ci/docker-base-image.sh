#!/usr/bin/env bash
# Builds the offline stand-in for python:3.11-slim: Debian bookworm (minbase) with
# Debian's python3 (3.11) and python3-venv, made with debootstrap and `docker import`.
# No registry can be pulled from in CI, but Debian's package mirror is reachable.
#
# Idempotent: does nothing when the image already exists (the slow part, about two
# minutes, runs once per machine). Usage: docker-base-image.sh [IMAGE]
set -euo pipefail

IMAGE="${1:-${BASE_IMAGE:-triage-base:bookworm}}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE="${DEBIAN_SUITE:-bookworm}"

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "base image $IMAGE already exists"
    exit 0
fi
command -v debootstrap >/dev/null 2>&1 || {
    echo "debootstrap is missing (apt-get install -y debootstrap)" >&2
    exit 1
}

rootfs="$(mktemp -d /tmp/triage-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
started=$SECONDS
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$SUITE" "$rootfs" "$MIRROR" >/tmp/triage-debootstrap.log 2>&1 || {
    tail -20 /tmp/triage-debootstrap.log >&2
    exit 1
}
# What a container image does not need: package lists, caches, docs, man pages.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*.log
tar --numeric-owner -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --message "debootstrap $SUITE minbase + python3 (offline stand-in for python:3.11-slim)" \
    - "$IMAGE" >/dev/null
echo "built base image $IMAGE in $((SECONDS - started)) s"
