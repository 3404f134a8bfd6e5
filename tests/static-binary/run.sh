#!/usr/bin/env bash
# Proves the release binary needs nothing from its filesystem (no libc, no loader): it is statically linked,
# and it completes the go-plugin handshake inside an empty root that holds only the binary — as in an Argo
# Rollouts controller image, which ships no libc.
#
#   tests/static-binary/run.sh target/x86_64-unknown-linux-musl/release/rollouts-guardrails
#
# As root it uses chroot; otherwise `unshare --map-root-user` gives a user namespace in which chroot is allowed.
set -euo pipefail

bin="${1:?usage: $0 STATIC_BINARY}"
[ -x "$bin" ] || { echo "static-binary: $bin is not an executable (run make release-static)" >&2; exit 1; }

# 1. No program interpreter (PT_INTERP) and no shared-library dependency (DT_NEEDED).
if readelf --program-headers "$bin" | grep -q 'INTERP'; then
  echo "static-binary: FAIL: $bin has a program interpreter (dynamically linked)" >&2; exit 1
fi
if readelf --dynamic "$bin" | grep -q 'NEEDED'; then
  echo "static-binary: FAIL: $bin needs shared libraries:" >&2
  readelf --dynamic "$bin" | grep NEEDED >&2; exit 1
fi

# 2. The handshake inside an empty root: the root holds the binary and nothing else. The plugin's private
#    socket directory goes under TMPDIR=/ (a controller mounts an emptyDir at /tmp; this root has none).
root="$(mktemp -d)"
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$root"
}
trap cleanup EXIT
cp "$bin" "$root/rollouts-guardrails"
listing="$(cd "$root" && find . -mindepth 1)"
[ "$listing" = "./rollouts-guardrails" ] || { echo "static-binary: root not empty: $listing" >&2; exit 1; }

# Absolute paths: the plugin runs under `env -i` (no PATH), with only the cookie the controller would set.
chroot_bin="$(command -v chroot)" || { echo "static-binary: chroot not found (coreutils)" >&2; exit 1; }
if [ "$(id -u)" -eq 0 ]; then
  enter=("$chroot_bin" "$root")
else
  unshare_bin="$(command -v unshare)" || { echo "static-binary: not root and no unshare (util-linux)" >&2; exit 1; }
  enter=("$unshare_bin" --map-root-user "$chroot_bin" "$root")
fi
out="$root.stdout"
trap 'cleanup; rm -f "$out"' EXIT
env -i ARGO_ROLLOUTS_RPC_PLUGIN=metricprovider TMPDIR=/ GUARDRAILS_PROMETHEUS_ADDRESS=http://prometheus.invalid:9090 \
  "${enter[@]}" /rollouts-guardrails >"$out" 2>"$root.stderr" &
pid=$!
line=""
for _ in $(seq 1 100); do
  line="$(head -n1 "$out" 2>/dev/null || true)"
  [ -n "$line" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$line" ]; then
  echo "static-binary: FAIL: no handshake line within 10s; stderr:" >&2
  cat "$root.stderr" >&2; rm -f "$root.stderr"; exit 1
fi
rm -f "$root.stderr"
# go-plugin: CORE-PROTOCOL|APP-PROTOCOL|NETWORK|ADDRESS|PROTOCOL|SERVER-CERT; Argo Rollouts' metric providers
# speak net/rpc without AutoMTLS: 1|1|unix|/…/plugin…|netrpc|
if ! [[ "$line" =~ ^1\|1\|unix\|(/[^|]+)\|netrpc\|$ ]]; then
  echo "static-binary: FAIL: unexpected handshake line: $line" >&2; exit 1
fi
socket="${BASH_REMATCH[1]}"
[ -S "$root$socket" ] || { echo "static-binary: FAIL: the socket $socket does not exist inside the root" >&2; exit 1; }
kill -0 "$pid" 2>/dev/null || { echo "static-binary: FAIL: the plugin exited after its handshake" >&2; exit 1; }
echo "static-binary: ok: statically linked; handshake \`$line\` inside an empty root ($(du -h "$bin" | cut -f1))"
