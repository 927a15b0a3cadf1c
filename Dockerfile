# Two images from one file (see docs/deploy.md for the sizes and the choice):
#
#   docker build --target scorer -t accident-triage-scorer .   # python -m service
#   docker build --target jobs   -t accident-triage-jobs   .   # training + drift jobs
#
# `scorer` installs only the `service` extra (FastAPI, uvicorn, onnxruntime): no
# scikit-learn, no Evidently, no pandas, no Kubernetes client (core/k8s_jobs.py talks to
# the API server itself); requirements/scorer-forbidden.txt lists what must stay out,
# and the build fails when one of them is installed. `jobs` installs `training` and
# `monitoring`. Each installs its lock file (requirements/scorer.lock,
# requirements/jobs.lock: every version pinned, every file hash-checked; `make lock`
# writes them), so an image gets the versions the tests ran against.
#
# Both run as uid/gid 10001 and work on a read-only root filesystem: the only path
# they write is /tmp (HOME points there), which the chart mounts as an emptyDir and
# `docker run --read-only --tmpfs /tmp` provides for plain docker.
#
# Offline builds (CI): no registry pull, no PyPI. Build with
#   --build-arg BASE_IMAGE=<a local image with python3 + venv>
#   --build-arg PIP_NO_INDEX=1
# and the wheels of the lock files in ./.wheelhouse (copied to /wheels,
# PIP_FIND_LINKS), under `docker build --network none`. .ci/docker-smoke.sh does
# exactly that.
# No `# syntax=` line on purpose: BuildKit would try to pull that frontend image.

ARG BASE_IMAGE=python:3.11-slim

# --- base: the interpreter, the user, the environment every stage shares ----------
FROM ${BASE_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/tmp \
    LANG=C.UTF-8
# The same fixed ids in both images; the chart's securityContext uses them.
RUN groupadd --system --gid 10001 triage \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
        --shell /usr/sbin/nologin triage

# --- builder: pip settings and the wheelhouse, shared by the two venv builds --------
FROM base AS builder
# pip reads these from the environment. The defaults build from PyPI;
# CI sets PIP_NO_INDEX=1 and puts the wheels in ./.wheelhouse.
ARG PIP_NO_INDEX=0
ARG PIP_FIND_LINKS=/wheels
ARG PIP_INDEX_URL=https://pypi.org/simple
ENV PIP_NO_INDEX=${PIP_NO_INDEX} \
    PIP_FIND_LINKS=${PIP_FIND_LINKS} \
    PIP_INDEX_URL=${PIP_INDEX_URL}
# `.wheelhouse*` matches nothing on a user's machine; the build lock always matches,
# so the COPY never fails (and, unlike pyproject.toml, changes only with the locks).
# pip ignores files that are not distributions.
COPY requirements/build.lock .wheelhouse* /wheels/
WORKDIR /src
COPY requirements/build.lock ./requirements/
# The pip that installs the project's own code (below) lives outside the image's venv,
# with the locked build backend: the project builds with --no-build-isolation, so no
# unpinned setuptools is fetched.
RUN python3 -m venv /opt/tools \
    && /opt/tools/bin/pip install --quiet --require-hashes -r requirements/build.lock

# Two layers per image, so a code change rebuilds seconds, not the dependencies:
#  * /opt/venv: the dependencies only, installed from the image's lock file (reused
#    until that lock changes; pyproject.toml is not needed yet) with --no-deps (the
#    lock is complete; Debian's pip 23 refuses a hash-checked install in which a
#    package asks for another's extra, as evidently does) and checked by `pip check`.
#    A venv, so the interpreter's location (/usr/local/bin on python:*-slim, /usr/bin
#    on Debian) does not matter. Then what no process of ours imports goes: the test
#    suites inside the big scientific packages (tens of MB; only those: evidently has a
#    runtime package named `tests`) and pip/setuptools. A .pth file puts /opt/app on
#    the path.
#  * /opt/app: the project (code and its dist-info), installed with --no-deps --target.

# --- the scorer: the `service` extra only ----------------------------------------------
# The scorer also loses the parts of its libraries it never loads (the figures are in
# docs/deploy.md, "The images"); .ci/docker-smoke.sh serves, logs and reads back
# parquet with what is left:
#  * pyarrow: Flight (33 MB) and the S3 filesystem (17 MB: the scorer writes through
#    boto3), the other filesystems, ORC, the Substrait bindings, the C++ test module,
#    headers and Cython sources, and two of the three copies pip makes of each
#    libarrow_python* library (the extensions load the .so.<major> one). libarrow,
#    compute, parquet, dataset, acero and substrait stay: libarrow_python needs them.
#  * botocore: the API models of every service but S3 and those its credential
#    providers call (STS for web identity and roles, SSO, SSO-OIDC, sign-in): 28 MB.
#  * onnxruntime: libonnxruntime.so (35 MB), the C API library for programs linked
#    against it: the Python binding carries its own copy of the runtime and never
#    loads it. And the transformer, quantization and model tools (scripts for
#    building models, never imported by an InferenceSession).
#  * numpy: f2py, distutils, and the C headers and static library for building
#    extensions.
FROM builder AS build-scorer
COPY requirements/scorer.lock ./requirements/
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --quiet --no-deps --require-hashes \
        -r requirements/scorer.lock \
    && /opt/venv/bin/pip check --quiet \
    && cd /opt/venv/lib/python3*/site-packages \
    && for package in numpy pyarrow; do \
        if [ -d "$package" ]; then find "$package" -depth -type d -name tests -exec rm -rf {} +; fi; \
    done \
    && rm -rf \
        pyarrow/libarrow_flight.so.* pyarrow/libarrow_python_flight.so* pyarrow/_flight.*.so \
        pyarrow/libarrow_s3.so.* pyarrow/_s3fs.*.so pyarrow/_gcsfs.*.so pyarrow/_azurefs.*.so \
        pyarrow/_hdfs.*.so pyarrow/_orc.*.so pyarrow/_dataset_orc.*.so pyarrow/_substrait.*.so \
        pyarrow/_pyarrow_cpp_tests.*.so pyarrow/include pyarrow/includes pyarrow/src \
        pyarrow/*.pyx pyarrow/*.pxd pyarrow/*.pxi \
        pyarrow/libarrow_python.so pyarrow/libarrow_python.so.*.*.* \
        pyarrow/libarrow_python_parquet_encryption.so \
        pyarrow/libarrow_python_parquet_encryption.so.*.*.* \
        onnxruntime/capi/libonnxruntime.so.* \
        onnxruntime/transformers onnxruntime/quantization onnxruntime/tools \
        numpy/f2py numpy/distutils numpy/_core/include numpy/_core/lib \
    && find botocore/data -mindepth 1 -maxdepth 1 -type d ! -name s3 ! -name sts \
        ! -name sso ! -name sso-oidc ! -name signin -exec rm -rf {} + \
    && echo /opt/app > accident_triage_app.pth \
    && /opt/venv/bin/pip uninstall --quiet --yes pip setuptools
COPY requirements/scorer-forbidden.txt ./requirements/
COPY pyproject.toml ./
COPY core ./core
COPY training ./training
COPY service ./service
COPY monitoring ./monitoring
# The import line fails the build when the scorer would need something outside its
# extra (or something pruned above); the last one when a forbidden package is back.
RUN /opt/tools/bin/pip install --quiet --no-deps --no-build-isolation --no-compile --target /opt/app . \
    && python -m compileall -q --invalidation-mode unchecked-hash /opt/app >/dev/null \
    && python -c "import service.app, service.__main__, core.k8s_jobs, onnxruntime, pyarrow.parquet, boto3" \
    && python -c "from importlib.metadata import version; version('accident-triage')" \
    && python -c 'import importlib.metadata as metadata, importlib.util, sys; \
rows = [line.split() for line in open(sys.argv[1]) if line.strip() and not line.startswith("#")]; \
installed = {(d.metadata["Name"] or "").lower() for d in metadata.distributions()}; \
found = [name for name, module in rows if name in installed or importlib.util.find_spec(module)]; \
sys.exit("forbidden in the scorer image: " + ", ".join(found) if found else None)' \
        requirements/scorer-forbidden.txt

# --- scorer ------------------------------------------------------------------------
FROM base AS scorer
COPY --from=build-scorer /opt/venv /opt/venv
COPY --from=build-scorer /opt/app /opt/app
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
# For plain docker only (Kubernetes uses the chart's probes). HEALTHCHECK_PORT
# follows a --port other than 8000.
ENV HEALTHCHECK_PORT=8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('HEALTHCHECK_PORT', '8000'), timeout=2)"]
ENTRYPOINT ["python", "-m", "service"]
CMD ["--host", "0.0.0.0", "--port", "8000"]
# Labels last: CREATED changes on every build and must not invalidate the layers above.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="accident-triage-scorer" \
      org.opencontainers.image.description="Scores BAAC road accidents by severity (FastAPI + onnxruntime)." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="MIT"

# --- the jobs: the `training` and `monitoring` extras -----------------------------------
FROM builder AS build-jobs
# --no-compile: no .pyc for the dependencies. The image is much smaller and builds
# faster; a job then compiles its imports in memory (the root filesystem is
# read-only), seconds more per run of a job that runs for minutes (the figures are in
# docs/deploy.md, "The images").
# The scorer keeps its .pyc: its start-up is on the path of every scale-up.
COPY requirements/jobs.lock ./requirements/
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --quiet --no-compile --no-deps --require-hashes \
        -r requirements/jobs.lock \
    && /opt/venv/bin/pip check --quiet \
    && cd /opt/venv/lib/python3*/site-packages \
    && for package in numpy pandas pyarrow scipy sklearn statsmodels; do \
        if [ -d "$package" ]; then find "$package" -depth -type d -name tests -exec rm -rf {} +; fi; \
    done \
    && echo /opt/app > accident_triage_app.pth \
    && /opt/venv/bin/pip uninstall --quiet --yes pip setuptools
COPY pyproject.toml ./
COPY core ./core
COPY training ./training
COPY service ./service
COPY monitoring ./monitoring
RUN /opt/tools/bin/pip install --quiet --no-deps --no-build-isolation --no-compile --target /opt/app . \
    && python -m compileall -q --invalidation-mode unchecked-hash /opt/app >/dev/null \
    && python -c "import training.train, monitoring.drift, core.k8s_jobs, sklearn, evidently" \
    && python -c "from importlib.metadata import version; version('accident-triage')"

# --- jobs: training and drift --------------------------------------------------------
FROM base AS jobs
COPY --from=build-jobs /opt/venv /opt/venv
COPY --from=build-jobs /opt/app /opt/app
USER 10001:10001
WORKDIR /tmp
# Batch jobs: nothing to health-check.
HEALTHCHECK NONE
CMD ["python", "-m", "training", "--help"]
# Labels last: CREATED changes on every build and must not invalidate the layers above.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="accident-triage-jobs" \
      org.opencontainers.image.description="Training (python -m training) and drift (python -m monitoring) jobs." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="MIT"
