#!/usr/bin/env bash
# Runs the Go conformance suite once per supported controller release: the real argo-rollouts metric-provider
# plugin client (hashicorp/go-plugin net/rpc) drives GUARDRAILS_BIN against a private Prometheus loaded with
# tests/fixtures/prometheus/kube-state-metrics.om. Then `reconciler`: argo-rollouts' own analysis controller,
# in-process, reconciles AnalysisRuns built from the shipped ClusterAnalysisTemplates through the same plugin.
#
#   GUARDRAILS_BIN=$PWD/target/release/rollouts-guardrails tests/go/conformance/run.sh [go test flags…]
#
# Needs: Go ≥ 1.26.1, prometheus and promtool (Debian: apt-get install prometheus) on PATH.
# Optional: GUARDRAILS_FIXTURE (another fixture), GUARDRAILS_CONFORMANCE_RUNS_PER_WORKER (default 1000),
# GUARDRAILS_CONFORMANCE_MODULES (space-separated subset of the module directories).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
modules=(${GUARDRAILS_CONFORMANCE_MODULES:-argo-v1.9.1 argo-v1.10.0 go-plugin-v1.8.0 reconciler})

if [[ -z "${GUARDRAILS_BIN:-}" ]]; then
  echo "run.sh: GUARDRAILS_BIN is unset: point it at the rollouts-guardrails binary" >&2
  exit 2
fi
GUARDRAILS_BIN="$(cd "$(dirname "$GUARDRAILS_BIN")" && pwd)/$(basename "$GUARDRAILS_BIN")"
export GUARDRAILS_BIN
if [[ ! -x "$GUARDRAILS_BIN" ]]; then
  echo "run.sh: GUARDRAILS_BIN=$GUARDRAILS_BIN is not an executable file" >&2
  exit 2
fi

(cd "$here/harness" && go vet ./...) || { echo "run.sh: go vet failed in harness" >&2; exit 1; }

declare -A result took versions
status=0
for m in "${modules[@]}"; do
  echo "=== $m"
  (cd "$here/$m" && go vet ./...) || { result[$m]="FAIL (go vet)"; status=1; continue; }
  versions[$m]="$(cd "$here/$m" && go list -m -f '{{.Path}}@{{.Version}}' github.com/argoproj/argo-rollouts github.com/hashicorp/go-plugin | sed 's|github.com/[^/]*/||' | paste -sd' ')"
  start=$SECONDS
  if (cd "$here/$m" && go test -count=1 -timeout 20m -v "$@" .); then
    result[$m]=PASS
  else
    result[$m]=FAIL
    status=1
  fi
  took[$m]=$((SECONDS - start))
done

echo
echo "=== conformance summary (GUARDRAILS_BIN=$GUARDRAILS_BIN)"
for m in "${modules[@]}"; do
  printf '%-18s %-14s %-45s %ss\n' "$m" "${result[$m]}" "${versions[$m]:-}" "${took[$m]:-?}"
done
exit $status
