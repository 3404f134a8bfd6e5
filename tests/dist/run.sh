#!/usr/bin/env bash
# Proves the aarch64 release binary on an x86_64 machine under qemu-user, without binfmt (qemu-aarch64 is called
# directly): it is statically linked for AArch64, it completes the go-plugin handshake inside an empty root (the
# root holds the binary and the emulator, itself static), and one `check` against the test Prometheus (Debian's
# prometheus on the bundled fixture) returns the verdicts the amd64 binary returns.
#
#   tests/dist/run.sh target/aarch64-unknown-linux-musl/release/rollouts-guardrails
#
# Prints a transcript of what it ran. Needs qemu-user-static (or qemu-user), promtool, prometheus, curl, readelf.
set -euo pipefail

bin="${1:?usage: $0 AARCH64_STATIC_BINARY}"
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
[ -x "$bin" ] || { echo "dist: $bin is not an executable (run make dist)" >&2; exit 1; }
qemu="$(command -v qemu-aarch64-static || command -v qemu-aarch64 || true)"
[ -n "$qemu" ] || { echo "dist: qemu-aarch64 not found (Debian: qemu-user-static)" >&2; exit 1; }

# 1. An AArch64 ELF with no program interpreter and no shared-library dependency.
readelf --file-header "$bin" | grep -q 'Machine:.*AArch64' || { echo "dist: FAIL: $bin is not an AArch64 ELF" >&2; exit 1; }
if readelf --program-headers "$bin" | grep -q INTERP || readelf --dynamic "$bin" | grep -q NEEDED; then
  echo "dist: FAIL: $bin is dynamically linked" >&2; exit 1
fi
echo "dist: $bin: AArch64, statically linked, $(stat -c %s "$bin") bytes"

work="$(mktemp -d)"
plugin_pid=""
prom_pid=""
cleanup() {
  [ -n "$plugin_pid" ] && kill "$plugin_pid" 2>/dev/null && wait "$plugin_pid" 2>/dev/null
  [ -n "$prom_pid" ] && kill "$prom_pid" 2>/dev/null && wait "$prom_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

echo "\$ qemu-aarch64 rollouts-guardrails --version"
"$qemu" "$bin" --version

# 2. The handshake inside an empty root, under env -i with only the controller's cookie (as tests/static-binary).
root="$work/root"
mkdir "$root"
cp "$bin" "$root/rollouts-guardrails"
if command -v qemu-aarch64-static >/dev/null 2>&1; then
  cp "$qemu" "$root/qemu-aarch64"
else
  # qemu-user's dynamically linked emulator cannot run inside an empty root: run it outside, the binary inside.
  echo "dist: qemu-aarch64 is not static (install qemu-user-static): the handshake runs outside the empty root" >&2
fi
if [ -x "$root/qemu-aarch64" ]; then
  # Absolute paths: env -i leaves no PATH.
  if [ "$(id -u)" -eq 0 ]; then enter=("$(command -v chroot)" "$root")
  else enter=("$(command -v unshare)" --map-root-user "$(command -v chroot)" "$root"); fi
  launch=("${enter[@]}" /qemu-aarch64 /rollouts-guardrails)
  socket_root="$root"
else
  launch=("$qemu" "$root/rollouts-guardrails")
  socket_root=""
fi
echo "\$ env -i ARGO_ROLLOUTS_RPC_PLUGIN=metricprovider TMPDIR=/ chroot ROOT /qemu-aarch64 /rollouts-guardrails   # ROOT: $(cd "$root" && find . -mindepth 1 | sort | tr '\n' ' ')"
tmpdir="/"
[ -n "$socket_root" ] || tmpdir="$work"
env -i ARGO_ROLLOUTS_RPC_PLUGIN=metricprovider TMPDIR="$tmpdir" "${launch[@]}" \
  >"$work/handshake.out" 2>"$work/handshake.err" &
plugin_pid=$!
line=""
for _ in $(seq 1 300); do
  line="$(head -n1 "$work/handshake.out" 2>/dev/null || true)"
  [ -n "$line" ] && break
  kill -0 "$plugin_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$line" ] || { echo "dist: FAIL: no handshake within 30s; stderr:" >&2; cat "$work/handshake.err" >&2; exit 1; }
echo "$line"
[[ "$line" =~ ^1\|1\|unix\|(/[^|]+)\|netrpc\|$ ]] || { echo "dist: FAIL: unexpected handshake line: $line" >&2; exit 1; }
[ -S "$socket_root${BASH_REMATCH[1]}" ] || { echo "dist: FAIL: no socket at ${BASH_REMATCH[1]}" >&2; exit 1; }
kill "$plugin_pid" 2>/dev/null; wait "$plugin_pid" 2>/dev/null || true
plugin_pid=""

# 3. One check each way against the test Prometheus: the fixture evaluated at its END (2026-01-01T12:00:00Z).
promtool tsdb create-blocks-from openmetrics "$repo/tests/fixtures/prometheus/kube-state-metrics.om" "$work/tsdb" >/dev/null
printf 'global:\n  scrape_interval: 1h\n' >"$work/prometheus.yml"
port=""
for _ in 1 2 3; do
  candidate=$((20000 + RANDOM % 12000))
  (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null && continue
  prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" --storage.tsdb.retention.time=100y \
    --web.listen-address="127.0.0.1:$candidate" >"$work/prometheus.log" 2>&1 &
  prom_pid=$!
  for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$candidate/-/ready" >/dev/null 2>&1 && { port=$candidate; break; }
    kill -0 "$prom_pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$port" ] && break
  kill "$prom_pid" 2>/dev/null; wait "$prom_pid" 2>/dev/null || true; prom_pid=""
done
[ -n "$port" ] || { echo "dist: FAIL: Prometheus did not start:" >&2; cat "$work/prometheus.log" >&2; exit 1; }

check() { # NAMESPACE ROLLOUT HASH WANT_PHASE WANT_EXIT
  local out status
  echo "\$ qemu-aarch64 rollouts-guardrails check --prometheus http://127.0.0.1:PORT --guardrail restarts --namespace $1 --rollout $2 --pod-template-hash $3 --at 2026-01-01T12:00:00Z --output json"
  set +e
  out="$("$qemu" "$bin" check --prometheus "http://127.0.0.1:$port" --guardrail restarts --namespace "$1" --rollout "$2" \
    --pod-template-hash "$3" --at 2026-01-01T12:00:00Z --output json)"
  status=$?
  set -e
  echo "$out" | cut -c1-400
  echo "(exit $status)"
  [ "$status" -eq "$5" ] || { echo "dist: FAIL: exit $status, want $5" >&2; exit 1; }
  echo "$out" | grep -q "\"phase\":\"$4\"" || { echo "dist: FAIL: phase is not $4" >&2; exit 1; }
}
check shop web 6c8d7f9a1 Successful 0
check pay api 7f6e5d4c3 Failed 1
echo "dist: ok: the aarch64 binary handshakes in an empty root and checks against Prometheus under $(basename "$qemu")"
