#!/usr/bin/env bash
# A gRPC client for `rollouts-guardrails serve`, with grpcurl and server reflection (no .proto files needed):
# the health check, then one guardrail measurement of a canary ReplicaSet, printed as JSON.
#
#   rollouts-guardrails serve --listen 127.0.0.1:9464 &          # or: kubectl port-forward svc/rollouts-guardrails 9464
#   examples/grpc/client.sh 127.0.0.1:9464 shop checkout 6c8d7f9a1 restarts
#
# grpcurl: `go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3` (tests/grpc-client/run.sh pins it).
# The Prometheus address comes from the server's GUARDRAILS_PROMETHEUS_ADDRESS unless PROMETHEUS is set here.
set -euo pipefail

addr="${1:?usage: $0 ADDR NAMESPACE ROLLOUT POD_TEMPLATE_HASH [GUARDRAIL]}"
namespace="${2:?namespace}"
rollout="${3:?rollout}"
hash="${4:?pod-template hash}"
guardrail="${5:-restarts}"
service=rollouts_guardrails.v1.MetricProvider
tls="${GRPCURL_TLS:--plaintext}"   # e.g. GRPCURL_TLS="-cacert ca.pem -cert client.pem -key client-key.pem"

config="{\\\"guardrail\\\":\\\"$guardrail\\\"${PROMETHEUS:+,\\\"address\\\":\\\"$PROMETHEUS\\\"}}"

# shellcheck disable=SC2086 # $tls is a list of flags
grpcurl $tls -d "{\"service\":\"$service\"}" "$addr" grpc.health.v1.Health/Check

# The same request the controller's AnalysisRun makes: the target comes from the owner reference and the
# rollouts-pod-template-hash label, exactly as in plugin mode.
# shellcheck disable=SC2086
grpcurl $tls -d @ "$addr" "$service/Run" <<JSON
{
  "analysis": {
    "namespace": "$namespace",
    "name": "$rollout-$hash-1",
    "labels": {"rollouts-pod-template-hash": "$hash"},
    "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "$rollout", "controller": true}]
  },
  "metric": {"name": "$guardrail", "pluginConfigJson": "$config"}
}
JSON
