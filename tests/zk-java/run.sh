#!/usr/bin/env bash
# Runs tests/zk-java: ZooKeeper's Java client and Apache Curator's recipes (JUnit 5, Maven)
# against a 3-member Tally cluster serving ZooKeeper's protocol (--listen-zk-urls).
#
#   tests/zk-java/run.sh [path/to/tally] [mvn args...]      e.g. -Dtest=CuratorRecipesTest
#
# Needs java (17+) and mvn; Maven fetches the client libraries into its usual local repository
# (~/.m2, or whatever -Dmaven.repo.local / settings.xml say). The script starts the cluster on
# free loopback ports in a temporary directory, runs `mvn -q -B test` with the members'
# ZooKeeper addresses in TALLY_ZK_HOSTS (their etcd client URLs in TALLY_CLIENT_URLS and pids in
# TALLY_PIDS, for the test that kills the leader), and stops the cluster (also when interrupted
# or failing, printing the members' log tails on failure).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
source "$root/tests/tally-bin.sh"
bin="$(tally_bin "${1:-}")"
for tool in java mvn python3; do
    if ! command -v "$tool" >/dev/null; then
        echo "run.sh: $tool is not on PATH; the Java ZooKeeper/Curator test needs it" >&2
        exit 2
    fi
done

dir="$(mktemp -d "${TMPDIR:-/tmp}/tally-zkj-XXXXXX")"
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
read -r -a ports <<<"$(python3 - <<'PY'
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
client_urls=""
for i in 0 1 2; do
    name="n$((i + 1))"
    client="http://127.0.0.1:${ports[$((3 * i))]}"
    peer="http://127.0.0.1:${ports[$((3 * i + 1))]}"
    zk="127.0.0.1:${ports[$((3 * i + 2))]}"
    zk_hosts+="${zk_hosts:+,}$zk"
    client_urls+="${client_urls:+,}$client"
    RUST_LOG="${RUST_LOG:-warn}" NO_COLOR=1 "$bin" server --name "$name" --data-dir "$dir/$name" \
        --listen-client-urls "$client" --advertise-client-urls "$client" \
        --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
        --initial-cluster "$initial" --initial-cluster-token "$(basename "$dir")" \
        --listen-zk-urls "tcp://$zk" >"$dir/$name.log" 2>&1 </dev/null &
    pids+=($!)
done

cd "$here"
rm -rf target/surefire-reports
status=0
TALLY_ZK_HOSTS="$zk_hosts" TALLY_CLIENT_URLS="$client_urls" TALLY_PIDS="${pids[*]}" \
    mvn -q -B -Dstyle.color=never test "${@:2}" 2>&1 | sed -u 's/\x1b\[0m//g' || status=$?

# mvn -q prints nothing when every test passes: count them from Surefire's reports.
tests=0 failed=0 skipped=0
for report in target/surefire-reports/TEST-*.xml; do
    [[ -f "$report" ]] || continue
    suite="$(grep -m1 -o '<testsuite [^>]*>' "$report")"
    attr() { sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p" <<<"$suite"; }
    tests=$((tests + $(attr tests)))
    failed=$((failed + $(attr failures) + $(attr errors)))
    skipped=$((skipped + $(attr skipped)))
done
echo "zk-java: $((tests - failed - skipped)) passed, $failed failed, $skipped skipped"
if [[ $status -eq 0 && $tests -eq 0 ]]; then
    echo "run.sh: no test ran" >&2
    status=1
fi
exit $status
