#!/usr/bin/env bash
# make e2e: builds the control plane (../tools/build-control-plane.sh, reused when built) and the release plugin,
# then runs the scenarios against the real control plane. Prints one line per scenario and `N passed, N failed`;
# exits non-zero on any failure. E2E_RUN=<regexp> selects scenarios (go test -run), E2E_KEEP=1 keeps the temp dir.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
"$here/../tools/build-control-plane.sh"
(cd "$root" && cargo build --release --locked)
mkdir -p "$root/target/e2e"
log="$root/target/e2e/e2e.log"
start=$SECONDS
set +e
(cd "$here" && GOFLAGS=-mod=readonly GOTOOLCHAIN=local go test -count=1 -v -timeout 30m -run "${E2E_RUN:-.}" ./...) 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
# One line per scenario (leaf subtests), then the totals.
awk '
  /^[ \t]*--- (PASS|FAIL|SKIP): / {
    r = $2; sub(/:$/, "", r); name = $3; res[name] = r; dur[name] = $4; order[++n] = name
  }
  END {
    for (i = 1; i <= n; i++) { a = order[i]; for (j = 1; j <= n; j++) if (index(order[j], a "/") == 1) parent[a] = 1 }
    for (i = 1; i <= n; i++) {
      a = order[i]; if ((a in parent) || !(a ~ /\//)) continue
      short = a; sub(/.*\//, "", short)
      printf "e2e %-4s %-48s %s\n", res[a], short, dur[a]
      if (res[a] == "PASS") p++; else if (res[a] == "FAIL") f++
    }
    printf "%d passed, %d failed\n", p, f
    if (f > 0) exit 1
  }' "$log" | tee "$root/target/e2e/summary.txt" && summary_rc=0 || summary_rc=1
echo "e2e: scenarios took $((SECONDS - start)) s (log: target/e2e/e2e.log)"
if ((rc != 0 || summary_rc != 0)); then
  grep -q '^ok ' "$log" || grep -h 'e2e:' "$log" | tail -n 5 >&2 || true
  exit 1
fi
