#!/usr/bin/env bash
# Runs the Go conformance tests in tests/go (the official etcd Go client, go.etcd.io/etcd/client/v3)
# twice: against the reference etcd (3-member cluster of etcd 3.5.x, built by scripts/etcd-ref)
# and against Tally. The tests themselves start their 3-member clusters (tests/go/cluster).
#
#   tests/go/run.sh [path/to/tally] [go test flags...]   # or TALLY_BIN=path/to/tally tests/go/run.sh
#   tests/go/run.sh target/debug/tally -run Watch        # a subset
#
# Without a path it takes target/release/tally, else target/debug/tally. It installs nothing: Go
# fetches the client modules itself (GOFLAGS defaults to -buildvcs=false). Prints one summary line
# per system and exits non-zero if any test fails against either.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
source "$root/tests/tally-bin.sh"
bin="$(tally_bin "${1:-}")"
shift $(( $# > 0 ? 1 : 0 ))
if ! command -v go >/dev/null; then
    echo "run.sh: go is not installed; the Go client tests need Go (see tests/go/go.mod for the version)" >&2
    exit 2
fi
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

etcd_dir="$("$root/scripts/etcd-ref" 3.5)"
etcd_version="$("$etcd_dir/etcd" --version | awk '/etcd Version/ {print $3}')"

logs="$(mktemp -d "${TMPDIR:-/tmp}/tally-go-XXXXXX")"
trap 'rm -rf "$logs"' EXIT
cd "$here"
# Compile first, so that download and build errors are told apart from test failures.
if ! go test -count=1 -exec true ./... >"$logs/build.log" 2>&1; then
    cat "$logs/build.log" >&2
    echo "run.sh: the Go tests do not build" >&2
    exit 2
fi

status=0
summary=()
# run NAME ENV=VALUE: go test ./... with the cluster that ENV selects; appends a summary line.
run() {
    local name="$1" env="$2" log="$logs/$1.log" rc=0
    echo "=== go client vs $name" >&2
    env -u TALLY_BIN -u ETCD_BIN "$env" go test -count=1 -timeout 10m -v ./... "${extra[@]}" >"$log" 2>&1 || rc=$?
    # Everything but the per-test "=== RUN" lines; member logs follow failures.
    grep -v -E '^=== (RUN|PAUSE|CONT)' "$log" >&2 || true
    local passed failed broken
    passed=$(grep -c -E '^--- PASS' "$log" || true)
    failed=$(grep -c -E '^--- FAIL' "$log" || true)
    # A package whose TestMain failed (e.g. its cluster did not start) has no --- lines.
    broken=$(grep -E '^(FAIL|ok)[[:space:]]+tally\.local/' "$log" | grep -c '^FAIL' || true)
    local line="go client vs $name: $passed passed"
    if [[ $failed -gt 0 ]]; then line+=", $failed failed"; fi
    if [[ $rc -ne 0 && $failed -eq 0 ]]; then
        line+=" ($broken package(s) failed without a failing test; see above)"
    fi
    if [[ $rc -ne 0 ]]; then
        status=1
        line+=": $(grep -E '^--- FAIL' "$log" | awk '{print $3}' | paste -sd ' ')"
    fi
    summary+=("$line")
}
extra=("$@")
run "etcd $etcd_version" "ETCD_BIN=$etcd_dir/etcd"
run "tally" "TALLY_BIN=$bin"

for line in "${summary[@]}"; do echo "$line"; done
exit $status
