#!/usr/bin/env bash
# Installs what the test suite needs beyond the project's Python packages, on a fresh
# Debian bookworm machine: the real servers the tests start (Prometheus, promtool,
# Pushgateway), headless Chromium for the Evidently UI's browser test, Helm and checkov
# for the chart, and Docker with debootstrap for the offline image build. Idempotent: a
# second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package that provides it
declare -A PACKAGES=(
    [git]=git
    [prometheus]=prometheus
    [promtool]=prometheus
    [prometheus-pushgateway]=prometheus-pushgateway
    [npm]=npm
    [unzip]=unzip
    [docker]=docker.io
    [dockerd]=docker.io
    [debootstrap]=debootstrap
    [wrk]=wrk
    # The browser test of the Evidently UI (tests/monitoring/test_workspace_browser.py).
    [chromium]=chromium
)

missing=()
for tool in "${!PACKAGES[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("${PACKAGES[$tool]}")
done

if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing Debian packages: ${missing[*]} (run as root or install them)" >&2
        exit 1
    fi
    mapfile -t unique < <(printf '%s\n' "${missing[@]}" | sort -u)
    echo "installing Debian packages: ${unique[*]}"
    apt-get update -qq
    # The Debian packages would start their services on a machine with systemd; the
    # tests start their own servers on random loopback ports instead.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${unique[@]}" >/dev/null
fi

bash .ci/install-helm.sh
bash .ci/build-go-tools.sh
bash .ci/install-checkov.sh >/dev/null
