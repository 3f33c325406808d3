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

source "$root/tests/zk/cluster.sh"
zk_workdir tally-zkj
# Recipes create their parents as containers: deleted within 10 ms of emptying here (1 s by
# default), so every test meets that deletion, not only an unlucky run.
zk_cluster "$bin" --zk-container-check-interval 10ms

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
