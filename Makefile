# rollouts-guardrails — every target installs what it needs first (`deps` is idempotent).
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
BIN := target/release/rollouts-guardrails
STATIC_TARGET := x86_64-unknown-linux-musl
STATIC_BIN := target/$(STATIC_TARGET)/release/rollouts-guardrails
AARCH64_TARGET := aarch64-unknown-linux-musl
AARCH64_BIN := target/$(AARCH64_TARGET)/release/rollouts-guardrails
# Debian's cross gcc compiles ring's C for aarch64 and links against the musl crt and libc.a of the rustup target
# (.ci/install-deps says why this and not cargo-zigbuild).
AARCH64_ENV := CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc AR_aarch64_unknown_linux_musl=aarch64-linux-gnu-ar \
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
# Where the release assets are published: the printed registration points there. Override for your own host.
DIST_URL ?= https://github.com/rollouts-guardrails/rollouts-guardrails/releases/download/v$(VERSION)
CYCLONEDX := target/tools/cargo-cyclonedx-0.5.9/bin/cargo-cyclonedx
ACTIONLINT_VERSION := v1.7.7
ACTIONLINT := target/tools/actionlint-$(ACTIONLINT_VERSION)/actionlint
ARGO_HELM_CHART ?= $(abspath ../shared/thirdparty/argo-helm/charts/argo-rollouts)

.PHONY: docs help deps build release engines-build test-engines release-static release-static-aarch64 dist test-helm test-dist test-observability actionlint test test-manifests test-static-binary test-hostile fuzz fuzz-smoke test-rust test-gob-go test-grpc-client test-conformance test-validate-go test-policies demo lint fmt bench e2e demo-rollout test-lane-main test-lane-e2e

help:
	@echo "make demo   # a local Prometheus with bundled data, the guardrails against a healthy and a broken canary"
	@echo "make test   # every test: Rust unit + integration (real Prometheus), Go conformance against the real controller client"
	@echo "make lint   # rustfmt check + clippy, warnings denied"
	@echo "make fuzz   # cargo-fuzz on every decoder for FUZZ_SECONDS (default 300) each"
	@echo "make bench  # ~7 min: ours vs argo's sample plugin, the built-in provider and a direct query, then 2,000 AnalysisRuns x 4 guardrails at controller scale; rewrites BENCHMARKS.md"
	@echo "make docs   # regenerate docs/fault-matrix.md (every guardrail × every fault, both faces)"
	@echo "make build  # debug build;  make release: optimized binary at $(BIN)"
	@echo "make release-static  # fully static (musl) binary at $(STATIC_BIN)"
	@echo "make dist   # static binaries for x86_64 and aarch64, dist/SHA256SUMS, a CycloneDX SBOM, the registration snippet"

deps:
	@.ci/install-deps

# The committed fault matrix; `make test` only checks its stable content against a run written under target/.
docs: deps
	GUARDRAILS_WRITE_DOCS=1 $(CARGO) test --locked --test faces fault_matrix

build: deps
	$(CARGO) build --locked

release: deps
	$(CARGO) build --locked --release

# Two lanes at once on 2 cores: the Rust and Go suites one after another, and beside them the end-to-end control
# plane (its Go binaries build once into target/e2e/bin; its scenarios mostly wait on the controller's clock).
# Each lane's output is kept in target/test-<lane>.log and printed whole when the lane ends.
TEST_MAIN := test-rust test-gob-go test-grpc-client test-conformance test-manifests test-validate-go test-static-binary \
  test-hostile fuzz-smoke test-helm test-dist test-observability actionlint
test: deps
	@mkdir -p target
	@$(MAKE) --no-print-directory -j2 test-lane-main test-lane-e2e

test-lane-main:
	@status=0; $(MAKE) --no-print-directory -j1 $(TEST_MAIN) >target/test-main.log 2>&1 || status=$$?; \
	  echo "=== lane: Rust and Go suites (exit $$status)"; cat target/test-main.log; exit $$status

test-lane-e2e: release
	@status=0; $(MAKE) --no-print-directory -j1 engines-build e2e test-policies test-engines >target/test-e2e.log 2>&1 || status=$$?; \
	  echo "=== lane: end to end (exit $$status)"; cat target/test-e2e.log; exit $$status

# Unit tests, integration tests against a real and a fake Prometheus, the plugin transport against go-plugin and
# hashicorp/yamux (tests/plugin/plugin_transport.rs runs tests/go/transport-peer), gob golden vectors.
test-rust:
	$(CARGO) test --locked

# Go's own net/rpc + encoding/gob decode the replies the Rust encoder wrote during test-rust.
test-gob-go: test-rust
	cd tests/go/gobgen && go test -count=1 ./...

# A third-party gRPC client (grpcurl, built from the Go module proxy) against `rollouts-guardrails serve`.
test-grpc-client: release
	tests/grpc-client/run.sh "$(abspath $(BIN)) serve"

test-conformance: release
	GUARDRAILS_BIN=$(abspath $(BIN)) tests/go/conformance/run.sh

# Installs only what the demo needs (Prometheus, curl), not the whole of `make deps`.
demo:
	@.ci/install-deps --demo
	$(CARGO) build --locked --release
	examples/demo/demo.sh $(abspath $(BIN))

# Prometheus 3 and Thanos, built once from the Go module proxy into target/engines/bin by
# tests/go/tools/build-engines.sh (pinned by tests/go/tools/{prometheus3,thanos}/go.mod).
engines-build: deps
	tests/go/tools/build-engines.sh

# Every test that queries a real store (those using tests/support/prometheus.rs), once per store besides Debian's
# Prometheus 2 (test-rust runs that one): Prometheus 3, VictoriaMetrics (Debian's), a Thanos Querier over
# Prometheus + sidecar. Same fixtures, same expected verdicts; docs/prometheus-compatibility.md lists how the stores
# differ and the test pinning each. Each entry is <face test target>=<test name filter>.
ENGINE_TESTS := cli=cli:: engine= grpc= plugin=plugin_mode_guardrails::
test-engines: engines-build
	@status=0; for engine in prometheus3 victoriametrics thanos; do \
	  for spec in $(ENGINE_TESTS); do \
	    echo "=== store: $$engine, cargo test --test $${spec%%=*} $${spec#*=}"; \
	    GUARDRAILS_TEST_ENGINE=$$engine $(CARGO) test --locked --no-fail-fast --test $${spec%%=*} $${spec#*=} \
	      || { status=1; echo "=== store: $$engine FAILED (--test $${spec%%=*} $${spec#*=})"; }; \
	  done; \
	done; exit $$status

# The real control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kube-state-metrics,
# Prometheus, the Argo Rollouts controller v1.9.1 and v1.10.1), built once into target/e2e/bin by
# tests/go/tools/build-control-plane.sh, and every scenario of tests/go/e2e against it: one summary line per
# scenario, then `N passed, N failed`.
e2e: deps
	ARGO_HELM_CHART=$(ARGO_HELM_CHART) tests/go/e2e/run.sh

# Starts that control plane, rolls out a healthy and a crash-looping v2 of one app, prints what an operator looks at.
demo-rollout: deps
	tests/go/e2e/demo.sh

# A fully static binary (musl): runs in a controller image without libc.
release-static: deps
	$(CARGO) build --locked --release --target $(STATIC_TARGET)

# The aarch64 static binary: a full release build for that target; build scripts and proc macros (host code) are
# shared with the x86_64 builds in target/release/.
release-static-aarch64: deps
	$(AARCH64_ENV) $(CARGO) build --locked --release --target $(AARCH64_TARGET)

# Release assets in dist/: both static binaries, SHA256SUMS, the CycloneDX SBOM (cargo-cyclonedx, pinned), and the
# metricProviderPlugins registration with the real checksums, printed for DIST_URL.
dist: release-static release-static-aarch64
	@.ci/install-deps --dist
	rm -rf dist && mkdir dist
	cp $(STATIC_BIN) dist/rollouts-guardrails-linux-amd64
	cp $(AARCH64_BIN) dist/rollouts-guardrails-linux-arm64
	$(CYCLONEDX) cyclonedx --format json --spec-version 1.5 --override-filename rollouts-guardrails.cdx >&2
	mv rollouts-guardrails.cdx.json dist/rollouts-guardrails-$(VERSION).cdx.json
	cd dist && sha256sum rollouts-guardrails-* > SHA256SUMS
	@cat dist/SHA256SUMS
	@echo
	@echo "# Attach dist/* to the release at $(DIST_URL), then register the binary of your nodes' architecture"
	@echo "# (Helm: controller.metricProviderPlugins; kustomize: argo-rollouts-config). Drop the init container."
	@echo "metricProviderPlugins:"
	@for arch in amd64 arm64; do \
	  echo "  # linux/$$arch"; \
	  echo "  - name: rollouts-guardrails/prometheus"; \
	  echo "    location: $(DIST_URL)/rollouts-guardrails-linux-$$arch"; \
	  echo "    sha256: $$(sha256sum dist/rollouts-guardrails-linux-$$arch | cut -d' ' -f1)"; \
	  echo "    args:"; \
	  echo "      - --address=http://prometheus-operated.monitoring.svc:9090"; \
	done

# argo-helm's argo-rollouts chart (a copy beside the repository, ARGO_HELM_CHART) rendered with
# manifests/helm/values.yaml by Helm's Go library, every object decoded strictly.
test-helm: deps
	cd tests/go/helm && ARGO_HELM_CHART=$(ARGO_HELM_CHART) GOFLAGS=-mod=mod go test -count=1 ./...

# The aarch64 binary under qemu-user: static, go-plugin handshake in an empty root, check against Prometheus.
test-dist: release-static-aarch64
	tests/dist/run.sh $(abspath $(AARCH64_BIN))

# /metrics in plugin mode after measurements; every dashboard and alert expression parsed and checked against the
# exported names; promtool check rules and test rules.
test-observability: release
	cd tests/go/observability && GOFLAGS=-mod=mod GUARDRAILS_BIN=$(abspath $(BIN)) go test -count=1 ./...

# .github/workflows/ checked by actionlint, built once from the Go module proxy.
actionlint:
	@[ -x $(ACTIONLINT) ] || GOBIN=$(abspath $(dir $(ACTIONLINT))) GOFLAGS=-mod=mod go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)
	$(ACTIONLINT) -shellcheck= .github/workflows/*.yml

# Every YAML under manifests/ and examples/: argo-rollouts' own types (unknown fields rejected) and validation,
# kustomize builds, broken fixtures. (`validate` itself is tested in test-rust: tests/cli/manifests_validate.rs.)
test-manifests: deps
	tests/go/manifests/run.sh

# validate's claims proved with Kubernetes' own code (tests/go/validate): the immutable-field cases against
# k8s.io/kubernetes' Validate*Update and the Rollout CRD's CEL rule, manifests/policies in the apiserver's CEL
# environment with validate's messages, the pinned CRDs against the argo-rollouts module.
test-validate-go: deps
	cd tests/go/validate && GOFLAGS=-mod=mod go test -count=1 ./...

# The same claims on a running kube-apiserver v1.34.4 (tests/go/e2e/policies: etcd, kube-apiserver,
# kube-controller-manager running only the policies' type checker, argo-rollouts v1.9.1's CRDs):
# `kubectl apply -k manifests/policies` and each denial's message, every immutable-field case refused or stored
# as `validate --against` says. Needs tests/go/tools/build-control-plane.sh's binaries (reused when built).
test-policies: release
	tests/go/tools/build-control-plane.sh
	cd tests/go/e2e/policies && GOFLAGS=-mod=readonly GOTOOLCHAIN=local go test -count=1 -v -timeout 10m ./...

# The static binary completes the go-plugin handshake inside an empty root.
test-static-binary: release-static
	tests/static-binary/run.sh $(abspath $(STATIC_BIN))

# Protocol abuse, SIGKILL and restart, leftovers, sustained load (30 callers × 100,000 measurements, RSS curve in
# target/hostile-load.txt) through argo-rollouts' plugin client and raw yamux against the release binary.
test-hostile: release
	cd tests/go/hostile && GOFLAGS=-mod=mod GUARDRAILS_BIN=$(abspath $(BIN)) GUARDRAILS_LOAD_REPORT=$(abspath target/hostile-load.txt) go test -count=1 -timeout 20m ./...

FUZZ_SECONDS ?= 300
# cargo-fuzz (libFuzzer + ASan, nightly) on every decoder, seeded from the golden vectors; installs nightly and
# cargo-fuzz when missing. `make fuzz` for a real run, `fuzz-smoke` (20 s per target) in `make test`.
fuzz:
	fuzz/run.sh $(FUZZ_SECONDS)

fuzz-smoke:
	fuzz/run.sh 20

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# Never part of `make test`. One run, same machine and Prometheus data for every contender, then the controller-scale
# case on a generated fixture (cached under target/bench/); rewrites BENCHMARKS.md and
# docs/bench/latency-throughput.svg (raw figures in target/bench/results.json).
bench: release
	bench/run.sh $(abspath $(BIN))
