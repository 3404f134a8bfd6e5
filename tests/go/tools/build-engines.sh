#!/usr/bin/env bash
# Builds the stores `make test-engines` runs the guardrail tests against, besides Debian's Prometheus 2 and
# VictoriaMetrics (`make deps` installs those): Prometheus 3 and Thanos, from the Go module proxy, pinned by the
# go.mod/go.sum under tests/go/tools/<name>/, into target/engines/bin/<name>.
#
# Idempotent: a binary is rebuilt only when target/engines/bin/<name>.version (written after a successful build)
# differs from what the pin below says; the Go build cache makes a rebuild after `rm -rf target/engines` a relink.
# Both build at once, niced (CI has 2 cores). Prints the wall time of each build and of the whole.
#
# Prometheus 3 is built with `-tags=remove_all_sd`: the tests start it without scrape jobs, and leaving out its
# service-discovery plugins (cloud SDKs) halves the cold build. Thanos is built with the tags of its own release
# build (.promu.yml: netgo, slicelabels): its gRPC codec converts labels in place assuming Prometheus' slice
# representation, and with the default (stringlabels) the sidecar panics on its first Info call.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
bin="$root/target/engines/bin"
logs="$root/target/engines/build-logs"
mkdir -p "$bin" "$logs"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0

# name | module dir | version (as pinned in its go.mod) | build tags | package
targets=(
  "prometheus3|prometheus3|v0.316.0|remove_all_sd|github.com/prometheus/prometheus/cmd/prometheus"
  "thanos|thanos|v0.42.4|netgo,slicelabels|github.com/thanos-io/thanos/cmd/thanos"
)

build_one() { # name module version tags package
  local name=$1 mod=$2 ver=$3 tags=$4 pkg=$5 want tmp t0=$SECONDS
  want="$pkg@$ver tags=$tags $(go env GOVERSION)"
  if [[ -x "$bin/$name" && -f "$bin/$name.version" && "$(cat "$bin/$name.version")" == "$want" ]]; then
    echo "engines build: $name $ver: up to date"
    return 0
  fi
  if ! grep -Eq "^[[:space:]]*${pkg%%/cmd/*} $ver( |\$)" "$here/$mod/go.mod"; then
    echo "engines build: $name: tests/go/tools/$mod/go.mod does not pin ${pkg%%/cmd/*} $ver" >&2
    return 1
  fi
  tmp=$(mktemp -d "$bin/.build.XXXXXX")
  if ! (cd "$here/$mod" && nice -n 10 go build -trimpath -ldflags=-s ${tags:+-tags=$tags} -o "$tmp/$name" "$pkg") \
      >"$logs/$name.log" 2>&1; then
    echo "engines build: $name $ver FAILED (log: target/engines/build-logs/$name.log)" >&2
    tail -n 20 "$logs/$name.log" >&2
    rm -rf "$tmp"
    return 1
  fi
  mv "$tmp/$name" "$bin/$name"
  rm -rf "$tmp"
  echo "$want" >"$bin/$name.version"
  echo "engines build: $name $ver in $((SECONDS - t0)) s"
}

start=$SECONDS
pids=()
for t in "${targets[@]}"; do
  IFS='|' read -r name mod ver tags pkg <<<"$t"
  build_one "$name" "$mod" "$ver" "$tags" "$pkg" &
  pids+=($!)
done
fail=0
for pid in "${pids[@]}"; do wait "$pid" || fail=1; done
echo "engines build: ready in $((SECONDS - start)) s (target/engines/bin)"
exit $fail
