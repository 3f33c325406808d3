# Sourced by the ZooKeeper suites (tests/zk/run.sh, tests/zk/run-diff.sh, tests/zk-java/run.sh):
#
#   zk_workdir NAME         makes $dir, a temporary directory, and a trap that kills every pid in
#                           $pids, prints the logs' tails in $dir if the script fails, and
#                           removes $dir
#   free_ports N            prints N free loopback ports
#   zk_cluster BIN [ARGS]   starts 3 members of BIN serving ZooKeeper in $dir (each with ARGS
#                           too); sets $zk_hosts (host:port,...) and $client_urls, adds to $pids

zk_workdir() {
    dir="$(mktemp -d "${TMPDIR:-/tmp}/$1-XXXXXX")"
    pids=()
    trap zk_cleanup EXIT INT TERM
}

zk_cleanup() {
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

zk_bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../bench" && pwd)"

# bench/clusters.py's free_port: ports below the kernel's ephemeral range, each handed out once.
free_ports() {
    python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import clusters
print(*(clusters.free_port() for _ in range(int(sys.argv[2]))))' "$zk_bench_dir" "$1"
}

zk_cluster() {
    local bin="$1" ports initial="" i name client peer zk
    shift
    # Client, peer and ZooKeeper port for each member.
    read -r -a ports <<<"$(free_ports 9)"
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
            --listen-zk-urls "tcp://$zk" "$@" >"$dir/$name.log" 2>&1 </dev/null &
        pids+=($!)
    done
}
