#!/usr/bin/env bash
# Builds, from the Go module proxy, the servers the cluster and S3 tests start: the
# Kubernetes control plane (kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl), etcd, kwok and SeaweedFS's `weed`, at the versions of .ci/versions.env;
# and helm-docs, which writes the chart's README (tests/helm/test_chart_docs.py).
# It also extracts the prometheus-operator CRDs (ServiceMonitor, PrometheusRule) and
# kwok's default pod stages from those projects' modules.
#
# Each tool is built once into $GO_TOOLS_CACHE/<tool>-<version>-<go version>/ (outside
# the checkout, like the wheelhouse) and linked into $GO_TOOLS_BIN; a warm run only
# checks the links. Prints the cold build time and the disk used.
#
# Several modules cannot be `go install`ed at a version: k8s.io/kubernetes requires
# its staging modules at v0.0.0 (its go.mod replaces them with ./staging folders that
# a dependency's replaces cannot use), etcd's server module and SeaweedFS have
# replace directives. So each is built from a small wrapper module that requires it
# and carries the replaces itself.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=versions.env
source .ci/versions.env

GO_TOOLS_CACHE="${GO_TOOLS_CACHE:-/var/cache/accident-triage/go-tools}"
GO_TOOLS_BIN="${GO_TOOLS_BIN:-/usr/local/bin}"
CRD_DIR="${CRD_DIR:-$GO_TOOLS_CACHE/crds-prometheus-operator-$PROMETHEUS_OPERATOR_VERSION}"

command -v go >/dev/null 2>&1 || { echo "go is needed (Go 1.24 or newer)" >&2; exit 1; }
GO_VERSION="$(go env GOVERSION)"
export GOFLAGS="${GOFLAGS:--buildvcs=false} -trimpath"
export CGO_ENABLED=0
mkdir -p "$GO_TOOLS_CACHE" "$GO_TOOLS_BIN"

built_any=0
started=$SECONDS

link_tools() {  # link_tools DIR TOOL...
    local dir="$1"; shift
    for tool in "$@"; do
        ln -sfn "$dir/$tool" "$GO_TOOLS_BIN/$tool"
    done
}

tools_present() {  # tools_present DIR TOOL...
    local dir="$1"; shift
    for tool in "$@"; do
        [ -x "$dir/$tool" ] || return 1
    done
}

# Builds PACKAGEs in a wrapper module (a temporary folder; the build and module
# caches are Go's own) whose go.mod requires the tool's module and carries GOMOD_LINES,
# into DIR.partial: one binary named OUTPUT, or, with OUTPUT "", one per package (Go
# compiles and links them in parallel).
build_in_wrapper() {  # build_in_wrapper NAME DIR GOMOD_LINES LDFLAGS OUTPUT PACKAGE...
    local name="$1" dir="$2" gomod_lines="$3" ldflags="$4" output="$5"
    shift 5
    local work
    work="$(mktemp -d "${TMPDIR:-/tmp}/go-tools-$name.XXXXXX")"
    (
        cd "$work"
        printf 'module local/%s-wrapper\n\ngo 1.24\n\n%s\n' "$name" "$gomod_lines" >go.mod
        { printf 'package tools\n\nimport (\n'; printf '\t_ "%s"\n' "$@"; printf ')\n'; } >tools.go
        go mod tidy >/dev/null
        mkdir -p "$dir.partial"
        go build -ldflags "$ldflags" -o "$dir.partial/$output" "$@"
    )
    rm -rf "$work"
}

# Replaces DIR by the finished DIR.partial, so a half-built tool is never linked.
publish_build() {  # publish_build DIR STARTED_AT
    rm -rf "$1" && mv "$1.partial" "$1"
    echo "  built in $((SECONDS - $2)) s"
    built_any=1
}

build_kubernetes() {
    local dir="$GO_TOOLS_CACHE/kubernetes-$KUBERNETES_VERSION-$GO_VERSION"
    local tools=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
    if ! tools_present "$dir" "${tools[@]}"; then
        echo "building Kubernetes $KUBERNETES_VERSION (${tools[*]}) with $GO_VERSION"
        local t0=$SECONDS gomod staging minor
        minor="v0.${KUBERNETES_VERSION#v1.}"
        gomod="$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" \
            | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
        staging="$(grep -oE '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0(\s|$)' "$gomod" | awk '{print $1}' | sort -u)"
        local lines="require k8s.io/kubernetes $KUBERNETES_VERSION"$'\n'"replace ("
        for module in $staging; do lines+=$'\n'"    $module => $module $minor"; done
        lines+=$'\n'")"
        # The version the API server reports (Helm checks the chart's kubeVersion
        # against it); without these it says v0.0.0-master.
        local major="${KUBERNETES_VERSION#v}"; major="${major%%.*}"
        local kminor="${KUBERNETES_VERSION#v*.}"; kminor="${kminor%%.*}"
        local ldflags="-s -w"
        for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
            ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=$major"
            ldflags+=" -X $pkg.gitMinor=$kminor -X $pkg.gitTreeState=clean"
            ldflags+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
        done
        build_in_wrapper kubernetes "$dir" "$lines" "$ldflags" "" "${tools[@]/#/k8s.io/kubernetes/cmd/}"
        publish_build "$dir" "$t0"
    fi
    link_tools "$dir" "${tools[@]}"
}

build_etcd() {
    local dir="$GO_TOOLS_CACHE/etcd-$ETCD_VERSION-$GO_VERSION"
    if ! tools_present "$dir" etcd; then
        echo "building etcd $ETCD_VERSION with $GO_VERSION"
        local t0=$SECONDS
        build_in_wrapper etcd "$dir" "require go.etcd.io/etcd/server/v3 $ETCD_VERSION" "-s -w" \
            etcd go.etcd.io/etcd/server/v3
        publish_build "$dir" "$t0"
    fi
    link_tools "$dir" etcd
}

build_kwok() {
    local dir="$GO_TOOLS_CACHE/kwok-$KWOK_VERSION-$GO_VERSION"
    if ! tools_present "$dir" kwok; then
        echo "building kwok $KWOK_VERSION with $GO_VERSION"
        local t0=$SECONDS
        mkdir -p "$dir.partial"
        GOBIN="$dir.partial" go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
        publish_build "$dir" "$t0"
    fi
    link_tools "$dir" kwok
}

build_helm_docs() {
    local dir="$GO_TOOLS_CACHE/helm-docs-$HELM_DOCS_VERSION-$GO_VERSION"
    if ! tools_present "$dir" helm-docs; then
        echo "building helm-docs $HELM_DOCS_VERSION with $GO_VERSION"
        local t0=$SECONDS
        mkdir -p "$dir.partial"
        # The version its releases stamp: `helm-docs --version` and the README's footer.
        GOBIN="$dir.partial" go install -ldflags "-s -w -X main.version=${HELM_DOCS_VERSION#v}" \
            "github.com/norwoodj/helm-docs/cmd/helm-docs@$HELM_DOCS_VERSION"
        publish_build "$dir" "$t0"
    fi
    link_tools "$dir" helm-docs
}

build_seaweedfs() {
    local dir="$GO_TOOLS_CACHE/seaweedfs-$SEAWEEDFS_RELEASE-$GO_VERSION"
    if ! tools_present "$dir" weed; then
        echo "building SeaweedFS $SEAWEEDFS_RELEASE ($SEAWEEDFS_MODULE_VERSION) with $GO_VERSION"
        local t0=$SECONDS
        # The same replace as SeaweedFS's own go.mod (the original repository was
        # deleted; cosmos/go-bip39 is its API-compatible fork).
        build_in_wrapper seaweedfs "$dir" \
            "require github.com/seaweedfs/seaweedfs $SEAWEEDFS_MODULE_VERSION
replace github.com/tyler-smith/go-bip39 => github.com/cosmos/go-bip39 v1.0.0" \
            "-s -w" weed github.com/seaweedfs/seaweedfs/weed
        publish_build "$dir" "$t0"
    fi
    link_tools "$dir" weed
}

extract_crds() {
    if [ ! -s "$CRD_DIR/servicemonitors.yaml" ] || [ ! -s "$CRD_DIR/prometheusrules.yaml" ]; then
        local src
        src="$(go mod download -json "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" \
            | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
        mkdir -p "$CRD_DIR"
        for kind in servicemonitors prometheusrules; do
            cp "$src/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$CRD_DIR/$kind.yaml"
        done
        chmod 0644 "$CRD_DIR"/*.yaml
        echo "prometheus-operator $PROMETHEUS_OPERATOR_VERSION CRDs in $CRD_DIR"
    fi
}

# kwok's default pod stages (Running and Ready, Job pods Succeeded, deletion), as data:
# the cluster fixture passes them to kwok with one more (a `helm test` pod completes).
extract_kwok_stages() {
    local stages="$GO_TOOLS_CACHE/kwok-stages-$KWOK_VERSION"
    if [ ! -s "$stages/pod-complete.yaml" ]; then
        local src
        src="$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" \
            | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
        mkdir -p "$stages"
        cp "$src"/kustomize/stage/pod/fast/pod-{ready,complete,delete}.yaml "$stages/"
        chmod 0644 "$stages"/*.yaml
        echo "kwok $KWOK_VERSION pod stages in $stages"
    fi
}

only="${1:-all}"
case "$only" in
    all) build_etcd; build_kwok; build_kubernetes; build_seaweedfs; build_helm_docs; extract_crds; extract_kwok_stages ;;
    cluster) build_etcd; build_kwok; build_kubernetes; extract_crds; extract_kwok_stages ;;
    seaweedfs) build_seaweedfs ;;
    helm-docs) build_helm_docs ;;
    *) echo "usage: $0 [all|cluster|seaweedfs|helm-docs]" >&2; exit 2 ;;
esac

if [ "$built_any" -eq 1 ]; then
    echo "go tools built in $((SECONDS - started)) s; cache: $(du -sh "$GO_TOOLS_CACHE" | cut -f1) in $GO_TOOLS_CACHE," \
        "module cache: $(du -sh "$(go env GOMODCACHE)" | cut -f1), build cache: $(du -sh "$(go env GOCACHE)" | cut -f1)"
else
    echo "go tools up to date in $GO_TOOLS_CACHE"
fi
