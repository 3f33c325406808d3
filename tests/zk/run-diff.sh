#!/usr/bin/env bash
# Runs tests/zk/differential.py: the same seeded random requests against a 3-member Tally cluster
# serving ZooKeeper's protocol (--listen-zk-urls) and against a real ZooKeeper 3.8
# (scripts/zk-ref), every answer and watch event compared.
#
#   tests/zk/run-diff.sh [path/to/tally] [differential.py args...]
#
# e.g. tests/zk/run-diff.sh target/debug/tally --seed 7 -v, or --seeds 500 --keep-going.
# Installs kazoo with pip when missing, starts both on free loopback ports in a temporary
# directory, runs the comparison and stops them (also when interrupted or failing, then printing
# their logs' tails). Both sides delete emptied containers and expired TTL nodes only once a
# day, so that when they do is not a race between the two (each is tested on its own).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
source "$root/tests/tally-bin.sh"
bin="$(tally_bin "${1:-}")"
python="${PYTHON:-python3}"
if ! "$python" -c 'import kazoo' 2>/dev/null; then
    if ! "$python" -m pip --version >/dev/null 2>&1; then
        echo "run-diff.sh: pip is not available for $python (install python3-pip); the test needs kazoo" >&2
        exit 2
    fi
    echo "run-diff.sh: installing kazoo with pip" >&2
    "$python" -m pip install -q --disable-pip-version-check kazoo
fi

dir="$(mktemp -d "${TMPDIR:-/tmp}/tally-zkdiff-XXXXXX")"
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

# Ten free loopback ports: client, peer and ZooKeeper for each member, and ZooKeeper's own.
read -r -a ports <<<"$("$python" - <<'PY'
import socket
socks = [socket.socket() for _ in range(10)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
)"

ZK_REF_JAVA_OPTS="-Dznode.container.checkIntervalMs=86400000" \
    "$root/scripts/zk-ref" "${ports[9]}" "$dir/zookeeper" >"$dir/zookeeper.log" 2>&1 </dev/null &
pids+=($!)

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
        --listen-zk-urls "tcp://$zk" --zk-container-check-interval 24h >"$dir/$name.log" 2>&1 </dev/null &
    pids+=($!)
done

"$python" "$here/differential.py" --tally "$zk_hosts" --zk "127.0.0.1:${ports[9]}" "${@:2}"
