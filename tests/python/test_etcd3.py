"""The `etcd3` Python client (python-etcd3, gRPC) against a running Tally cluster.

Started by tests/python/run.sh, which sets TALLY_ENDPOINTS=host:port,host:port,host:port.
Every test works under its own key prefix, so the tests do not see each other's keys.
"""

import os
import threading
import time
import uuid

import etcd3
import pytest


def endpoints():
    return [tuple(ep.split(":")) for ep in os.environ["TALLY_ENDPOINTS"].split(",")]


@pytest.fixture
def client():
    host, port = endpoints()[0]
    c = etcd3.client(host=host, port=int(port), timeout=10)
    yield c
    c.close()


@pytest.fixture
def prefix():
    return f"/py/{uuid.uuid4().hex}/"


def test_put_get_delete(client, prefix):
    key = prefix + "a"
    assert client.get(key) == (None, None)
    client.put(key, "one")
    value, meta = client.get(key)
    assert value == b"one"
    assert meta.key == key.encode()
    assert meta.version == 1
    assert meta.create_revision == meta.mod_revision

    client.put(key, "two")
    value, meta2 = client.get(key)
    assert value == b"two"
    assert meta2.version == 2
    assert meta2.create_revision == meta.create_revision
    assert meta2.mod_revision > meta.mod_revision

    client.put(prefix + "b", "bee")
    got = sorted((m.key, v) for v, m in client.get_prefix(prefix))
    assert got == [(key.encode(), b"two"), ((prefix + "b").encode(), b"bee")]

    assert client.delete(key) is True
    assert client.delete(key) is False
    assert client.get(key) == (None, None)
    assert client.delete_prefix(prefix).deleted == 1
    assert list(client.get_prefix(prefix)) == []


def test_reads_from_every_member(client, prefix):
    key = prefix + "everywhere"
    client.put(key, "x")
    for host, port in endpoints():
        other = etcd3.client(host=host, port=int(port), timeout=10)
        try:
            value, _ = other.get(key)
            assert value == b"x", f"member {host}:{port}"
        finally:
            other.close()


def test_watch_prefix(client, prefix):
    events_iterator, cancel = client.watch_prefix(prefix)
    # Stop the iterator whatever happens, so a missing event fails instead of hanging.
    timer = threading.Timer(15, cancel)
    timer.start()
    try:
        client.put(prefix + "1", "a")
        client.put(prefix + "2", "b")
        client.put("/py/outside-" + prefix.strip("/").replace("/", "-"), "not watched")
        client.put(prefix + "1", "c")
        client.delete(prefix + "2")
        events = []
        for event in events_iterator:
            events.append(event)
            if len(events) == 4:
                break
    finally:
        timer.cancel()
        cancel()
    assert [(type(e).__name__, e.key, e.value) for e in events] == [
        ("PutEvent", (prefix + "1").encode(), b"a"),
        ("PutEvent", (prefix + "2").encode(), b"b"),
        ("PutEvent", (prefix + "1").encode(), b"c"),
        ("DeleteEvent", (prefix + "2").encode(), b""),
    ]
    revisions = [e.mod_revision for e in events]
    assert revisions[:3] == sorted(revisions[:3])
    assert events[2].version == 2


def test_watch_callback_from_revision(client, prefix):
    key = prefix + "k"
    first = client.put(key, "v1").header.revision
    client.put(key, "v2")
    got = []
    done = threading.Event()

    def callback(response):
        got.extend(response.events)
        if len(got) >= 2:
            done.set()

    watch_id = client.add_watch_callback(key, callback, start_revision=first)
    try:
        assert done.wait(15), f"only {len(got)} events"
    finally:
        client.cancel_watch(watch_id)
    assert [e.value for e in got[:2]] == [b"v1", b"v2"]


def test_lease(client, prefix):
    lease = client.lease(ttl=30)
    assert lease.id > 0
    assert lease.granted_ttl == 30
    assert 0 < lease.remaining_ttl <= 30

    responses = lease.refresh()
    assert responses and responses[0].TTL == 30

    key = prefix + "leased"
    client.put(key, "v", lease=lease)
    _, meta = client.get(key)
    assert meta.lease_id == lease.id
    assert lease.keys == [key.encode()]

    lease.revoke()
    assert client.get(key) == (None, None)
    assert lease.remaining_ttl == -1


def test_lease_with_chosen_id(client, prefix):
    lease_id = int(time.time() * 1000) % (1 << 40) + 12345
    lease = client.lease(ttl=60, lease_id=lease_id)
    try:
        assert lease.id == lease_id
        with pytest.raises(Exception):
            client.lease(ttl=60, lease_id=lease_id)  # already exists
    finally:
        lease.revoke()


def test_transaction(client, prefix):
    key = prefix + "txn"
    client.put(key, "old")
    ok, responses = client.transaction(
        compare=[client.transactions.value(key) == "old", client.transactions.version(key) == 1],
        success=[client.transactions.put(key, "new"), client.transactions.get(key)],
        failure=[client.transactions.put(key, "failed")],
    )
    assert ok is True
    assert len(responses) == 2
    assert [(v, m.version) for v, m in responses[1]] == [(b"new", 2)]

    ok, responses = client.transaction(
        compare=[client.transactions.value(key) == "old"],
        success=[client.transactions.put(key, "never")],
        failure=[client.transactions.get(key), client.transactions.delete(key)],
    )
    assert ok is False
    assert [v for v, _ in responses[0]] == [b"new"]
    assert client.get(key) == (None, None)


def test_replace_is_compare_and_swap(client, prefix):
    key = prefix + "cas"
    client.put(key, "a")
    assert client.replace(key, "a", "b") is True
    assert client.replace(key, "a", "c") is False
    assert client.get(key)[0] == b"b"
