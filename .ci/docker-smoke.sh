#!/usr/bin/env bash
# Docker smoke test, fully offline: build both images with `--network none` from a
# debootstrap base and a host-side wheelhouse, train a small model with the jobs
# image, serve it with the scorer image, and check it from the host.
#
#   bash .ci/docker-smoke.sh            # what CI runs (tests/docker/ calls it too)
#   KEEP_IMAGES=0 bash .ci/docker-smoke.sh   # also remove the two images at the end
#
# Every container runs as the image's non-root uid, with a read-only root filesystem
# (--read-only) and /tmp as the only writable path (the chart's emptyDir), all
# capabilities dropped and no-new-privileges. The scorer uses the host network and
# binds 127.0.0.1: no traffic ever goes to a container's bridge address.
#
# Starts dockerd itself when no engine answers (installing docker.io and debootstrap
# with apt-get when they are missing), and stops it again at the end.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$PWD"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
BASE_IMAGE="${BASE_IMAGE:-triage-base:bookworm}"
TAG="${TAG:-smoke}"
SCORER_IMAGE="accident-triage-scorer:$TAG"
JOBS_IMAGE="accident-triage-jobs:$TAG"
WHEELHOUSE="$ROOT/.wheelhouse"
WHEEL_CACHE="${WHEEL_CACHE:-/var/cache/accident-triage/wheelhouse}"
EXPECTED_UID=10001
# docs/deploy.md, "The images": the scorer on the debootstrap base (122 MB) must stay
# within this budget (docker's MB: 10^6 bytes).
SCORER_MAX_BYTES="${SCORER_MAX_BYTES:-400000000}"
READY_TIMEOUT="${READY_TIMEOUT:-90}"
# The chart's emptyDir for /tmp, as a tmpfs.
TMPFS=(--tmpfs /tmp:rw,nosuid,nodev,size=256m,mode=1777)
HARDENING=(--read-only "${TMPFS[@]}" --cap-drop ALL --security-opt no-new-privileges)

started=$SECONDS
step() { printf '\n== [%4ss] %s\n' "$((SECONDS - started))" "$*"; }
fail() {
    if [ -n "${container:-}" ]; then
        echo "--- last scorer logs:" >&2
        docker logs --tail 30 "$container" >&2 2>&1 || true
    fi
    echo "FAIL: $*" >&2
    exit 1
}

work="$(mktemp -d /tmp/triage-smoke.XXXXXX)"
container=""
dockerd_pid=""
cleanup() {
    if [ -n "$container" ]; then
        docker logs "$container" >"$work/scorer.log" 2>&1 || true
        docker rm -f "$container" >/dev/null 2>&1 || true
    fi
    if [ "${KEEP_IMAGES:-1}" = "0" ]; then
        docker image rm -f "$SCORER_IMAGE" "$JOBS_IMAGE" >/dev/null 2>&1 || true
    fi
    if [ -n "$dockerd_pid" ]; then
        kill "$dockerd_pid" 2>/dev/null || true
        wait "$dockerd_pid" 2>/dev/null || true
    fi
    rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT

# --- 1. an engine ---------------------------------------------------------------
step "docker engine"
apt_install() {
    [ "$(id -u)" -eq 0 ] || fail "missing $*; install them (needs root)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
fi
if ! docker info >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || fail "no docker engine answers and only root can start dockerd"
    dockerd >"$work/dockerd.log" 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        kill -0 "$dockerd_pid" 2>/dev/null || {
            tail -20 "$work/dockerd.log" >&2
            fail "dockerd exited"
        }
        sleep 1
    done
    docker info >/dev/null 2>&1 || fail "dockerd did not answer within 60 s"
    echo "started dockerd (pid $dockerd_pid)"
fi

# --- 2. base image and wheelhouse -------------------------------------------------
step "base image $BASE_IMAGE (debootstrap, cached)"
bash .ci/docker-base-image.sh "$BASE_IMAGE"

step "wheelhouse (the lock files' wheels, cached until a lock changes)"
# Exactly the files the images' lock files pin, hash-checked, no resolver run; kept
# outside the work tree so a fresh clone (CI) reuses them, and hard-linked into the
# build context. Debian's python3 in the base is 3.11 on glibc 2.36, like the host
# and like the platform the locks are compiled for (`make lock`).
LOCKS=(requirements/scorer.lock requirements/jobs.lock requirements/build.lock)
stamp="$(cat "${LOCKS[@]}" | sha256sum | cut -c1-16)"
if [ "$(cat "$WHEEL_CACHE/.stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$WHEEL_CACHE.new"
    mkdir -p "$WHEEL_CACHE.new"
    # Wheels only: a wheel built here from an sdist would not match the lock's hashes.
    "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: --require-hashes -d "$WHEEL_CACHE.new" \
        "${LOCKS[@]/#/--requirement=}"
    echo "$stamp" >"$WHEEL_CACHE.new/.stamp"
    rm -rf "$WHEEL_CACHE"
    mv "$WHEEL_CACHE.new" "$WHEEL_CACHE"
fi
rm -rf "$WHEELHOUSE"
cp -al "$WHEEL_CACHE" "$WHEELHOUSE" 2>/dev/null || cp -a "$WHEEL_CACHE" "$WHEELHOUSE"
echo "$(find "$WHEELHOUSE" -name '*.whl' | wc -l) wheels, $(du -sh "$WHEELHOUSE" | cut -f1)"

# --- 3. the two images, with no network at all ----------------------------------------
build_args=(
    --network none
    --build-arg "BASE_IMAGE=$BASE_IMAGE"
    --build-arg PIP_NO_INDEX=1
    --build-arg "REVISION=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    --build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
)
step "docker build --target scorer --network none"
docker build --quiet "${build_args[@]}" --target scorer -t "$SCORER_IMAGE" . >/dev/null
step "docker build --target jobs --network none"
docker build --quiet "${build_args[@]}" --target jobs -t "$JOBS_IMAGE" . >/dev/null
docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' |
    grep -E "^(accident-triage-(scorer|jobs):$TAG|$BASE_IMAGE) " || true

for image in "$SCORER_IMAGE" "$JOBS_IMAGE"; do
    user="$(docker image inspect --format '{{.Config.User}}' "$image")"
    [ "$user" = "$EXPECTED_UID:$EXPECTED_UID" ] || fail "$image runs as '$user'"
done
[ "$(docker image inspect --format '{{.Config.Healthcheck.Test}}' "$SCORER_IMAGE")" != "[]" ] ||
    fail "$SCORER_IMAGE has no HEALTHCHECK"

step "scorer image: size budget, no forbidden package"
size="$(docker image inspect --format '{{.Size}}' "$SCORER_IMAGE")"
echo "$SCORER_IMAGE: $size bytes (budget $SCORER_MAX_BYTES)"
[ "$size" -le "$SCORER_MAX_BYTES" ] ||
    fail "$SCORER_IMAGE is $size bytes, over its budget of $SCORER_MAX_BYTES"
# The built image itself, not only its build: installed (dist-info) or importable.
forbidden="$(grep -v '^#' requirements/scorer-forbidden.txt | awk 'NF == 2')"
found="$(docker run --rm --network none --entrypoint python "$SCORER_IMAGE" -c '
import importlib.metadata as metadata, importlib.util, sys
installed = {(d.metadata["Name"] or "").lower() for d in metadata.distributions()}
pairs = zip(sys.argv[1::2], sys.argv[2::2])
print(" ".join(name for name, module in pairs if name in installed or importlib.util.find_spec(module)))
' $forbidden)"
[ -z "$found" ] || fail "forbidden in $SCORER_IMAGE: $found (requirements/scorer-forbidden.txt)"
echo "none of: $(echo "$forbidden" | awk '{print $1}' | tr '\n' ' ')"

# --- 4. a model, trained by the jobs image (non-root, read-only root) -----------------
step "train a small model with the jobs image"
registry="$work/registry"
logs="$work/inference-logs"
mkdir -p "$registry" "$logs"
chown "$EXPECTED_UID:$EXPECTED_UID" "$registry" "$logs" 2>/dev/null || chmod 0777 "$registry" "$logs"
docker run --rm --network none "${HARDENING[@]}" \
    -v "$registry:/registry" \
    -e TRAINING_RAW_URI='synthetic://?accidents=3000&seed=7' \
    -e TRAINING_REGISTRY_URI=/registry \
    -e TRAINING_REFERENCE_ROWS=2000 \
    "$JOBS_IMAGE" python -m training train >"$work/train.json" 2>"$work/train.log" || {
    tail -20 "$work/train.log" >&2
    fail "training in the jobs image failed"
}
grep -q '"promoted": true' "$work/train.json" || {
    cat "$work/train.json" >&2
    fail "the trained model was not promoted"
}
docker run --rm --network none "${HARDENING[@]}" "$JOBS_IMAGE" \
    python -m monitoring drift --help >/dev/null || fail "python -m monitoring drift --help failed"

# --- 5. serve it with the scorer image ---------------------------------------------------
port="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
step "scorer on 127.0.0.1:$port (host network, read-only, uid $EXPECTED_UID)"
container="triage-smoke-$$"
docker run -d --name "$container" --network host "${HARDENING[@]}" \
    -v "$registry:/registry:ro" \
    -v "$logs:/inference-logs" \
    -e SCORER_REGISTRY_URI=/registry \
    -e SCORER_INFERENCE_LOG_URI=/inference-logs \
    -e SCORER_RETRAIN_MODE=disabled \
    -e HEALTHCHECK_PORT="$port" \
    "$SCORER_IMAGE" --host 127.0.0.1 --port "$port" >/dev/null

base="http://127.0.0.1:$port"
deadline=$((SECONDS + READY_TIMEOUT))
until curl -fsS --max-time 2 "$base/ready" >"$work/ready.json" 2>/dev/null; do
    [ "$(docker inspect -f '{{.State.Running}}' "$container")" = "true" ] || {
        docker logs "$container" >&2 || true
        fail "the scorer container exited"
    }
    [ "$SECONDS" -lt "$deadline" ] || {
        docker logs "$container" 2>&1 | tail -20 >&2
        fail "/ready did not answer 200 within ${READY_TIMEOUT} s"
    }
    sleep 1
done
echo "ready: $(cat "$work/ready.json")"

payload="$("$PYTHON" -c 'import json; from core import contract; print(json.dumps(contract.example_row()))')"
curl -fsS --max-time 5 -H 'Content-Type: application/json' -d "$payload" "$base/predict" \
    >"$work/predict.json" || fail "POST /predict failed"
echo "predict: $(cat "$work/predict.json")"
"$PYTHON" - "$work/predict.json" <<'PY'
import json
import sys

body = json.load(open(sys.argv[1]))
assert body["label"] in ("prioritaire", "non-prioritaire"), body
assert 0.0 <= body["probability"] <= 1.0, body
PY
batch="$("$PYTHON" -c 'import json; from core import contract; row = contract.example_row(); print(json.dumps({"rows": [row, row]}))')"
curl -fsS --max-time 5 -H 'Content-Type: application/json' -d "$batch" "$base/predict/batch" \
    >"$work/batch.json" || fail "POST /predict/batch failed"
label="$("$PYTHON" -c 'import json, sys; print(json.dumps({"request_id": json.load(open(sys.argv[1]))["request_id"], "label": 1}))' "$work/predict.json")"
curl -fsS --max-time 30 -H 'Content-Type: application/json' -d "$label" "$base/feedback" \
    >"$work/feedback.json" || fail "POST /feedback failed"
echo "batch of 2 and a feedback label: $(cat "$work/feedback.json")"
curl -fsS --max-time 5 "$base/metrics" | grep -q '^triage_model_loaded 1' ||
    fail "/metrics does not report a loaded model"

uid="$(docker exec "$container" id -u)"
[ "$uid" = "$EXPECTED_UID" ] || fail "the scorer runs as uid $uid, expected $EXPECTED_UID"
[ "$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$container")" = "true" ] ||
    fail "the root filesystem is writable"
docker exec "$container" sh -c 'touch /opt/venv/x' 2>/dev/null &&
    fail "the root filesystem accepted a write"
echo "uid $uid, read-only root filesystem"

# The image's HEALTHCHECK (first probe after its 15 s interval).
for _ in $(seq 1 40); do
    health="$(docker inspect -f '{{.State.Health.Status}}' "$container")"
    [ "$health" = "starting" ] || break
    sleep 1
done
[ "$health" = "healthy" ] || fail "HEALTHCHECK reports '$health'"
echo "HEALTHCHECK: $health"

# SIGTERM flushes the inference log before the process exits.
step "docker stop (SIGTERM) flushes the inference log"
docker stop --time 30 "$container" >/dev/null
code="$(docker inspect -f '{{.State.ExitCode}}' "$container")"
[ "$code" = "0" ] || {
    docker logs "$container" 2>&1 | tail -20 >&2
    fail "the scorer exited with $code after SIGTERM"
}
find "$logs" -name '*.parquet' | grep -q . || fail "no inference-log file after SIGTERM"
echo "exit code 0, $(find "$logs" -name '*.parquet' | wc -l) parquet file(s)"
# Read back by the scorer image's own (pruned) pyarrow: 3 scored rows, 1 label.
docker run --rm --network none "${HARDENING[@]}" -v "$logs:/inference-logs:ro" \
    --entrypoint python "$SCORER_IMAGE" -c '
import pathlib
import pyarrow.parquet as pq
files = sorted(pathlib.Path("/inference-logs").rglob("*.parquet"))
labels = sum(pq.read_table(f).num_rows for f in files if "feedback" in f.parts)
scored = sum(pq.read_table(f).num_rows for f in files if "feedback" not in f.parts)
assert (scored, labels) == (3, 1), (scored, labels, [str(f) for f in files])
print(f"read back in the scorer image: {scored} scored rows, {labels} label")
' || fail "the scorer image cannot read back what it wrote"
docker rm "$container" >/dev/null
container=""

# --- 6. the Evidently UI from the jobs image, as the chart runs it ---------------------
port="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
step "Evidently UI from the jobs image on 127.0.0.1:$port (read-only root, a volume for /data)"
ui_data="$work/evidently-ui"
mkdir -p "$ui_data"
chown "$EXPECTED_UID:$EXPECTED_UID" "$ui_data" 2>/dev/null || chmod 0777 "$ui_data"
ui_secret="smoke-$$"
container="triage-smoke-ui-$$"
docker run -d --name "$container" --network host "${HARDENING[@]}" \
    -v "$ui_data:/data" -e DO_NOT_TRACK=1 -e EVIDENTLY_SECRET="$ui_secret" \
    "$JOBS_IMAGE" python -m evidently.cli ui --host=127.0.0.1 --port="$port" --workspace=/data \
    >/dev/null
deadline=$((SECONDS + READY_TIMEOUT))
until curl -fsS --max-time 2 "http://127.0.0.1:$port/api/version" >"$work/ui-version.json" 2>/dev/null; do
    [ "$(docker inspect -f '{{.State.Running}}' "$container")" = "true" ] || fail "the Evidently UI container exited"
    [ "$SECONDS" -lt "$deadline" ] || fail "the Evidently UI did not answer within ${READY_TIMEOUT} s"
    sleep 1
done
echo "version: $(cat "$work/ui-version.json")"
# A write as the drift job makes it (with the secret), then read back; without the
# secret the UI refuses it.
"$PYTHON" - "http://127.0.0.1:$port" "$ui_secret" <<'PY' || fail "the Evidently UI did not store a project"
import sys

from monitoring.workspace import EvidentlyUi, WorkspaceError

url, secret = sys.argv[1:]
try:
    EvidentlyUi(url).ensure_project("smoke-without-secret")
except WorkspaceError:
    pass
else:
    raise SystemExit("a write without the secret was accepted")
project = EvidentlyUi(url, secret=secret).ensure_project("smoke")
assert EvidentlyUi(url).find_project(project) is not None, project
print(f"project {project} stored and read back")
PY
find "$ui_data" -type f | grep -q . || fail "nothing written under the UI's /data volume"
docker rm -f "$container" >/dev/null
container=""

step "docker smoke test passed in $((SECONDS - started)) s"
