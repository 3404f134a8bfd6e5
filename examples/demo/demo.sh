#!/usr/bin/env bash
# make demo: a local Prometheus loaded with the bundled kube-state-metrics data, then
#   1. the plugin driven exactly as the Argo Rollouts controller drives it (go-plugin net/rpc, the real
#      argo-rollouts client) over every scenario: a PASS/FAIL table, checked against the expected verdicts;
#   2. the same guardrails from the `check` CLI with a ClusterAnalysisTemplate, for a healthy and broken canaries.
# Usage: examples/demo/demo.sh PATH/TO/rollouts-guardrails
set -euo pipefail
bin=${1:?usage: demo.sh PATH/TO/rollouts-guardrails}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
data="$root/tests/fixtures/prometheus/kube-state-metrics.om"
at="2026-01-01T12:00:00Z" # the instant the bundled data ends

work=$(mktemp -d)
prom_pid=""
cleanup() {
  [ -n "$prom_pid" ] && kill "$prom_pid" 2>/dev/null && wait "$prom_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  local port
  for _ in $(seq 1 50); do
    # Below the kernel's ephemeral range (32768+), where outgoing connections take their ports.
    port=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
  echo "demo: no free port found" >&2; return 1
}

echo "== 1. plugin mode, driven by the real argo-rollouts plugin client (data shifted to end now)"
(cd "$root/tests/go/conformance/harness" && go run ./cmd/demo -bin "$bin")

echo
echo "== 2. the check CLI with a ClusterAnalysisTemplate (examples/demo/template.yaml), data as bundled"
promtool tsdb create-blocks-from openmetrics "$data" "$work/tsdb" >/dev/null
printf 'global:\n  scrape_interval: 1h\n' >"$work/prometheus.yml"
start_prometheus() {
  port=$(free_port)
  prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --storage.tsdb.retention.time=100y --web.listen-address="127.0.0.1:$port" >"$work/prometheus.log" 2>&1 &
  prom_pid=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1 && return 0
    kill -0 "$prom_pid" 2>/dev/null || break
    sleep 0.2
  done
  kill "$prom_pid" 2>/dev/null; wait "$prom_pid" 2>/dev/null; prom_pid=""
  return 1
}
started=""
for _ in 1 2 3; do
  if start_prometheus; then started=yes; break; fi
done
[ -n "$started" ] || { echo "demo: Prometheus did not start:" >&2; cat "$work/prometheus.log" >&2; exit 1; }
echo "   Prometheus at http://127.0.0.1:$port, evaluating at $at"

status=0
for canary in "shop web 6c8d7f9a1 healthy canary" "pay api 7f6e5d4c3 crash-looping canary" \
  "media uploader 4d5e6f7a8 canary stuck in ImagePullBackOff on an untagged image"; do
  read -r ns rollout hash description <<<"$canary"
  echo
  echo "== $ns/$rollout ($description)"
  "$bin" check --prometheus "http://127.0.0.1:$port" --template "$here/template.yaml" \
    --arg "namespace=$ns" --arg "rollout=$rollout" --arg "pod-template-hash=$hash" --at "$at" || status=$?
  [ "$status" -le 1 ] || exit "$status"
done
echo
echo "The healthy canary passes every guardrail; the broken ones fail with the reason and the offending pods."
