#!/usr/bin/env bash
# The gRPC service exercised from outside Rust: grpcurl (Go, pinned, built from the Go module proxy into
# target/tools/) discovers the API through server reflection, checks health, and calls Type, GetMetadata
# and Run against a real Prometheus serving the canonical kube-state-metrics fixture, asserting the phases;
# then SIGTERM must stop the server cleanly.
#
# Usage: tests/grpc-client/run.sh "PATH/TO/rollouts-guardrails serve"
#   the server command; it is given `--listen ADDR --metrics-listen ADDR`.
# Needs: cargo, go, prometheus, promtool, curl (`make deps`).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
GRPCURL_VERSION=v1.9.3
GRPCURL="$ROOT/target/tools/grpcurl-$GRPCURL_VERSION"
FIXTURE="$ROOT/tests/fixtures/prometheus/kube-state-metrics.om"
END=2026-01-01T12:00:00Z   # the instant the canonical fixture ends (tests/support/scenarios.rs END)
PROTO_PACKAGE=rollouts_guardrails.v1
SERVICE=$PROTO_PACKAGE.MetricProvider

work=$(mktemp -d)
server_pid=""
prometheus_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  [ -n "$prometheus_pid" ] && kill "$prometheus_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "grpc-client: FAIL: $*" >&2
  for log in "$work"/*.log; do
    [ -f "$log" ] && { echo "--- $log" >&2; tail -n 30 "$log" >&2; }
  done
  exit 1
}

# A loopback port nobody answers on (the server start is retried on a bind race).
free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  fail "no free loopback port"
}

# 1. grpcurl, pinned, built once from the Go module proxy.
if [ ! -x "$GRPCURL" ]; then
  echo "grpc-client: building grpcurl $GRPCURL_VERSION into target/tools/" >&2
  mkdir -p "$ROOT/target/tools"
  GOBIN="$work/gobin" GOFLAGS=-mod=mod go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"
  mv "$work/gobin/grpcurl" "$GRPCURL"
fi

# 2. The server under test.
[ $# -gt 0 ] || { echo 'usage: tests/grpc-client/run.sh "PATH/TO/rollouts-guardrails serve"' >&2; exit 2; }
read -r -a server_cmd <<<"$1"

# 3. A real Prometheus on the canonical fixture.
promtool tsdb create-blocks-from openmetrics "$FIXTURE" "$work/tsdb" >"$work/promtool.log" 2>&1 \
  || fail "promtool could not backfill $FIXTURE"
printf 'global:\n  scrape_interval: 1h\nscrape_configs: []\n' >"$work/prometheus.yml"
prometheus_port=$(free_port)
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --storage.tsdb.retention.time=100y --web.listen-address="127.0.0.1:$prometheus_port" \
  >"$work/prometheus.log" 2>&1 &
prometheus_pid=$!
PROMETHEUS="http://127.0.0.1:$prometheus_port"
for _ in $(seq 1 300); do
  curl -fsS "$PROMETHEUS/-/ready" >/dev/null 2>&1 && break
  kill -0 "$prometheus_pid" 2>/dev/null || fail "prometheus exited"
  sleep 0.1
done
curl -fsS "$PROMETHEUS/-/ready" >/dev/null 2>&1 || fail "prometheus not ready"

# 4. Start the server (retrying if another process took the port first) and wait for reflection.
for attempt in 1 2 3; do
  port=$(free_port)
  metrics_port=$(free_port)
  ADDR="127.0.0.1:$port"
  "${server_cmd[@]}" --listen "$ADDR" --metrics-listen "127.0.0.1:$metrics_port" >"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do
    "$GRPCURL" -plaintext "$ADDR" list >/dev/null 2>&1 && break 2
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
  [ "$attempt" -eq 3 ] && fail "the server did not start"
done

call() { "$GRPCURL" -plaintext -max-time 30 "$@"; }
expect() { # expect NAME PATTERN TEXT
  grep -qF -- "$2" <<<"$3" || fail "$1: expected \`$2\` in:
$3"
}

# 5. Reflection, health, and the calls.
listing=$(call "$ADDR" list)
expect "reflection list" "$SERVICE" "$listing"
expect "reflection list" "grpc.health.v1.Health" "$listing"
described=$(call "$ADDR" describe "$SERVICE")
expect "reflection describe" "rpc Run ( .rollouts_guardrails.v1.RunRequest )" "$described"

health=$(call -d "{\"service\":\"$SERVICE\"}" "$ADDR" grpc.health.v1.Health/Check)
expect "health" '"status": "SERVING"' "$health"

kind=$(call "$ADDR" "$SERVICE/Type")
expect "Type" '"type": "rollouts-guardrails/prometheus"' "$kind"

restarts_config="{\\\"guardrail\\\":\\\"restarts\\\",\\\"address\\\":\\\"$PROMETHEUS\\\"}"
run_request() { # run_request NAMESPACE ROLLOUT HASH
  cat <<JSON
{
  "analysis": {
    "namespace": "$1",
    "name": "$2-$3-1",
    "labels": {"rollouts-pod-template-hash": "$3"},
    "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "$2", "controller": true}]
  },
  "metric": {"name": "restarts", "pluginConfigJson": "$restarts_config"},
  "evaluationTime": "$END"
}
JSON
}

metadata=$(call -d "{\"metric\": {\"name\": \"restarts\", \"pluginConfigJson\": \"$restarts_config\"}}" \
  "$ADDR" "$SERVICE/GetMetadata")
expect "GetMetadata" '"guardrail": "restarts"' "$metadata"

healthy=$(call -d "$(run_request shop web 6c8d7f9a1)" "$ADDR" "$SERVICE/Run")
expect "Run shop/web (healthy canary)" '"phase": "PHASE_SUCCESSFUL"' "$healthy"
expect "Run shop/web (healthy canary)" '"target": "shop/web-6c8d7f9a1"' "$healthy"

crashing=$(call -d "$(run_request pay api 7f6e5d4c3)" "$ADDR" "$SERVICE/Run")
expect "Run pay/api (crash-looping pod)" '"phase": "PHASE_FAILED"' "$crashing"
expect "Run pay/api (crash-looping pod)" '"failure": "threshold"' "$crashing"

no_metric=$(call -d '{"analysis": {"namespace": "shop"}}' "$ADDR" "$SERVICE/Run")
expect "Run without a metric" '"phase": "PHASE_FAILED"' "$no_metric"

set +e
malformed=$(call -d '{"measurement": {"phase": 42}}' "$ADDR" "$SERVICE/Resume" 2>&1)
set -e
expect "Resume with an unknown phase" "Code: InvalidArgument" "$malformed"

scraped=$(curl -fsS "http://127.0.0.1:$metrics_port/metrics")
expect "/metrics" 'rollouts_guardrails_measurements_total{guardrail="restarts",phase="Successful"} 1' "$scraped"
expect "/metrics" 'rollouts_guardrails_measurement_failures_total{class="threshold"} 1' "$scraped"

# 6. SIGTERM: the server drains and exits 0.
kill -TERM "$server_pid"
status=0
for _ in $(seq 1 100); do
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$server_pid" 2>/dev/null && fail "the server still runs 10 s after SIGTERM"
wait "$server_pid" || status=$?
server_pid=""
[ "$status" -eq 0 ] || fail "the server exited $status after SIGTERM"

echo "grpc-client: ok (grpcurl $GRPCURL_VERSION: reflection, health, Type, GetMetadata, Run successful/failed, INVALID_ARGUMENT, /metrics, SIGTERM)"
