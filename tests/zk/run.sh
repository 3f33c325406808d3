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

source "$here/cluster.sh"
zk_workdir tally-zk
zk_cluster "$bin"

cd "$here"
TALLY_ZK_HOSTS="$zk_hosts" TALLY_PIDS="${pids[*]}" "$python" -m pytest -q -p no:cacheprovider test_kazoo.py "${@:2}"
