"""Start and stop the two 3-member systems the ZooKeeper benchmark compares, on loopback:

* `TallyZk`: 3 Tally members serving ZooKeeper's client protocol (`--listen-zk-urls`), started
  as tests/zk/run.sh starts them, with bench/clusters.py's Raft timing (heartbeat 30 ms,
  election timeout 150 ms) and otherwise the defaults (fsync on).
* `ZkEnsemble`: a real ZooKeeper 3.8 ensemble (Debian's package, the jar scripts/zk-ref runs):
  3 `QuorumPeerMain` servers, each with its own zoo.cfg, myid, data dir, client, quorum and
  election ports; ZooKeeper's defaults otherwise (tickTime 2000, initLimit 10, syncLimit 5,
  forceSync=yes, i.e. fsync on every log write; snapCount 100000).

`build_zkload` and `run_load` build and run the client both are measured with (bench/zk/zkload).

Both write a start script per member (DIR/start-N.sh, which starts it in the background and
writes DIR/pid-N), so that the failover driver can kill -9 and restart a member by index, and
both are killed at exit through bench/clusters.py's registry.

    python3 bench/zk/ensemble.py zk|tally [--tally-bin PATH]   # start one, print it, wait for Ctrl-C
    python3 bench/zk/ensemble.py leader|ready zk HOST:PORT,...  # the leader's index; exit 0 once ready
    python3 bench/zk/ensemble.py leader|ready tally TALLY_BIN CLIENT_HOST:PORT,...
"""

import json
import os
import re
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
import clusters  # noqa: E402

ZK_JAR = "/usr/share/java/zookeeper.jar"
ZK_CONF_DIR = "/etc/zookeeper/conf"
# The package ships slf4j-api without a binding, so ZooKeeper logs nothing; slf4j-simple logs to stderr.
SLF4J_SIMPLE = "/usr/share/java/slf4j-simple.jar"


def build_zkload(work):
    """Builds bench/zk/zkload into `work`; returns its path."""
    out = os.path.join(work, "zkload")
    clusters.log("building bench/zk/zkload (go build)")
    subprocess.run(["go", "build", "-o", out, "./zkload"], cwd=HERE, check=True)
    return out


def run_load(zkload, system, args, duration, warmup=0.5, label="", first=0):
    """Runs zkload on `system`, its server list starting at member `first`; its JSON report,
    plus how idle the machine was meanwhile (`machine_idle_pct`)."""
    hosts = system.zk_hosts().split(",")
    hosts = ",".join(hosts[first:] + hosts[:first])
    cmd = [zkload, "-json", "-servers", hosts, "-pids", ",".join(map(str, system.pids())),
           "-duration", f"{duration}s", "-warmup", f"{warmup}s", "-session-timeout", "4s", "-label", label, *args]
    before = clusters.machine_times()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        system.check_alive()
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()[-1000:]}")
    rep = json.loads(r.stdout)
    rep["machine_idle_pct"] = clusters.idle_pct(before)
    return rep



def _write_start_script(path, args, log_path, pid_file, env=None):
    envs = " ".join(f"{k}={clusters._quote(v)}" for k, v in (env or {}).items())
    script = (
        "#!/bin/sh\n"
        f"{envs + ' ' if envs else ''}{' '.join(clusters._quote(a) for a in args)} "
        f">>{clusters._quote(log_path)} 2>&1 </dev/null &\n"
        f"echo $! >{clusters._quote(pid_file)}\n"
    )
    with open(path, "w") as f:
        f.write(script)
    os.chmod(path, 0o755)


class _Members(clusters.Cluster):
    """What both systems share with bench/clusters.py's Cluster: start scripts, pid files,
    start/stop/pids/check_alive, registration for the kill at exit. Subclasses set
    self.dir, self.n, self.kind and write the start scripts."""

    def __init__(self):  # noqa: D107 (Cluster.__init__ is not called: it builds etcd/tally args)
        clusters._clusters.append(self)

    def zk_hosts(self):
        return ",".join(self.zk_endpoints)


class TallyZk(_Members):
    def __init__(self, binary, workdir, n=3, name="tally", log_level="warn"):
        super().__init__()
        self.kind, self.binary, self.n = "tally", binary, n
        self.dir = os.path.join(workdir, f"{name}-cluster")
        os.makedirs(self.dir, exist_ok=True)
        self.client_ports = [clusters.free_port() for _ in range(n)]
        self.peer_ports = [clusters.free_port() for _ in range(n)]
        self.zk_ports = [clusters.free_port() for _ in range(n)]
        self.names = [f"n{i + 1}" for i in range(n)]
        self.endpoints = [f"127.0.0.1:{p}" for p in self.client_ports]
        self.zk_endpoints = [f"127.0.0.1:{p}" for p in self.zk_ports]
        initial = ",".join(f"{self.names[i]}=http://127.0.0.1:{self.peer_ports[i]}" for i in range(n))
        for i in range(n):
            client = f"http://127.0.0.1:{self.client_ports[i]}"
            peer = f"http://127.0.0.1:{self.peer_ports[i]}"
            args = [
                binary, "server",
                "--name", self.names[i],
                "--data-dir", os.path.join(self.dir, f"data-{i}"),
                "--listen-client-urls", client,
                "--advertise-client-urls", client,
                "--listen-peer-urls", peer,
                "--initial-advertise-peer-urls", peer,
                "--initial-cluster", initial,
                "--initial-cluster-state", "new",
                "--initial-cluster-token", "bench-zk-tally",
                "--heartbeat-interval", str(clusters.HEARTBEAT_MS),
                "--election-timeout", str(clusters.ELECTION_MS),
                "--listen-zk-urls", f"tcp://127.0.0.1:{self.zk_ports[i]}",
            ]
            _write_start_script(self.start_script(i), args, os.path.join(self.dir, f"member-{i}.log"),
                                self.pid_file(i), env={"RUST_LOG": log_level, "NO_COLOR": "1"})

    def status(self):
        """etcd's Maintenance.Status of every member, through `tally status` (Tally serves etcd's
        API over gRPC only, not the JSON gateway): one dict per endpoint, None if it did not answer.
        Keys: member, role, leader, term, index, applied."""
        r = subprocess.run([self.binary, "status", "--endpoints", ",".join(self.endpoints)],
                           capture_output=True, text=True, timeout=10)
        out = {}
        for line in r.stdout.splitlines():
            m = re.match(r"(\S+)\s+member (\w+)\s+(\w+)\s+leader (\w+)\s+term (\d+)\s+index (\d+)\s+applied (\d+)",
                         line.strip())
            if m:
                out[m[1]] = {"member": m[2], "role": m[3], "leader": m[4], "term": int(m[5]),
                             "index": int(m[6]), "applied": int(m[7])}
        return [out.get(e) for e in self.endpoints]

    def leader_index(self):
        """The index of the member every live member names as leader, or None."""
        st = self.status()
        ids = {s["member"]: i for i, s in enumerate(st) if s}
        leaders = {s["leader"] for s in st if s}
        if len(leaders) == 1:
            (lead,) = leaders
            return ids.get(lead)
        return None

    def wait_ready(self, timeout=30):
        """Waits until all members answer and name the same leader, and every ZooKeeper port
        answers ruok; returns the leader's index."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.check_alive()
            st = self.status()
            ids = {s["member"]: i for i, s in enumerate(st) if s}
            leaders = {s["leader"] for s in st if s}
            if all(st) and len(leaders) == 1 and next(iter(leaders)) in ids and all(
                    four_letter(e, "ruok") == "imok" for e in self.zk_endpoints):
                return ids[next(iter(leaders))]
            time.sleep(0.1)
        raise RuntimeError(f"tally: no leader after {timeout}s; logs in {self.dir}")


class ZkEnsemble(_Members):
    def __init__(self, workdir, n=3, name="zookeeper", heap="1g", log_level="warn"):
        super().__init__()
        self.kind, self.n = "zookeeper", n
        if not (os.path.exists(ZK_JAR) and os.path.exists(SLF4J_SIMPLE)):
            # Installs Debian's zookeeper package (and Java with it) on a fresh machine.
            subprocess.run([os.path.join(ROOT, "scripts", "zk-ref"), "--install"], check=True)
        self.dir = os.path.join(workdir, f"{name}-cluster")
        os.makedirs(self.dir, exist_ok=True)
        self.zk_ports = [clusters.free_port() for _ in range(n)]
        self.quorum_ports = [clusters.free_port() for _ in range(n)]
        self.election_ports = [clusters.free_port() for _ in range(n)]
        self.zk_endpoints = [f"127.0.0.1:{p}" for p in self.zk_ports]
        servers = "".join(f"server.{i + 1}=127.0.0.1:{self.quorum_ports[i]}:{self.election_ports[i]}\n"
                          for i in range(n))
        for i in range(n):
            data = os.path.join(self.dir, f"data-{i}")
            os.makedirs(data, exist_ok=True)
            with open(os.path.join(data, "myid"), "w") as f:
                f.write(f"{i + 1}\n")
            cfg = os.path.join(self.dir, f"zoo-{i}.cfg")
            with open(cfg, "w") as f:
                # ZooKeeper's sample config (Debian's /etc/zookeeper/conf/zoo.cfg), per server.
                f.write("tickTime=2000\ninitLimit=10\nsyncLimit=5\n"
                        f"dataDir={data}\nclientPort={self.zk_ports[i]}\nclientPortAddress=127.0.0.1\n"
                        "4lw.commands.whitelist=*\nadmin.enableServer=false\n" + servers)
            # scripts/zk-ref's command line, with QuorumPeerMain and a config file instead of
            # ZooKeeperServerMain PORT DIR; logging (warn: info logs every session's connect) to
            # the member's log through slf4j-simple, and a 1 GiB heap as ZooKeeper's zkEnv.sh gives.
            args = [
                "java", f"-Xmx{heap}",
                "-Dzookeeper.4lw.commands.whitelist=*",
                "-Dzookeeper.admin.enableServer=false",
                f"-Dorg.slf4j.simpleLogger.defaultLogLevel={log_level}",
                "-Dorg.slf4j.simpleLogger.showDateTime=true",
                "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
                "-cp", f"{ZK_CONF_DIR}:{ZK_JAR}:{SLF4J_SIMPLE}",
                "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg,
            ]
            _write_start_script(self.start_script(i), args, os.path.join(self.dir, f"member-{i}.log"),
                                self.pid_file(i))

    def modes(self):
        """Each member's `Mode:` from the srvr four-letter word (None if it does not answer)."""
        out = []
        for e in self.zk_endpoints:
            mode = None
            for line in (four_letter(e, "srvr") or "").splitlines():
                if line.startswith("Mode:"):
                    mode = line.split(":", 1)[1].strip()
            out.append(mode)
        return out

    def leader_index(self):
        modes = self.modes()
        return modes.index("leader") if modes.count("leader") == 1 else None

    def wait_ready(self, timeout=60):
        """Waits until one member is leader and every other one a follower."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.check_alive()
            modes = self.modes()
            if modes.count("leader") == 1 and modes.count("follower") == self.n - 1:
                return modes.index("leader")
            time.sleep(0.1)
        raise RuntimeError(f"zookeeper: no quorum after {timeout}s ({self.modes()}); logs in {self.dir}")


def four_letter(endpoint, word, timeout=1.0):
    host, port = endpoint.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as s:
            s.sendall(word.encode())
            chunks = []
            while True:
                b = s.recv(4096)
                if not b:
                    break
                chunks.append(b)
        return b"".join(chunks).decode(errors="replace").strip()
    except OSError:
        return None


def _cli_leader_ready(argv):
    """`ensemble.py leader|ready zk ZK_HOSTS` or `ensemble.py leader|ready tally TALLY_BIN CLIENT_ENDPOINTS`,
    for zkload's failover commands: `leader` prints the leader's index (exit 1 if none); `ready`
    exits 0 once every member answers and agrees on a leader (Tally: and every member applied
    to within 1,000 entries of the newest index; ZooKeeper: the other members are followers,
    which serve only once synced with the leader)."""
    what, kind = argv[0], argv[1]
    if kind == "zk":
        c = object.__new__(ZkEnsemble)
        c.zk_endpoints, c.n = argv[2].split(","), len(argv[2].split(","))
        modes = c.modes()
        lead = modes.index("leader") if modes.count("leader") == 1 else None
        ok = lead is not None and modes.count("follower") == c.n - 1
    else:
        c = object.__new__(TallyZk)
        c.binary, c.endpoints = argv[2], argv[3].split(",")
        st = c.status()
        ids = {s["member"]: i for i, s in enumerate(st) if s}
        leaders = {s["leader"] for s in st if s}
        lead = ids.get(next(iter(leaders))) if len(leaders) == 1 else None
        ok = lead is not None and all(st) and \
            min(s["applied"] for s in st) >= max(s["index"] for s in st) - 1000
    if what == "leader":
        if lead is None:
            sys.exit(1)
        print(lead)
    else:
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    import argparse

    if len(sys.argv) > 1 and sys.argv[1] in ("leader", "ready"):
        _cli_leader_ready(sys.argv[1:])
        sys.exit(0)

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("system", choices=["zk", "tally"])
    ap.add_argument("--tally-bin", default="/work/tally-bin/release/tally")
    ap.add_argument("--keep", action="store_true")
    o = ap.parse_args()
    work = clusters.workdir(keep=o.keep)
    c = ZkEnsemble(work) if o.system == "zk" else TallyZk(o.tally_bin, work)
    c.start()
    t = time.time()
    lead = c.wait_ready()
    print(f"{c.kind}: up in {time.time() - t:.1f}s, leader {lead}, zk hosts {c.zk_hosts()}, pids {c.pids()}, "
          f"dir {c.dir}", flush=True)
    try:
        while True:
            time.sleep(1)
            c.check_alive()
    except KeyboardInterrupt:
        pass
