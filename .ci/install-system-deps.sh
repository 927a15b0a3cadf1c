#!/usr/bin/env bash
# Installs what the test suite needs beyond Python packages, on a fresh Debian bookworm
# machine. Idempotent: a second run only checks.
set -euo pipefail

need_apt=()
for tool in git; do
    command -v "$tool" >/dev/null 2>&1 || need_apt+=("$tool")
done

if [ "${#need_apt[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing Debian packages: ${need_apt[*]} (run as root or install them)" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
