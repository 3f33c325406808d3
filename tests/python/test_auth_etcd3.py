"""The `etcd3` Python client (python-etcd3 0.12) with user and password, against etcd 3.5.35 or
Tally with auth on. Run by crates/cli/tests/auth_python.rs, which starts the server and sets
TALLY_ENDPOINTS=host:port. The module sets up users and roles through the raw Auth stub
(python-etcd3 has no user/role API), enables auth, and disables it again at the end.

python-etcd3 raises grpc.RpcError itself for PERMISSION_DENIED, INVALID_ARGUMENT and
UNAUTHENTICATED (it translates only a few codes), and Authenticate in its constructor is not
translated at all.
"""

import os
import threading
import time

import etcd3
import grpc
import pytest
from etcd3 import etcdrpc

READWRITE = 2


def endpoint():
    host, port = os.environ["TALLY_ENDPOINTS"].split(",")[0].split(":")
    return host, int(port)


def client(**kw):
    host, port = endpoint()
    c = etcd3.client(host=host, port=port, timeout=10, **kw)
    # python-etcd3 sends the token twice: as metadata and as call credentials. Current grpcio
    # refuses call credentials on a plaintext channel ("Established channel does not have a
    # sufficient security level to transfer call credential"), so keep the metadata only.
    c.call_credentials = None
    c.watcher._credentials = None
    return c


def rpc_error(fn):
    with pytest.raises(grpc.RpcError) as info:
        fn()
    return info.value.code(), info.value.details()


DENIED = (grpc.StatusCode.PERMISSION_DENIED, "etcdserver: permission denied")


@pytest.fixture(scope="module")
def setup():
    anon = client()
    auth = etcdrpc.AuthStub(anon.channel)
    auth.UserAdd(etcdrpc.AuthUserAddRequest(name="root", password="rootpw"))
    auth.RoleAdd(etcdrpc.AuthRoleAddRequest(name="root"))
    auth.UserGrantRole(etcdrpc.AuthUserGrantRoleRequest(user="root", role="root"))
    auth.UserAdd(etcdrpc.AuthUserAddRequest(name="alice", password="alicepw"))
    auth.RoleAdd(etcdrpc.AuthRoleAddRequest(name="app"))
    perm = etcdrpc.auth__pb2.Permission(permType=READWRITE, key=b"app/", range_end=b"app0")
    auth.RoleGrantPermission(etcdrpc.AuthRoleGrantPermissionRequest(name="app", perm=perm))
    auth.UserGrantRole(etcdrpc.AuthUserGrantRoleRequest(user="alice", role="app"))
    anon.put("secret", "s1")
    auth.AuthEnable(etcdrpc.AuthEnableRequest())
    root = client(user="root", password="rootpw")
    alice = client(user="alice", password="alicepw")
    yield root, alice, anon
    etcdrpc.AuthStub(root.channel).AuthDisable(etcdrpc.AuthDisableRequest(), metadata=root.metadata)
    assert anon.get("secret")[0] == b"s1"
    for c in (root, alice, anon):
        c.close()


def test_allowed(setup):
    _, alice, _ = setup
    alice.put("app/k", "v")
    value, meta = alice.get("app/k")
    assert value == b"v" and meta.version == 1
    assert [v for v, _ in alice.get_prefix("app/")] == [b"v"]
    lease = alice.lease(60)
    alice.put("app/leased", "x", lease=lease)
    assert alice.delete("app/k")
    ok, _ = alice.transaction(
        compare=[alice.transactions.version("app/k") == 0],
        success=[alice.transactions.put("app/k", "again")],
        failure=[],
    )
    assert ok


def test_denied(setup):
    _, alice, _ = setup
    assert rpc_error(lambda: alice.put("secret", "x")) == DENIED
    assert rpc_error(lambda: alice.get("secret")) == DENIED
    assert rpc_error(lambda: alice.delete("secret")) == DENIED
    assert rpc_error(lambda: list(alice.get_all())) == DENIED
    # A txn is refused whole when one compare touches a denied key.
    assert rpc_error(lambda: alice.transaction(
        compare=[alice.transactions.version("secret") > 0],
        success=[alice.transactions.put("app/t", "x")],
        failure=[],
    )) == DENIED
    assert rpc_error(lambda: alice.compact(1)) == DENIED


def test_lease_revoke_needs_write_on_its_keys(setup):
    root, alice, _ = setup
    lease = root.lease(60)
    root.put("secret2", "x", lease=lease)
    assert rpc_error(lambda: alice.revoke_lease(lease.id)) == DENIED
    root.revoke_lease(lease.id)


def test_root(setup):
    root, _, _ = setup
    assert root.get("secret")[0] == b"s1"
    root.put("other", "o")
    assert root.status().version.startswith("3.5.")


def test_wrong_password_and_unknown_user():
    failed = (grpc.StatusCode.INVALID_ARGUMENT,
              "etcdserver: authentication failed, invalid user ID or password")
    assert rpc_error(lambda: client(user="alice", password="wrong")) == failed
    assert rpc_error(lambda: client(user="nobody", password="x")) == failed


def test_anonymous(setup):
    _, _, anon = setup
    empty = (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: user name is empty")
    assert rpc_error(lambda: anon.get("app/k")) == empty
    assert rpc_error(lambda: anon.put("app/k", "x")) == empty


def test_watch_allowed(setup):
    root, alice, _ = setup
    got = []
    seen = threading.Event()

    def cb(resp):
        got.append(resp)
        seen.set()

    watch_id = alice.add_watch_callback("app/w", cb)
    assert watch_id >= 0
    alice.put("app/w", "1")
    assert seen.wait(10), "no watch event"
    assert got[0].events[0].key == b"app/w"
    alice.cancel_watch(watch_id)


def test_watch_denied(setup):
    # etcd answers created+canceled with watch id -1; python-etcd3 does not look at `canceled`
    # and returns -1 as the new watch's id, without an error, and no event ever comes.
    root, alice, _ = setup
    got = []
    watch_id = alice.add_watch_callback("secret", got.append)
    assert watch_id == -1
    root.put("secret", "s1")
    time.sleep(0.5)
    assert got == []
