#!/usr/bin/env bash
# Decodes every YAML under manifests/ and examples/ with argo-rollouts' own types (unknown fields rejected),
# runs argo-rollouts' validation, builds every kustomization, and proves the broken fixtures are caught.
# Needs Go and kustomize or kubectl (.ci/install-deps). The first run compiles k8s.io/kubernetes' validation:
# a few minutes; later runs are cached.
set -euo pipefail
cd "$(dirname "$0")"
GOFLAGS=-mod=mod go test -count=1 ./...
