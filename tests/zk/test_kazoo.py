"""kazoo, ZooKeeper's Python client, against a 3-member Tally cluster (see run.sh)."""

import os
import time

import pytest
from kazoo.client import KazooClient
from rawzk import ANY, DATA, PERSISTENT, PERSISTENT_RECURSIVE, PERSISTENT_TYPE, RECURSIVE_TYPE, RawSession
from kazoo.exceptions import (
    BadVersionError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
)

HOSTS = os.environ["TALLY_ZK_HOSTS"].split(",")
NO_WATCHER = -121


def connect(host, **kw):
    """A started client; the first members may still be electing a leader."""
    deadline = time.time() + 30
    while True:
        zk = KazooClient(hosts=host, timeout=10, **kw)
        try:
            zk.start(timeout=10)
            return zk
        except Exception:
            zk.close()
            if time.time() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def zk():
    client = connect(HOSTS[0])
    yield client
    client.stop()
    client.close()


def test_nodes_versions_and_errors(zk):
    assert zk.create("/crud", b"hello") == "/crud"
    data, stat = zk.get("/crud")
    assert data == b"hello" and stat.version == 0 and stat.czxid == stat.mzxid
    stat2 = zk.set("/crud", b"world", version=0)
    assert stat2.version == 1 and stat2.mzxid > stat.mzxid and stat2.czxid == stat.czxid
    with pytest.raises(BadVersionError):
        zk.set("/crud", b"again", version=0)
    with pytest.raises(NodeExistsError):
        zk.create("/crud")
    with pytest.raises(NoNodeError):
        zk.create("/missing/child")
    zk.create("/crud/a")
    with pytest.raises(NotEmptyError):
        zk.delete("/crud")
    zk.delete("/crud", recursive=True)
    assert zk.exists("/crud") is None


def test_sequential_names_follow_the_parents_cversion(zk):
    zk.create("/seq")
    first = zk.create("/seq/n-", sequence=True)
    second = zk.create("/seq/n-", sequence=True)
    assert (first, second) == ("/seq/n-0000000000", "/seq/n-0000000001")
    _, stat = zk.get("/seq")
    assert stat.cversion == 2 and stat.numChildren == 2
    assert sorted(zk.get_children("/seq")) == ["n-0000000000", "n-0000000001"]


def test_multi_is_all_or_nothing(zk):
    t = zk.transaction()
    t.create("/multi-a", b"1")
    t.create("/multi-a", b"2")
    results = t.commit()
    assert isinstance(results[0], RolledBackError) and isinstance(results[1], NodeExistsError)
    assert zk.exists("/multi-a") is None
    t = zk.transaction()
    t.create("/multi-b", b"1")
    t.set_data("/multi-b", b"2")
    assert t.commit()[0] == "/multi-b"
    assert zk.get("/multi-b")[0] == b"2"


def test_ephemerals_end_with_their_session_on_every_member():
    owner = connect(HOSTS[0])
    owner.create("/eph-parent")
    owner.create("/eph-parent/mine", ephemeral=True)
    with pytest.raises(NoChildrenForEphemeralsError):
        owner.create("/eph-parent/mine/child")
    session = owner.client_id
    others = [connect(h) for h in HOSTS[1:]]
    for other in others:
        other.sync("/")
        _, stat = other.get("/eph-parent/mine")
        assert stat.ephemeralOwner == session[0]
    owner.stop()
    owner.close()
    for other in others:
        other.sync("/")
        assert other.exists("/eph-parent/mine") is None
        other.stop()
        other.close()


def test_a_session_moves_to_another_member_with_its_ephemerals():
    # A bare client, which does not reconnect by itself (kazoo would move the session back).
    first = RawSession(HOSTS[0])
    assert first.create_ephemeral("/moving") == 0
    session_id, password = first.session_id, first.password
    # The same session, resumed on another member with its id and password.
    resumed = connect(HOSTS[1], client_id=(session_id, password))
    assert resumed.client_id[0] == session_id
    resumed.sync("/")
    assert resumed.get("/moving")[1].ephemeralOwner == session_id
    # The old connection is closed, as ZooKeeper refuses a moved session's old connection.
    with pytest.raises(ConnectionError):
        for _ in range(50):
            first.sync()
            time.sleep(0.1)
    first.close()
    resumed.stop()
    resumed.close()
    observer = connect(HOSTS[2])
    observer.sync("/")
    assert observer.exists("/moving") is None, "closing the session through another member ends it"
    observer.stop()
    observer.close()
    # An ended session cannot be resumed: the client is told it expired and starts a new one.
    again = connect(HOSTS[2], client_id=(session_id, password))
    assert again.client_id[0] != session_id
    again.stop()
    again.close()


def test_a_wrong_password_does_not_resume_a_session():
    owner = connect(HOSTS[0])
    session_id, _ = owner.client_id
    intruder = connect(HOSTS[1], client_id=(session_id, b"x" * 16))
    assert intruder.client_id[0] != session_id
    intruder.stop()
    intruder.close()
    owner.stop()
    owner.close()


def test_writes_through_any_member_are_seen_after_sync():
    clients = [connect(h) for h in HOSTS]
    for i, c in enumerate(clients):
        c.create(f"/from-{i}", str(i).encode())
    for c in clients:
        c.sync("/")
        assert sorted(x for x in c.get_children("/") if x.startswith("from-")) == ["from-0", "from-1", "from-2"]
    for c in clients:
        c.stop()
        c.close()


def test_digest_acls(zk):
    from kazoo.security import make_digest_acl

    acl = make_digest_acl("alice", "secret", all=True)
    zk.create("/guarded", b"x", acl=[acl])
    stranger = connect(HOSTS[1])
    from kazoo.exceptions import NoAuthError

    with pytest.raises(NoAuthError):
        stranger.get("/guarded")
    stranger.stop()
    stranger.close()
    alice = connect(HOSTS[2], auth_data=[("digest", "alice:secret")])
    assert alice.get("/guarded")[0] == b"x"
    alice.stop()
    alice.close()


def test_watches_fire_once_for_changes_made_through_another_member():
    import threading

    watcher, writer = connect(HOSTS[0]), connect(HOSTS[1])
    writer.create("/watched", b"0")
    watcher.sync("/")
    seen = []
    fired = threading.Event()

    def on_event(event):
        seen.append((event.type, event.path))
        fired.set()

    assert watcher.get("/watched", watch=on_event)[0] == b"0"
    writer.set("/watched", b"1")
    assert fired.wait(5), "the data watch did not fire"
    writer.set("/watched", b"2")
    time.sleep(0.3)
    assert seen == [("CHANGED", "/watched")], "a watch fires once"

    fired.clear()
    watcher.get_children("/watched", watch=on_event)
    writer.create("/watched/kid")
    assert fired.wait(5), "the child watch did not fire"
    fired.clear()
    assert watcher.exists("/absent", watch=on_event) is None
    writer.create("/absent")
    assert fired.wait(5), "the exists watch did not fire"
    assert seen[1:] == [("CHILD", "/watched"), ("CREATED", "/absent")]
    for c in (watcher, writer):
        c.stop()
        c.close()


def test_persistent_and_recursive_watches():
    """addWatch (ZooKeeper 3.6+) through a bare client, as kazoo 2.11 has no addWatch; the
    changes are made through another member."""
    watcher, writer = RawSession(HOSTS[0]), connect(HOSTS[1])
    try:
        assert watcher.add_watch("/pw", PERSISTENT) == 0
        assert watcher.add_watch("/rw", PERSISTENT_RECURSIVE) == 0
        for _ in range(2):  # persistent: the same events again
            writer.create("/pw", b"a")
            writer.set("/pw", b"b")
            writer.create("/pw/c")
            writer.delete("/pw/c")
            writer.delete("/pw")
            assert watcher.sync() == 0
            assert watcher.take_events() == [
                ("created", "/pw"),
                ("changed", "/pw"),
                ("child", "/pw"),
                ("child", "/pw"),
                ("deleted", "/pw"),
            ]
        writer.create("/rw/a/b", b"x", makepath=True)
        writer.set("/rw/a/b", b"y")
        writer.create("/rwx")  # a sibling, not below /rw
        writer.delete("/rw", recursive=True)
        assert watcher.sync() == 0
        # No children-changed events for a recursive watch; the creations and deletions
        # of everything below it instead.
        assert watcher.take_events() == [
            ("created", "/rw"),
            ("created", "/rw/a"),
            ("created", "/rw/a/b"),
            ("changed", "/rw/a/b"),
            ("deleted", "/rw/a/b"),
            ("deleted", "/rw/a"),
            ("deleted", "/rw"),
        ]
        assert watcher.check_watches("/pw", PERSISTENT_TYPE) == 0
        assert watcher.check_watches("/pw", DATA) == NO_WATCHER
        assert watcher.remove_watches("/pw", PERSISTENT_TYPE) == 0
        assert watcher.remove_watches("/pw", ANY) == NO_WATCHER
        assert watcher.remove_watches("/rw", RECURSIVE_TYPE) == 0
        writer.create("/pw")
        writer.create("/rw")
        assert watcher.sync() == 0
        assert watcher.take_events() == []
        writer.delete("/pw")
        writer.delete("/rw")
        writer.delete("/rwx")
    finally:
        watcher.close()
        writer.stop()
        writer.close()


def test_the_leader_deletes_emptied_containers_and_expired_ttl_nodes():
    raw, zk = RawSession(HOSTS[0]), connect(HOSTS[1])
    try:
        assert raw.create_container("/ctr") == 0
        assert raw.create_container("/ctr-fresh") == 0
        assert raw.create_ttl("/ttl", 300) == 0
        assert raw.create_ttl("/ttl-kept", 300) == 0
        zk.create("/ctr/child")
        zk.create("/ttl-kept/child")
        zk.delete("/ctr/child")
        deadline = time.time() + 10
        while zk.exists("/ctr") or zk.exists("/ttl"):
            assert time.time() < deadline, "an emptied container or expired TTL node was not deleted"
            time.sleep(0.1)
        # A container that never had a child, and a TTL node with one, stay.
        assert zk.exists("/ctr-fresh") and zk.exists("/ttl-kept")
        zk.delete("/ttl-kept", recursive=True)
        zk.delete("/ctr-fresh")
    finally:
        raw.close()
        zk.stop()
        zk.close()


def test_recipes_lock_election_counter_barrier_party():
    import threading

    clients = [connect(h) for h in HOSTS]
    # Lock: three contenders, one holder at a time.
    holders, inside, worst = [], [0], [0]
    guard = threading.Lock()

    def contend(c, i):
        with c.Lock("/recipes/lock", f"c{i}"):
            with guard:
                inside[0] += 1
                worst[0] = max(worst[0], inside[0])
            time.sleep(0.05)
            holders.append(i)
            with guard:
                inside[0] -= 1

    threads = [threading.Thread(target=contend, args=(c, i)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(holders) == [0, 1, 2] and worst[0] == 1

    # Counter: increments through every member add up.
    for c in clients:
        counter = c.Counter("/recipes/counter")
        for _ in range(5):
            counter += 1
    clients[0].sync("/")
    assert clients[0].Counter("/recipes/counter").value == 15

    # Election: exactly one leader runs at a time; when it leaves, another is elected.
    elected = []
    done = threading.Event()

    def lead(i):
        elected.append(i)
        done.set()

    election = clients[1].Election("/recipes/election", "c1")
    t = threading.Thread(target=election.run, args=(lead, 1))
    t.start()
    assert done.wait(10) and elected == [1]
    t.join(10)

    # Barrier: waiters pass once it is removed (from another member).
    barrier = clients[2].Barrier("/recipes/barrier")
    barrier.create()
    passed = threading.Event()
    threading.Thread(target=lambda: barrier.wait(10) and passed.set()).start()
    time.sleep(0.2)
    assert not passed.is_set()
    clients[0].Barrier("/recipes/barrier").remove()
    assert passed.wait(10)

    # Party: members joining through every member are all seen.
    parties = [c.Party("/recipes/party", f"p{i}") for i, c in enumerate(clients)]
    for p in parties:
        p.join()
    clients[0].sync("/")
    assert len(clients[0].Party("/recipes/party")) == 3
    for c in clients:
        c.stop()
        c.close()


def test_a_silent_clients_session_expires_and_its_ephemerals_go():
    import subprocess
    import sys

    # A client that creates an ephemeral and dies without closing its session.
    script = (
        "import os, sys\n"
        "from kazoo.client import KazooClient\n"
        f"zk = KazooClient(hosts='{HOSTS[1]}', timeout=4)\n"
        "zk.start(timeout=10)\n"
        "zk.create('/orphan', ephemeral=True)\n"
        "print(zk.client_id[0], flush=True)\n"
        "os._exit(0)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    observer = connect(HOSTS[0])
    observer.sync("/")
    assert observer.exists("/orphan") is not None
    deadline = time.time() + 15
    while observer.exists("/orphan") is not None:
        assert time.time() < deadline, "the dead client's session never expired"
        time.sleep(0.2)
        observer.sync("/")
    observer.stop()
    observer.close()


def test_a_pinging_client_keeps_its_session_past_its_timeout():
    keeper = KazooClient(hosts=HOSTS[2], timeout=4)
    keeper.start(timeout=10)
    keeper.create("/kept", ephemeral=True)
    time.sleep(7)
    observer = connect(HOSTS[0])
    observer.sync("/")
    assert observer.exists("/kept") is not None, "an idle but pinging client lost its session"
    for c in (keeper, observer):
        c.stop()
        c.close()


def test_four_letter_words(zk):
    assert zk.command(b"ruok") == "imok"
    assert zk.command(b"isro") == "rw"
    srvr = dict(line.split(": ", 1) for line in zk.command(b"srvr").splitlines() if ": " in line)
    assert srvr["Mode"] in ("leader", "follower") and int(srvr["Zxid"], 16) > 0
    assert int(srvr["Node count"]) >= 4, srvr
    # This member counts the requests it answered, this session's among them.
    received, sent = int(srvr["Received"]), int(srvr["Sent"])
    assert received >= 1 and sent >= 1, srvr
    low, avg, high = srvr["Latency min/avg/max"].split("/")
    assert 0 <= int(low) <= float(avg) <= int(high), srvr
    zk.get("/")
    mntr = dict(line.split("\t", 1) for line in zk.command(b"mntr").splitlines())
    assert int(mntr["zk_znode_count"]) == int(srvr["Node count"])
    assert int(mntr["zk_num_alive_connections"]) >= 1
    assert int(mntr["zk_packets_received"]) > received and int(mntr["zk_packets_sent"]) > sent, mntr
    assert int(mntr["zk_outstanding_requests"]) >= 0 and float(mntr["zk_avg_latency"]) >= 0, mntr
    assert "clientPort=" in zk.command(b"conf")


def four_letter(host, word):
    import socket

    h, port = host.split(":")
    with socket.create_connection((h, int(port)), timeout=5) as s:
        s.sendall(word)
        return b"".join(iter(lambda: s.recv(4096), b"")).decode()


def test_sessions_and_writes_survive_a_leader_killed():
    """Runs last: it kills the leader's process (kill -9) under clients connected to it."""
    import signal

    pids = [int(p) for p in os.environ["TALLY_PIDS"].split()]
    modes = [four_letter(h, b"srvr") for h in HOSTS]
    leader = next(i for i, m in enumerate(modes) if "Mode: leader" in m)
    # Clients on the leader itself, with the other members to fall back on.
    hosts = ",".join([HOSTS[leader]] + [h for i, h in enumerate(HOSTS) if i != leader])
    clients = [KazooClient(hosts=hosts, timeout=10, randomize_hosts=False) for _ in range(3)]
    for i, c in enumerate(clients):
        c.start(timeout=10)
        c.create(f"/survivor-{i}", ephemeral=True)
    sessions = [c.client_id[0] for c in clients]
    os.kill(pids[leader], signal.SIGKILL)
    started = time.time()
    for i, c in enumerate(clients):
        deadline = time.time() + 20
        while True:
            try:
                c.create(f"/after-kill-{i}", b"x")
                break
            except Exception:
                assert time.time() < deadline, "writes did not resume after the leader was killed"
                time.sleep(0.1)
    resumed = time.time() - started
    for i, c in enumerate(clients):
        assert c.client_id[0] == sessions[i], "the session was lost with the leader"
        c.sync("/")
        assert c.exists(f"/survivor-{i}") is not None, "an ephemeral went with the leader"
    print(f"writes resumed {resumed * 1000:.0f} ms after the leader's kill")
    for c in clients:
        c.stop()
        c.close()
