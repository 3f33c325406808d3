#!/usr/bin/env bash
# Runs tests/zk/test_kazoo.py: kazoo (ZooKeeper's Python client) against a 3-member Tally
# cluster serving ZooKeeper's protocol (--listen-zk-urls).
#
#   tests/zk/run.sh [path/to/tally] [pytest args...]
#
# Installs kazoo and pytest with pip when missing, starts the cluster on free loopback ports in
# a temporary directory, runs pytest and stops the cluster (also when interrupted or failing).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
source "$root/tests/tally-bin.sh"
bin="$(tally_bin "${1:-}")"
python="${PYTHON:-python3}"
if ! "$python" -m pip --version >/dev/null 2>&1; then
    echo "run.sh: pip is not available for $python (install python3-pip); the kazoo test needs it" >&2
    exit 2
fi
if ! "$python" -c 'import kazoo, pytest' 2>/dev/null; then
    echo "run.sh: installing kazoo and pytest with pip" >&2
    "$python" -m pip install -q --disable-pip-version-check kazoo pytest
fi

dir="$(mktemp -d "${TMPDIR:-/tmp}/tally-zk-XXXXXX")"
pids=()
cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ $status -ne 0 ]]; then
        for log in "$dir"/*.log; do
            [[ -f "$log" ]] || continue
            echo "----- $log (tail) -----" >&2
            tail -c 4000 "$log" >&2 || true
        done
    fi
    rm -rf "$dir"
    exit $status
}
trap cleanup EXIT INT TERM

# Nine free loopback ports (client, peer and ZooKeeper for each member).
read -r -a ports <<<"$("$python" - <<'PY'
import socket
socks = [socket.socket() for _ in range(9)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
)"
initial=""
for i in 0 1 2; do
    initial+="${initial:+,}n$((i + 1))=http://127.0.0.1:${ports[$((3 * i + 1))]}"
done
zk_hosts=""
for i in 0 1 2; do
    name="n$((i + 1))"
    client="http://127.0.0.1:${ports[$((3 * i))]}"
    peer="http://127.0.0.1:${ports[$((3 * i + 1))]}"
    zk="127.0.0.1:${ports[$((3 * i + 2))]}"
    zk_hosts+="${zk_hosts:+,}$zk"
    RUST_LOG=warn NO_COLOR=1 "$bin" server --name "$name" --data-dir "$dir/$name" \
        --listen-client-urls "$client" --advertise-client-urls "$client" \
        --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
        --initial-cluster "$initial" --initial-cluster-token "$(basename "$dir")" \
        --listen-zk-urls "tcp://$zk" >"$dir/$name.log" 2>&1 </dev/null &
    pids+=($!)
done

cd "$here"
TALLY_ZK_HOSTS="$zk_hosts" TALLY_PIDS="${pids[*]}" "$python" -m pytest -q -p no:cacheprovider test_kazoo.py "${@:2}"
