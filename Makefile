# rollouts-guardrails — every target installs what it needs first (`deps` is idempotent).
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
BIN := target/release/rollouts-guardrails

.PHONY: help deps build release test test-rust test-conformance demo lint fmt

help:
	@echo "make demo   # a local Prometheus with bundled data, the guardrails against a healthy and a broken canary"
	@echo "make test   # every test: Rust unit + integration (real Prometheus), Go conformance against the real controller client"
	@echo "make lint   # rustfmt check + clippy, warnings denied"
	@echo "make build  # debug build;  make release: optimized binary at $(BIN)"

deps:
	@.ci/install-deps

build: deps
	$(CARGO) build --locked

release: deps
	$(CARGO) build --locked --release

test: deps test-rust test-conformance

test-rust:
	$(CARGO) test --locked

test-conformance: release
	GUARDRAILS_BIN=$(abspath $(BIN)) tests/conformance/run.sh

demo: release
	examples/demo/demo.sh $(abspath $(BIN))

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all
