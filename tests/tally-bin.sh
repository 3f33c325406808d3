# Sourced by the client suites' run.sh: `tally_bin [PATH]` prints the tally binary to test, as an
# absolute path: PATH if given, else $TALLY_BIN, else target/release/tally, else
# target/debug/tally. It exits the script (status 2) when there is none.
tally_bin() {
    local root bin candidate
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    bin="${1:-${TALLY_BIN:-}}"
    if [[ -z "$bin" ]]; then
        for candidate in "$root/target/release/tally" "$root/target/debug/tally"; do
            if [[ -x "$candidate" ]]; then bin="$candidate"; break; fi
        done
    fi
    if [[ -z "$bin" || ! -x "$bin" ]]; then
        echo "run.sh: no tally binary (give its path, set TALLY_BIN, or cargo build -p tally)" >&2
        exit 2
    fi
    echo "$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
}
