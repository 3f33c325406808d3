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

source "$here/cluster.sh"
zk_workdir tally-zkdiff
zk_port="$(free_ports 1)"
ZK_REF_JAVA_OPTS="-Dznode.container.checkIntervalMs=86400000" \
    "$root/scripts/zk-ref" "$zk_port" "$dir/zookeeper" >"$dir/zookeeper.log" 2>&1 </dev/null &
pids+=($!)
zk_cluster "$bin" --zk-container-check-interval 24h

"$python" "$here/differential.py" --tally "$zk_hosts" --zk "127.0.0.1:$zk_port" "${@:2}"
