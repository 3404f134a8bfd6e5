#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 60), seeded from the golden vectors, and prints the
# executions per target. Installs what it needs first: the nightly toolchain (libFuzzer and AddressSanitizer
# need -Z flags) and cargo-fuzz. A crash fails the run; its input is kept under fuzz/artifacts/<target>/ and
# must become a regression test.
#
# Usage: fuzz/run.sh [SECONDS]        e.g. `make fuzz` (300 s each), CI smoke run: fuzz/run.sh 20
set -euo pipefail
seconds="${1:-60}"
cd "$(dirname "$0")"

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal >&2
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version 0.13.2 >&2

seeds() {
  case "$1" in
    gob_decode) echo ../tests/fixtures/gob ;;
    *) echo "seeds/$1" ;;
  esac
}

total=0
for target in gob_decode netrpc_framing plugin_config prometheus_response; do
  mkdir -p "corpus/$target"
  log="$(mktemp)"
  # shellcheck disable=SC2046
  if ! cargo +nightly fuzz run -O "$target" "corpus/$target" $(seeds "$target") -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=1048576 >"$log" 2>&1; then
    tail -60 "$log" >&2
    if grep -q "failed to build fuzz script" "$log"; then
      echo "fuzz: $target does not build (see the compiler's error above)" >&2
    else
      echo "fuzz: $target found a crash (input under fuzz/artifacts/$target/)" >&2
    fi
    rm -f "$log"
    exit 1
  fi
  runs="$(grep -o 'Done [0-9]* runs' "$log" | grep -o '[0-9]*' || echo 0)"
  rm -f "$log"
  total=$((total + runs))
  echo "fuzz: $target: $runs executions in ${seconds}s, no crash"
done
echo "fuzz: $total executions in total"
