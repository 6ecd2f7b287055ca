#!/usr/bin/env bash
# Build a real Kubernetes API server and etcd from their Go modules, for the tests of
# sde's Kubernetes adapter (tests/integration/test_kube_api.py), idempotently:
#   .build/bin/kube-apiserver   k8s.io/kubernetes/cmd/kube-apiserver at KUBE_VERSION
#   .build/bin/etcd             go.etcd.io/etcd/server/v3 at ETCD_VERSION
#   .build/bin/.kube-stamp      the versions built; a run that finds them does nothing
# Only the Go module proxy is needed (no GitHub). k8s.io/kubernetes points its staging
# modules (k8s.io/api, k8s.io/apiserver, ...) at ./staging in its go.mod, which a
# dependent module cannot follow, so a throwaway module in .build/kube-src requires
# k8s.io/kubernetes and replaces each staging module by its published v0.Y.Z release.
# Measured on 2 cores: about 4 minutes for kube-apiserver and 1 for etcd from cold
# caches, seconds when the Go build cache is warm.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

KUBE_VERSION="v1.37.2"
ETCD_VERSION="v3.7.3"   # the etcd release line k8s.io/kubernetes $KUBE_VERSION is built against
GO_MIN="1.26"           # both modules say `go 1.26.0`

say() { printf '[setup] %s\n' "$*" >&2; }

bin="$root/.build/bin"
stamp="$bin/.kube-stamp"
want="kube-apiserver $KUBE_VERSION etcd $ETCD_VERSION"
if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/etcd" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    exit 0
fi

command -v go >/dev/null || { say "needs Go $GO_MIN or newer to build kube-apiserver and etcd"; exit 1; }
have="$(go env GOVERSION | sed 's/^go//')"
if [ "$(printf '%s\n%s\n' "$GO_MIN" "$have" | sort -V | head -1)" != "$GO_MIN" ]; then
    say "needs Go $GO_MIN or newer (found $have)"
    exit 1
fi
mkdir -p "$bin"
rm -f "$stamp"
export GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local
build=(go build -p 2 -trimpath)

# --- kube-apiserver -----------------------------------------------------------
say "building kube-apiserver $KUBE_VERSION from its Go module (about 4 minutes, once)"
src="$root/.build/kube-src"
rm -rf "$src" && mkdir -p "$src"
kube_mod="$(cd "$src" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" \
    | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
[ -f "$kube_mod" ] || { say "could not download k8s.io/kubernetes@$KUBE_VERSION"; exit 1; }
staging="v0.${KUBE_VERSION#v1.}"   # v1.37.2 -> v0.37.2
{
    printf 'module sde.local/kube-src\n\ngo %s.0\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' \
        "$GO_MIN" "$KUBE_VERSION"
    # every staging module k8s.io/kubernetes requires at the placeholder v0.0.0
    sed -n 's/^[[:space:]]*\(k8s\.io\/[a-z0-9-]*\) v0\.0\.0$/\1/p' "$kube_mod" | sort -u \
        | while read -r module; do printf '\t%s => %s %s\n' "$module" "$module" "$staging"; done
    printf ')\n'
} >"$src/go.mod"
version_pkg="k8s.io/component-base/version"
minor="${KUBE_VERSION#v1.}" && minor="${minor%%.*}"
kube_ldflags="-s -w -X $version_pkg.gitVersion=$KUBE_VERSION -X $version_pkg.gitMajor=1"
kube_ldflags+=" -X $version_pkg.gitMinor=$minor -X $version_pkg.gitTreeState=clean"
(cd "$src" && "${build[@]}" -ldflags="$kube_ldflags" -o "$bin/kube-apiserver.tmp" \
    k8s.io/kubernetes/cmd/kube-apiserver)
mv -f "$bin/kube-apiserver.tmp" "$bin/kube-apiserver"

# --- etcd -----------------------------------------------------------------------
say "building etcd $ETCD_VERSION from its Go module (about a minute, once)"
src="$root/.build/etcd-src"
rm -rf "$src" && mkdir -p "$src"
printf 'module sde.local/etcd-src\n\ngo %s.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' \
    "$GO_MIN" "$ETCD_VERSION" >"$src/go.mod"
(cd "$src" && "${build[@]}" -ldflags="-s -w" -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3)
mv -f "$bin/etcd.tmp" "$bin/etcd"

# Each version is read whole before it is matched: `etcd --version | grep -q` under
# pipefail fails at random (grep stops reading at the first line, etcd dies of SIGPIPE).
kube_reported="$("$bin/kube-apiserver" --version)"
grep -qx "Kubernetes $KUBE_VERSION" <<<"$kube_reported" \
    || { say "the kube-apiserver built does not report $KUBE_VERSION"; exit 1; }
etcd_reported="$("$bin/etcd" --version)"
grep -q "etcd Version: ${ETCD_VERSION#v}" <<<"$etcd_reported" \
    || { say "the etcd built does not report $ETCD_VERSION"; exit 1; }
printf '%s\n' "$want" >"$stamp"
say "built $want into .build/bin"
