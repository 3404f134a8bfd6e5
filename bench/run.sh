#!/usr/bin/env bash
# make bench: builds argo-rollouts' sample metric plugin from the Go module proxy into target/bench/, then runs
# every contender in one run (bench/main.go), the floor diagnosis and the controller-scale case (its generated
# fixture cached under target/bench/), and regenerates BENCHMARKS.md and docs/bench/latency-throughput.svg.
# Usage: bench/run.sh <rollouts-guardrails release binary> [extra flags for the driver]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${1:?usage: bench/run.sh <rollouts-guardrails release binary> [driver flags]}"
shift
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")" # the driver runs in bench/
mkdir -p "$root/target/bench" "$root/docs/bench"
cd "$root/bench"
# The sample plugin is never committed: it is built from the argo-rollouts module this driver already requires.
go build -o "$root/target/bench/sample-plugin" github.com/argoproj/argo-rollouts/test/cmd/metrics-plugin-sample
go build -o "$root/target/bench/driver" .
"$root/target/bench/driver" \
  -guardrails "$bin" \
  -sample "$root/target/bench/sample-plugin" \
  -analysis "$root/bench/analysis.md" \
  -out "$root/target/bench/results.json" \
  -report "$root/BENCHMARKS.md" \
  -svg "$root/docs/bench/latency-throughput.svg" \
  -work "$root/target/bench" \
  "$@"
