#!/usr/bin/env bash
# The live view of Raft (/ui) in headless Chromium: starts `tally dev` (3 members, on free
# ports), runs tests/ui/scenarios.mjs (Playwright) against the page it serves, and stops it.
# Each scenario clicks the page's controls and checks what the page shows; each leaves a
# screenshot in $UI_SCREENSHOTS (default target/ui-screenshots).
#
#   tests/ui/run.sh [path/to/tally]
#
# Installs what is missing: Debian's chromium (apt) and playwright-core (npm ci).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
source "$root/tests/tally-bin.sh"
bin="$(tally_bin "${1:-}")"
out="${UI_SCREENSHOTS:-$root/target/ui-screenshots}"
mkdir -p "$out"

if ! command -v chromium >/dev/null; then
    echo "run.sh: installing chromium" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
if [ ! -d "$here/node_modules/playwright-core" ]; then
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# tally dev's ports for client port P: P-1 (the page), and for each member i (0, 2, 3 times
# 10000 plus P) its client, peer and proxied peer ports.
ports_free() {
    local p=$1 base
    in_use $((p - 1)) && return 1
    for base in $p $((20000 + p)) $((30000 + p)); do
        in_use "$base" || in_use $((base + 1)) || in_use $((base + 2)) || in_use $((base - 198)) || continue
        return 1
    done
}
# Every port stays below the kernel's ephemeral range (32768 and up): there an outgoing
# connection, such as a member's to its peers, could take one before its member binds it.
port=""
for _ in $(seq 200); do
    candidate=$((1300 + RANDOM % 1400))
    case $candidate in 23[7-9]?) continue ;; esac # a default `tally dev` someone may be running
    if ports_free "$candidate"; then port=$candidate; break; fi
done
[ -n "$port" ] || { echo "run.sh: no free ports for tally dev" >&2; exit 1; }
ui_port=$((port - 1))

work="$(mktemp -d "${TMPDIR:-/tmp}/tally-ui-XXXXXX")"
"$bin" dev --dir "$work/data" --client-port "$port" --ui-port "$ui_port" >"$work/dev.log" 2>&1 &
dev=$!
cleanup() {
    kill -TERM "$dev" 2>/dev/null || true
    wait "$dev" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

for _ in $(seq 200); do
    grep -q "cluster is up" "$work/dev.log" && break
    kill -0 "$dev" 2>/dev/null || { cat "$work/dev.log" >&2; echo "run.sh: tally dev exited" >&2; exit 1; }
    sleep 0.1
done
grep -q "cluster is up" "$work/dev.log" || { cat "$work/dev.log" >&2; echo "run.sh: no leader in 20 s" >&2; exit 1; }

if ! node "$here/scenarios.mjs" --url "http://127.0.0.1:$ui_port/ui" --out "$out"; then
    echo "run.sh: tally dev's output:" >&2
    cat "$work/dev.log" >&2
    for log in "$work"/data/*.log; do echo "--- $log" >&2; tail -20 "$log" >&2; done
    exit 1
fi
echo "screenshots in $out"
