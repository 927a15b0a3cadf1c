#!/usr/bin/env bash
# Installs checkov into its own virtual environment, idempotently, and prints the
# path of the executable.
#
# Not in the project's venv on purpose: checkov pins old versions of packaging and
# boto3 (packaging<24 breaks pytest>=9, and boto3 is a runtime dependency of the
# project), so installing it next to the project downgrades them.
# The helm tests find it through $CHECKOV, then PATH, then $CHECKOV_VENV/bin/checkov.
set -euo pipefail

CHECKOV_VENV="${CHECKOV_VENV:-/opt/checkov}"
CHECKOV_SPEC="${CHECKOV_SPEC:-checkov>=3.2,<4}"
PYTHON="${PYTHON:-python3}"

if [ -x "$CHECKOV_VENV/bin/checkov" ] && "$CHECKOV_VENV/bin/checkov" --version >/dev/null 2>&1; then
    echo "$CHECKOV_VENV/bin/checkov"
    exit 0
fi
"$PYTHON" -m venv "$CHECKOV_VENV"
"$CHECKOV_VENV/bin/pip" install --quiet --disable-pip-version-check "$CHECKOV_SPEC" >&2
"$CHECKOV_VENV/bin/checkov" --version >&2
echo "$CHECKOV_VENV/bin/checkov"
