#!/usr/bin/env bash
# Builds the control plane of the end-to-end suite into target/e2e/bin/, pinned by the go.mod/go.sum of each module
# under tests/go/tools/. Idempotent: a binary is named <name>-<version> and skipped when already there. The Go build
# cache makes a rebuild after `rm -rf target/e2e/bin` a relink. Builds run niced, E2E_BUILD_JOBS at a time (default 3:
# the largest link, kube-apiserver, peaks near 3 GiB). Prints the wall time of the whole build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
bin="$root/target/e2e/bin"
logs="$root/target/e2e/build-logs"
mkdir -p "$bin" "$logs"
export GOFLAGS=-mod=readonly GOTOOLCHAIN=local CGO_ENABLED=0
jobs=${E2E_BUILD_JOBS:-3}

# module dir | version | name=package ...
targets=(
  "kubernetes|v1.34.4|kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler kubectl=k8s.io/kubernetes/cmd/kubectl"
  "argo-v1.9.1|v1.9.1|rollouts-controller=github.com/argoproj/argo-rollouts/cmd/rollouts-controller kubectl-argo-rollouts=github.com/argoproj/argo-rollouts/cmd/kubectl-argo-rollouts"
  "argo-v1.10.1|v1.10.1|rollouts-controller=github.com/argoproj/argo-rollouts/cmd/rollouts-controller"
  "etcd|v3.6.16|etcd=go.etcd.io/etcd/server/v3"
  "kwok|v0.8.0|kwok=sigs.k8s.io/kwok/cmd/kwok"
  "ksm|v2.18.0|kube-state-metrics=k8s.io/kube-state-metrics/v2"
  "helm|v3.19.5|helm=helm.sh/helm/v3/cmd/helm"
)

build_one() { # module version "name=pkg ..."
  local mod=$1 ver=$2 pairs=$3 missing=() pkgs=() p name pkg tmp
  for p in $pairs; do
    name=${p%%=*}; pkg=${p#*=}
    [[ -x "$bin/$name-$ver" ]] || { missing+=("$name"); pkgs+=("$pkg"); }
  done
  ((${#missing[@]})) || { echo "e2e build: $mod $ver: up to date"; return 0; }
  tmp=$(mktemp -d "$bin/.build.XXXXXX")
  local t0=$SECONDS
  # One `go build` per module: the packages share their compiled dependencies.
  if ! (cd "$here/$mod" && nice -n 10 go build -trimpath -ldflags=-s -o "$tmp/" "${pkgs[@]}") >"$logs/$mod.log" 2>&1; then
    echo "e2e build: $mod $ver FAILED (log: target/e2e/build-logs/$mod.log)" >&2
    tail -n 20 "$logs/$mod.log" >&2
    rm -rf "$tmp"; return 1
  fi
  local i out
  for i in "${!missing[@]}"; do
    out=${pkgs[$i]##*/}
    # go build names a module's main package after the element before a major-version suffix (…/server/v3 → server).
    [[ $out =~ ^v[0-9]+$ ]] && { out=${pkgs[$i]%/*}; out=${out##*/}; }
    mv "$tmp/$out" "$bin/${missing[$i]}-$ver"
  done
  rm -rf "$tmp"
  echo "e2e build: $mod $ver: ${missing[*]} in $((SECONDS - t0)) s"
}

start=$SECONDS
pids=(); fail=0
for t in "${targets[@]}"; do
  IFS='|' read -r mod ver pairs <<<"$t"
  while (($(jobs -rp | wc -l) >= jobs)); do wait -n || fail=1; done
  build_one "$mod" "$ver" "$pairs" &
done
while (($(jobs -rp | wc -l))); do wait -n || fail=1; done
echo "e2e build: control plane ready in $((SECONDS - start)) s (target/e2e/bin)"
exit $fail
