#!/usr/bin/env bash
# make demo-rollout: the control plane of the end-to-end suite (built once by ../tools/build-control-plane.sh), a
# healthy and a crash-looping v2 of one app, `kubectl argo rollouts get rollout` before and after, the failing
# measurement.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
"$here/../tools/build-control-plane.sh"
(cd "$root" && cargo build --release --locked)
cd "$here" && GOFLAGS=-mod=readonly GOTOOLCHAIN=local go run ./cmd/demo-rollout
