#!/usr/bin/env bash
# Runs tests/python/test_etcd3.py (the `etcd3` Python client against Tally).
#
#   tests/python/run.sh [path/to/tally]      # or TALLY_BIN=path/to/tally tests/python/run.sh
#
# Without a path it takes target/release/tally, else target/debug/tally. It installs what the
# test needs with pip (etcd3, protobuf<4 — etcd3's generated code predates protobuf 4 — and
# pytest), starts a 3-member Tally cluster on free loopback ports in a temporary directory,
# runs pytest against it and stops the cluster (also when interrupted or failing).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
source "$root/tests/tally-bin.sh"
bin="$(tally_bin "${1:-}")"
python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null; then
    echo "run.sh: $python not found; the etcd3 test needs Python 3 with pip" >&2
    exit 2
fi
if ! "$python" -m pip --version >/dev/null 2>&1; then
    echo "run.sh: pip is not available for $python (install python3-pip); the etcd3 test needs it" >&2
    exit 2
fi
if ! "$python" -c 'import etcd3, pytest, google.protobuf as p; assert int(p.__version__.split(".")[0]) < 4' 2>/dev/null; then
    echo "run.sh: installing etcd3, protobuf<4, pytest with pip" >&2
    if ! "$python" -m pip install -q --disable-pip-version-check etcd3 'protobuf<4' pytest; then
        echo "run.sh: pip could not install etcd3 'protobuf<4' pytest" >&2
        exit 2
    fi
fi

dir="$(mktemp -d "${TMPDIR:-/tmp}/tally-py-XXXXXX")"
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

# Six free loopback ports (client and peer for each member).
read -r -a ports <<<"$("$python" - <<'PY'
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
)"
initial=""
for i in 0 1 2; do
    initial+="${initial:+,}n$((i + 1))=http://127.0.0.1:${ports[$((2 * i + 1))]}"
done
endpoints=""
for i in 0 1 2; do
    name="n$((i + 1))"
    client="http://127.0.0.1:${ports[$((2 * i))]}"
    peer="http://127.0.0.1:${ports[$((2 * i + 1))]}"
    endpoints+="${endpoints:+,}127.0.0.1:${ports[$((2 * i))]}"
    RUST_LOG=warn NO_COLOR=1 "$bin" server --name "$name" --data-dir "$dir/$name" \
        --listen-client-urls "$client" --advertise-client-urls "$client" \
        --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
        --initial-cluster "$initial" --initial-cluster-token "$(basename "$dir")" \
        --heartbeat-interval 50 --election-timeout 500 >"$dir/$name.log" 2>&1 </dev/null &
    pids+=($!)
done

# Wait until every member accepts connections (plain TCP first: gRPC would back off for
# seconds after a refused connection), then until it answers Status with a leader.
TALLY_ENDPOINTS="$endpoints" "$python" - <<'PY'
import os, socket, sys, time
import etcd3
deadline = time.time() + 30
last = None
for ep in os.environ["TALLY_ENDPOINTS"].split(","):
    host, port = ep.split(":")
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            break
        except OSError as e:
            last = e
        if time.time() > deadline:
            sys.exit(f"run.sh: member {ep} does not listen within 30 s: {last!r}")
        time.sleep(0.05)
    while True:
        try:
            if etcd3.client(host=host, port=int(port), timeout=2).status().leader is not None:
                break
        except Exception as e:  # not up yet
            last = e
        if time.time() > deadline:
            sys.exit(f"run.sh: member {ep} not ready within 30 s: {last!r}")
        time.sleep(0.1)
PY

cd "$here"
# The client library warns about its own deprecated protobuf use and a watch thread that
# outlives a closed client; neither is about Tally.
TALLY_ENDPOINTS="$endpoints" "$python" -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning \
    -W ignore::pytest.PytestUnhandledThreadExceptionWarning test_etcd3.py "${@:2}"
