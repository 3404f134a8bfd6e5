# rollouts-guardrails — every target installs what it needs first (`deps` is idempotent).
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
BIN := target/release/rollouts-guardrails
STATIC_TARGET := x86_64-unknown-linux-musl
STATIC_BIN := target/$(STATIC_TARGET)/release/rollouts-guardrails

.PHONY: docs help deps build release release-static test test-manifests test-static-binary test-hostile fuzz fuzz-smoke test-rust test-gob-go test-grpc-client test-conformance demo lint fmt bench

help:
	@echo "make demo   # a local Prometheus with bundled data, the guardrails against a healthy and a broken canary"
	@echo "make test   # every test: Rust unit + integration (real Prometheus), Go conformance against the real controller client"
	@echo "make lint   # rustfmt check + clippy, warnings denied"
	@echo "make fuzz   # cargo-fuzz on every decoder for FUZZ_SECONDS (default 300) each"
	@echo "make bench  # ~6 min: ours vs argo's sample plugin, the built-in provider and a direct query; rewrites BENCHMARKS.md"
	@echo "make docs   # regenerate docs/fault-matrix.md (every guardrail × every fault, both faces)"
	@echo "make build  # debug build;  make release: optimized binary at $(BIN)"
	@echo "make release-static  # fully static (musl) binary at $(STATIC_BIN)"

deps:
	@.ci/install-deps

# The committed fault matrix; `make test` only checks its stable content against a run written under target/.
docs: deps
	GUARDRAILS_WRITE_DOCS=1 $(CARGO) test --locked --test fault_matrix

build: deps
	$(CARGO) build --locked

release: deps
	$(CARGO) build --locked --release

test: deps test-rust test-gob-go test-grpc-client test-conformance test-manifests test-static-binary test-hostile fuzz-smoke

# Unit tests, integration tests against a real and a fake Prometheus, the plugin transport against go-plugin and
# hashicorp/yamux (tests/plugin_transport.rs runs tests/transport-peer), gob golden vectors.
test-rust:
	$(CARGO) test --locked

# Go's own net/rpc + encoding/gob decode the replies the Rust encoder wrote during test-rust.
test-gob-go: test-rust
	cd tests/gobgen && go test -count=1 ./...

# A third-party gRPC client (grpcurl, built from the Go module proxy) against `rollouts-guardrails serve`.
test-grpc-client: release
	tests/grpc-client/run.sh "$(abspath $(BIN)) serve"

test-conformance: release
	GUARDRAILS_BIN=$(abspath $(BIN)) tests/conformance/run.sh

demo: release
	examples/demo/demo.sh $(abspath $(BIN))

# A fully static binary (musl): runs in a controller image without libc.
release-static: deps
	$(CARGO) build --locked --release --target $(STATIC_TARGET)

# Every YAML under manifests/ and examples/: argo-rollouts' own types (unknown fields rejected) and validation,
# kustomize builds, broken fixtures. (`validate` itself is tested in test-rust: tests/manifests_validate.rs.)
test-manifests: deps
	tests/manifests/run.sh

# The static binary completes the go-plugin handshake inside an empty root.
test-static-binary: release-static
	tests/static-binary/run.sh $(abspath $(STATIC_BIN))

# Protocol abuse, SIGKILL and restart, leftovers, sustained load (30 callers × 100,000 measurements, RSS curve in
# target/hostile-load.txt) through argo-rollouts' plugin client and raw yamux against the release binary.
test-hostile: release
	cd tests/hostile && GOFLAGS=-mod=mod GUARDRAILS_BIN=$(abspath $(BIN)) GUARDRAILS_LOAD_REPORT=$(abspath target/hostile-load.txt) go test -count=1 -timeout 20m ./...

FUZZ_SECONDS ?= 300
# cargo-fuzz (libFuzzer + ASan, nightly) on every decoder, seeded from the golden vectors; installs nightly and
# cargo-fuzz when missing. `make fuzz` for a real run, `fuzz-smoke` (20 s per target) in `make test`.
fuzz:
	fuzz/run.sh $(FUZZ_SECONDS)

fuzz-smoke:
	fuzz/run.sh 20

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# Never part of `make test`. One run, same machine and Prometheus data for every contender; rewrites BENCHMARKS.md
# and docs/bench/latency-throughput.svg (raw figures in target/bench/results.json).
bench: release
	bench/run.sh $(abspath $(BIN))
