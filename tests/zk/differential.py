"""A differential test: the same seeded random ZooKeeper requests against Tally and against a
real ZooKeeper 3.8, every answer and every watch event compared (see run-diff.sh).

    python3 differential.py --tally H1,H2,H3 --zk H [--seeds N] [--first-seed S] [--ops N]

Each seed opens three sessions on each side (on Tally one per member, so watches and ephemerals
cross members) and sends the same sequence of requests, drawn from the seed, through kazoo's
connection with request objects of our own, so that kazoo's client-side checks stay out of the
way: every create mode (op 1, 15, 19 and 21, with valid and invalid flags and TTLs), delete,
exists, getData, setData, getChildren, getChildren2, getAllChildrenNumber, multi (often
failing), sync, getACL and setACL (world, digest, auth, ip, sasl and x509 ACLs, valid or not),
addauth, with right and wrong versions, on a small alphabet of paths (plus the root, /zookeeper
and its nodes, the empty path, invalid paths), and one-shot data, exists and child watches. A
session is sometimes closed and a new one opened in its place, and all close at the end of the
seed, so ephemerals end and fire other sessions' watches. Some creates are open to all, with
valid flags, so that the tree fills and watches have changes to see.

Watches and the reads of 3.6+ (a fifth of the requests): addWatch (op 106, PERSISTENT and
PERSISTENT_RECURSIVE, and bad modes), checkWatches and removeWatches (ops 17 and 18, every
watcher type and bad ones, often on paths without a watch: NoWatcher), multiRead (op 22: getData
and getChildren each answered or failed on its own, their watch flags ignored; an exists, a
getChildren2 or a write among them fails the whole request), getEphemerals (op 103, prefixes
blank in Java's sense or not), and SetWatches and SetWatches2 (ops 101 and 105), a fifth of them
as a reconnecting client sends them: the session's connection is dropped and the session resumed
on a new connection (on Tally on the next member). Their relative zxid means the same on both
sides: the last zxid the side reported to the session, or to any session a few requests
before, or 0, or 2^62.

After every request that may change the tree each session on each side runs a sync, which
brings its member up to date and makes the server deliver the request's watch events before
the sync's answer: so every event is attributed to the request that caused it, and each
session's events are compared in order.

What is normalised, and why:
  - zxids (czxid, mzxid, pzxid): Tally's is the Raft index, so gaps are normal; each is replaced
    by its rank among the zxids one side reported in the seed up to that request.
  - ctime and mtime: wall clocks; compared as zero or set.
  - ephemeralOwner: session ids differ; an owner that is one of the run's sessions is replaced
    by that session's slot and generation.
  - children lists: ZooKeeper lists them in hash-set order, Tally sorted; compared sorted.
  - the events a session's close fires: ZooKeeper deletes its ephemerals in hash-set order,
    Tally in path order; compared as a set.
  - ACLs an `auth` entry expands to: ZooKeeper adds the session's identities in hash-set
    order, Tally in the order of their addauths; each run of digest entries with the same perms
    is compared sorted.
Persistent and recursive watches follow ZooKeeper 3.9 in Tally (deliberate deviations,
CONFORMANCE.md), so the generator keeps a record of each session's watches (`Watches`) and sends
only what 3.8.0 and 3.9 answer alike:
  - no session holds a one-shot and a persistent watch on one path (3.8.0 keeps the latest mode
    only), nor a persistent and a recursive one;
  - checkWatches of type Data, Children or Any only on a path starting with "/" that no other
    session may watch (3.8.0 finds any connection's watch; it walks the path's parents, finding
    nothing on "" and failing a path without "/"), and checkWatches and removeWatches of type
    Data or Children only where the session holds no persistent watch (3.8.0 takes them to mean
    any mode);
  - watcher types 4 and 5 (Persistent, PersistentRecursive) are 3.9's: ZooKeeper answers
    MarshallingError, and Tally is held to the record's answer instead; a watch Tally removes
    that way is removed from ZooKeeper with type Any.
Not sent, because ZooKeeper 3.8.0 misbehaves (deliberate deviations, CONFORMANCE.md):
  - a standalone check (op 13) that succeeds: ZooKeeper fails to serialize its null Stat and
    sends no answer at all, so the client waits forever; Tally answers an empty body.
  - createTTL with a mode that is no TTL mode and a negative TTL on a path where every other
    check passes: ZooKeeper's apply throws and the server stops; Tally answers BadArguments.

On a mismatch it prints the seed, the request's index, the request, both answers (normalised
and raw) and exits 1; `--seed N` replays one seed.
"""

import argparse
import logging
import os
import random
import socket
import struct
import sys
import time

from kazoo.client import KazooClient
from kazoo.protocol.serialization import int_struct, read_string, stat_struct
from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL, Id, make_digest_acl_credential

SESSIONS = 3
WATCH_OPS = 0.2  # the share of addWatch, check/removeWatches, multiRead, getEphemerals, SetWatches
PLAIN_CREATES = 0.08  # the share of creates that only a missing parent or a node there can fail
CALL_TIMEOUT_S = 15
TTL_MS = 3_600_000  # never expires during a run

USERS = {"alice": "secret-a", "bob": "secret-b"}
ALL, READ, WRITE, CREATE, DELETE, ADMIN = 31, 1, 2, 4, 8, 16


# ---------------------------------------------------------------------------------------------
# Wire encoding: our own request objects, handed to kazoo's connection.


def wstr(s):
    """A jute string; unlike kazoo's write_string, "" is sent empty, not as null."""
    if s is None:
        return int_struct.pack(-1)
    b = s.encode()
    return int_struct.pack(len(b)) + b


def wbuf(b):
    if b is None:
        return int_struct.pack(-1)
    return int_struct.pack(len(b)) + b


def wacls(acls):
    out = int_struct.pack(len(acls))
    for a in acls:
        out += int_struct.pack(a.perms) + wstr(a.id.scheme) + wstr(a.id.id)
    return out


def rstat(buf, off):
    return ZnodeStat._make(stat_struct.unpack_from(buf, off)), off + stat_struct.size


def rint(buf, off):
    return int_struct.unpack_from(buf, off)[0], off + 4


def rbuf(buf, off):
    n, off = rint(buf, off)
    if n < 0:
        return None, off
    return bytes(buf[off : off + n]), off + n


def rstrings(buf, off):
    n, off = rint(buf, off)
    out = []
    for _ in range(max(n, 0)):
        s, off = read_string(buf, off)
        out.append(s)
    return out, off


def racls(buf, off):
    n, off = rint(buf, off)
    out = []
    for _ in range(max(n, 0)):
        perms, off = rint(buf, off)
        scheme, off = read_string(buf, off)
        ident, off = read_string(buf, off)
        out.append((perms, scheme, ident))
    return out, off


def p_path(buf, off):
    return ("path", read_string(buf, off)[0])


def p_path_stat(buf, off):
    path, off = read_string(buf, off)
    return ("path", path, rstat(buf, off)[0])


def p_stat(buf, off):
    return ("stat", rstat(buf, off)[0])


def p_data(buf, off):
    data, off = rbuf(buf, off)
    return ("data", data, rstat(buf, off)[0])


def p_children(buf, off):
    return ("children", sorted(rstrings(buf, off)[0]))


def p_strings(buf, off):
    return ("strings", sorted(rstrings(buf, off)[0]))


def p_children2(buf, off):
    kids, off = rstrings(buf, off)
    return ("children", sorted(kids), rstat(buf, off)[0])


def p_acl(buf, off):
    acls, off = racls(buf, off)
    return ("acl", auth_runs_sorted(acls), rstat(buf, off)[0])


def auth_runs_sorted(acls):
    """An `auth` entry becomes one digest entry per identity of the session: in ZooKeeper in the
    order of its identities' hash set, in Tally in the order of their addauths. So each run of
    digest entries with the same perms is compared sorted."""
    out = []
    for entry in acls:
        if out and entry[1] == "digest" and out[-1][-1][1] == "digest" and out[-1][-1][0] == entry[0]:
            out[-1].append(entry)
        else:
            out.append([entry])
    return [entry for run in out for entry in sorted(run)]


def p_int(buf, off):
    return ("int", rint(buf, off)[0])


def p_empty(buf, off):
    return ("empty", len(buf) - off)


def p_multi(buf, off):
    """Each result with its MultiHeader's type and err as sent."""
    out = []
    while True:
        (typ, done, err), off = struct.unpack_from("!iBi", buf, off), off + 9
        if done:
            return ("multi", out)
        if typ == -1:
            code, off = rint(buf, off)
            out.append(("error", err, code))
        elif typ in (1,):
            path, off = read_string(buf, off)
            out.append(("create", err, path))
        elif typ in (15, 19, 21):
            path, off = read_string(buf, off)
            stat, off = rstat(buf, off)
            out.append(("create2", err, path, stat))
        elif typ == 5:
            stat, off = rstat(buf, off)
            out.append(("set", err, stat))
        elif typ == 4:  # a multiRead's getData
            data, off = rbuf(buf, off)
            stat, off = rstat(buf, off)
            out.append(("data", err, data, stat))
        elif typ == 8:  # a multiRead's getChildren
            kids, off = rstrings(buf, off)
            out.append(("children", err, sorted(kids)))
        else:
            out.append((typ, err))


class Request:
    """A request kazoo's connection can send: `type`, `serialize()`, `deserialize()`; `watcher`
    makes kazoo ask for a watch (the server sets it from the request's watch flag)."""

    def __init__(self, type_, payload, parser, watch=False):
        self.type = type_
        self.payload = payload
        self.parser = parser
        self.watcher = (lambda event: None) if watch else None
        self.path = None

    def serialize(self):
        return self.payload

    def deserialize(self, buf, off):
        return self.parser(buf, off)


# ---------------------------------------------------------------------------------------------
# The operations. Each is (name, args); `encode` makes the Request.


def create_payload(path, data, acls, flags):
    return wstr(path) + wbuf(data) + wacls(acls) + int_struct.pack(flags)


def encode(op):
    name, a = op[0], op[1:]
    if name == "create":  # (path, data, acls, flags)
        return Request(1, create_payload(*a), p_path)
    if name == "create2":
        return Request(15, create_payload(*a), p_path_stat)
    if name == "createContainer":
        return Request(19, create_payload(*a), p_path_stat)
    if name == "createTTL":  # (path, data, acls, flags, ttl)
        return Request(21, create_payload(*a[:4]) + struct.pack("!q", a[4]), p_path_stat)
    if name == "delete":
        return Request(2, wstr(a[0]) + int_struct.pack(a[1]), p_empty)
    if name == "exists":
        return Request(3, wstr(a[0]) + bytes([a[1]]), p_stat, a[1])
    if name == "getData":
        return Request(4, wstr(a[0]) + bytes([a[1]]), p_data, a[1])
    if name == "setData":
        return Request(5, wstr(a[0]) + wbuf(a[1]) + int_struct.pack(a[2]), p_stat)
    if name == "getACL":
        return Request(6, wstr(a[0]), p_acl)
    if name == "setACL":
        return Request(7, wstr(a[0]) + wacls(a[1]) + int_struct.pack(a[2]), p_stat)
    if name == "getChildren":
        return Request(8, wstr(a[0]) + bytes([a[1]]), p_children, a[1])
    if name == "sync":
        return Request(9, wstr(a[0]), p_path)
    if name == "getChildren2":
        return Request(12, wstr(a[0]) + bytes([a[1]]), p_children2, a[1])
    if name == "check":  # only inside a multi (see the module's docstring)
        return Request(13, wstr(a[0]) + int_struct.pack(a[1]), p_empty)
    if name == "getAllChildrenNumber":
        return Request(104, wstr(a[0]), p_int)
    if name in ("multi", "multiRead"):
        b = b""
        for sub in a[0]:
            r = encode(sub)
            b += struct.pack("!iBi", r.type, 0, -1) + r.payload
        return Request(14 if name == "multi" else 22, b + struct.pack("!iBi", -1, 1, -1), p_multi)
    if name == "addWatch":  # (path, mode)
        return Request(106, wstr(a[0]) + int_struct.pack(a[1]), p_int)
    if name == "checkWatches":  # (path, watcher type)
        return Request(17, wstr(a[0]) + int_struct.pack(a[1]), p_empty)
    if name == "removeWatches":
        return Request(18, wstr(a[0]) + int_struct.pack(a[1]), p_empty)
    if name == "getEphemerals":  # (prefix)
        return Request(103, wstr(a[0]), p_strings)
    if name in ("setWatches", "setWatches2"):  # (relative zxid as a number, path lists...)
        b = struct.pack("!q", a[0])
        for paths in a[1:]:
            b += int_struct.pack(len(paths)) + b"".join(wstr(x) for x in paths)
        return Request(101 if name == "setWatches" else 105, b, p_empty)
    raise ValueError(name)


WRITES = {"create", "create2", "createContainer", "createTTL", "delete", "setData", "setACL", "multi"}
# ZooKeeper's WatcherType, and addWatch's modes.
W_CHILDREN, W_DATA, W_ANY, W_PERSISTENT, W_RECURSIVE = 1, 2, 3, 4, 5
PERSISTENT, RECURSIVE = 0, 1
NO_WATCHER, MARSHALLING_ERROR = -121, -5


def show(op):
    def short(x):
        if isinstance(x, list) and x and isinstance(x[0], ACL):
            return "[" + ",".join(f"{a.id.scheme}:{a.id.id}:{a.perms}" for a in x) + "]"
        if isinstance(x, list) and all(isinstance(s, tuple) for s in x):
            return "[" + ", ".join(show(s) for s in x) + "]"
        return repr(x)

    return f"{op[0]}({', '.join(short(x) for x in op[1:])})"


class Watches:
    """What the generator knows of each session's watches on ZooKeeper, from its requests and
    ZooKeeper's answers and events: so that it sends only what ZooKeeper 3.8.0 and Tally (which
    follows 3.9's watch modes, see the module's docstring) must answer alike.

    Persistent and recursive watches are known exactly (they only go by removeWatches or with the
    session). One-shot watches are "maybe" held: set by a watching read or SetWatches, cleared by
    an event on the path in their table, a NoWatcher answer, removeWatches or the session's end. A
    one-shot watch whose event was withheld for want of READ stays "maybe" (it is gone)."""

    def __init__(self):
        self.data = [set() for _ in range(SESSIONS)]  # one-shot data and exists watches
        self.child = [set() for _ in range(SESSIONS)]  # one-shot child watches
        self.persistent = [{} for _ in range(SESSIONS)]  # path -> PERSISTENT or RECURSIVE

    def one_shot(self, slot, path):
        return path in self.data[slot] or path in self.child[slot]

    def others_watch(self, slot, path, which):
        """Whether another session may watch `path` in the table(s) `which` names (ZooKeeper
        3.8.0's checkWatches answers for any connection's watch on the path)."""
        for d in range(SESSIONS):
            if d == slot:
                continue
            if path in self.persistent[d]:  # in both of ZooKeeper 3.8's tables, either mode
                return True
            if which in (W_DATA, W_ANY) and path in self.data[d]:
                return True
            if which in (W_CHILDREN, W_ANY) and path in self.child[d]:
                return True
        return False

    def forget(self, slot, path, which):
        if which in (W_DATA, W_ANY):
            self.data[slot].discard(path)
        if which in (W_CHILDREN, W_ANY):
            self.child[slot].discard(path)
        if which == W_ANY:
            self.persistent[slot].pop(path, None)

    def learn(self, slot, op, answer, events):
        if op[0] == "reconnect":
            op = op[1:]
        name = op[0]
        ok = answer[0] == "ok"
        if name in ("restart", "close"):
            self.data[slot].clear()
            self.child[slot].clear()
            self.persistent[slot].clear()
        elif name in ("exists", "getData") and op[2] and (ok or name == "exists"):
            self.data[slot].add(op[1])
        elif name in ("getChildren", "getChildren2") and op[2] and ok:
            self.child[slot].add(op[1])
        elif name == "addWatch" and ok:
            self.persistent[slot][op[1]] = op[2]
        elif name in ("checkWatches", "removeWatches") and op[2] in (W_CHILDREN, W_DATA, W_ANY):
            if answer == ("err", NO_WATCHER) or (name == "removeWatches" and ok):
                self.forget(slot, op[1], op[2])
        elif name == "removeWatches" and op[2] in (W_PERSISTENT, W_RECURSIVE) and ok:
            self.persistent[slot].pop(op[1], None)
        elif name in ("setWatches", "setWatches2"):
            # Fired at once or set: maybe held, either way. The events are SetWatches' own, and
            # spend no watch.
            self.data[slot].update(op[2] + op[3])
            self.child[slot].update(op[4])
            if name == "setWatches2":
                self.persistent[slot].update({p: PERSISTENT for p in op[5]})
                self.persistent[slot].update({p: RECURSIVE for p in op[6]})
            return
        for d, got in enumerate(events):
            for typ, _state, path in got:
                if typ in (1, 3):
                    self.data[d].discard(path)
                elif typ == 2:
                    self.data[d].discard(path)
                    self.child[d].discard(path)
                elif typ == 4:
                    self.child[d].discard(path)


class Generator:
    """Draws requests from a seed. Paths come from a small alphabet under the seed's own base node,
    plus what sequential creates returned (from the reference's answers)."""

    def __init__(self, seed, base):
        self.rng = random.Random(seed)
        self.base = base
        names = ["a", "b"]
        self.paths = [base] + [f"{base}/{x}" for x in names]
        self.paths += [f"{base}/{x}/{y}" for x in names for y in names]
        self.paths += [f"{base}/a/a/a"]
        self.special = ["/", "/zookeeper", "/zookeeper/config", "/zookeeper/quota", "", base + "/", "x"]
        self.watches = Watches()
        # For watcher types 4 and 5 (3.9's, which 3.8.0 refuses): the answer expected of Tally,
        # and whether ZooKeeper must drop the watch too (see run_seed).
        self.expected = None

    def learn(self, slot, op, answer, events):
        """Remember sequential nodes' names, so later requests find them, and the sessions'
        watches (from ZooKeeper's answer and each session's events)."""
        self.watches.learn(slot, op, answer, events)

        def add(p):
            if isinstance(p, str) and p not in self.paths and p.startswith(self.base):
                self.paths.append(p)

        if answer[0] == "ok" and answer[1][0] == "path":
            add(answer[1][1])
        if answer[0] == "ok" and answer[1][0] == "multi":
            for r in answer[1][1]:
                if r[0] in ("create", "create2"):
                    add(r[2])

    def path(self, special_ok=True):
        r = self.rng
        if special_ok and r.random() < 0.04:
            return r.choice(self.special)
        # Favour the alphabet's short paths; sequential names stay reachable.
        if r.random() < 0.75:
            return r.choice(self.paths[:7])
        return r.choice(self.paths)

    def data(self):
        return self.rng.choice([b"", b"x", b"hello", b"\x00\xff", None, b"y" * 40])

    def version(self):
        return self.rng.choice([-1, -1, -1, 0, 0, 1, 2, 5])

    def acls(self):
        r = self.rng
        world = lambda p: ACL(p, Id("world", "anyone"))  # noqa: E731
        digest = lambda u, p: ACL(p, Id("digest", make_digest_acl_credential(u, USERS[u])))  # noqa: E731
        pool = [
            [world(ALL)],
            [world(ALL)],
            [world(ALL)],
            [world(READ)],
            [world(READ | CREATE)],
            [world(READ | WRITE | DELETE)],
            [world(r.randint(0, 31))],
            [digest("alice", ALL)],
            [digest("bob", READ | WRITE), world(READ)],
            [digest("alice", ALL), digest("bob", ALL)],
            [ACL(ALL, Id("auth", ""))],
            [ACL(READ | CREATE | DELETE, Id("auth", "")), world(READ)],
            [ACL(ALL, Id("ip", "127.0.0.1"))],
            [ACL(ALL, Id("ip", "10.0.0.0/8")), world(READ)],
            [ACL(ALL, Id("world", "someone"))],
            [ACL(ALL, Id("digest", "alice"))],
            [ACL(ALL, Id("foo", "bar"))],
            [ACL(ALL, Id("sasl", "alice"))],
            [ACL(ALL, Id("x509", "CN=alice"))],
            [],
            [world(ALL), world(ALL)],
        ]
        return r.choice(pool)

    def simple_write(self):
        """A create, delete, setData or check, for a multi."""
        r = self.rng
        kind = r.choice(["create", "create", "delete", "setData", "check"])
        if kind == "create":
            return ("create", self.path(False), self.data(), self.acls(), r.choice([0, 0, 1, 2, 3]))
        if kind == "delete":
            return ("delete", self.path(False), self.version())
        if kind == "setData":
            return ("setData", self.path(False), self.data(), self.version())
        return ("check", self.path(False), self.version())

    def next(self):
        """(session slot, op); op is a tuple, or ("addauth", user) or ("restart",)."""
        r = self.rng
        slot = r.randrange(SESSIONS)
        self.expected = None
        if r.random() < WATCH_OPS:
            return slot, self.watch_op(slot)
        if r.random() < PLAIN_CREATES:
            # Open to all, so that the tree fills and watches have changes to see.
            flags = r.choice([0, 0, 1, 1, 2, 3])
            return slot, ("create", self.path(False), self.data(), [ACL(ALL, Id("world", "anyone"))], flags)
        x = r.random()
        watch = r.random() < 0.5
        if x < 0.14:
            flags = r.choice([0, 0, 1, 2, 3, 3] + ([4, 5, 6, -1] if r.random() < 0.1 else []))
            op = (r.choice(["create", "create2"]), self.path(), self.data(), self.acls(), flags)
        elif x < 0.17:
            op = ("createContainer", self.path(), self.data(), self.acls(), r.choice([4, 4, 4, 0]))
        elif x < 0.20:
            flags = r.choice([5, 6, 5, 6, 0, 1])
            ttl = r.choice([TTL_MS, TTL_MS, TTL_MS, 0, -1, 1 << 41])
            path = self.path()
            if flags not in (5, 6) and ttl < 0:
                # ZooKeeper's prep lets this through and its apply then throws, which stops the
                # server: sent only where the prep refuses it (exists, no parent, no auth).
                path = r.choice(["/zookeeper", "/missing/x", "/zookeeper/config/x"])
            op = ("createTTL", path, self.data(), self.acls(), flags, ttl)
        elif x < 0.30:
            op = ("delete", self.path(), self.version())
        elif x < 0.38:
            op = ("exists", self.path(), watch)
        elif x < 0.46:
            op = ("getData", self.path(), watch)
        elif x < 0.55:
            op = ("setData", self.path(), self.data(), self.version())
        elif x < 0.61:
            op = ("getChildren", self.path(), watch)
        elif x < 0.66:
            op = ("getChildren2", self.path(), watch)
        elif x < 0.68:
            op = ("getAllChildrenNumber", self.path())
        elif x < 0.78:
            op = ("multi", [self.simple_write() for _ in range(r.randint(1, 4))])
        elif x < 0.80:
            op = ("sync", self.path())
        elif x < 0.85:
            op = ("getACL", self.path())
        elif x < 0.92:
            op = ("setACL", self.path(), self.acls(), r.choice([-1, -1, 0, 0, 1]))
        elif x < 0.96:
            op = ("addauth", r.choice(sorted(USERS)))
        elif x < 0.975:
            op = ("restart",)
        else:
            op = ("getData", self.base, True)
        reads = ("exists", "getData", "getChildren", "getChildren2")
        if op[0] in reads and op[1] in self.watches.persistent[slot]:
            # ZooKeeper 3.8.0 would turn the persistent watch into this one-shot one.
            op = (op[0], op[1], False)
        return slot, op

    def comparable(self, slot, name, path, which):
        """Whether ZooKeeper 3.8.0 and Tally must answer checkWatches or removeWatches alike: 3.8.0
        finds any connection's watch on the path, and takes Data and Children to mean any mode."""
        w = self.watches
        if which not in (W_CHILDREN, W_DATA, W_ANY):
            return True
        if name == "checkWatches" and (w.others_watch(slot, path, which) or not path.startswith("/")):
            # 3.8.0 walks the path and its parents: it finds nothing on the empty path (a read's
            # watch on "" is set there too), and fails a path without a "/" (MarshallingError).
            return False
        return which == W_ANY or path not in w.persistent[slot]

    def watch_op(self, slot):
        """addWatch, checkWatches, removeWatches, multiRead, getEphemerals or SetWatches(2)."""
        r = self.rng
        w = self.watches
        x = r.random()
        if x < 0.3:
            mode = r.choice([PERSISTENT, RECURSIVE] * 5 + [2, -1])
            for _ in range(8):
                path = self.base if r.random() < 0.3 else self.path()
                if mode not in (PERSISTENT, RECURSIVE):
                    break
                # One mode per session and path: ZooKeeper 3.8.0 keeps only the latest.
                if w.persistent[slot].get(path, mode) == mode and not w.one_shot(slot, path):
                    break
            else:
                mode = 2
            return ("addWatch", path, mode)
        if x < 0.6:
            name = r.choice(["checkWatches", "removeWatches"])
            which = r.choice([W_CHILDREN, W_DATA, W_ANY] * 3 + [W_PERSISTENT, W_RECURSIVE] * 2 + [0, 6])
            for _ in range(8):
                held = sorted(w.data[slot] | w.child[slot] | set(w.persistent[slot]))
                path = r.choice(held) if held and r.random() < 0.6 else self.path()
                if self.comparable(slot, name, path, which):
                    break
            else:
                which = r.choice([W_PERSISTENT, W_RECURSIVE])
            if which in (W_PERSISTENT, W_RECURSIVE):
                found = w.persistent[slot].get(path) == (PERSISTENT if which == W_PERSISTENT else RECURSIVE)
                answer = ("ok", ("empty", 0)) if found else ("err", NO_WATCHER)
                self.expected = (answer, name == "removeWatches" and found)
            return (name, path, which)
        if x < 0.75:
            subs = []
            for _ in range(r.choice([0, 1, 2, 2, 3, 4])):
                y = r.random()
                if y < 0.45:
                    subs.append(("getData", self.path(), r.random() < 0.5))
                elif y < 0.9:
                    subs.append(("getChildren", self.path(), r.random() < 0.5))
                elif y < 0.95:
                    subs.append((r.choice(["exists", "getChildren2"]), self.path(), False))
                else:
                    subs.append(self.simple_write())
            return ("multiRead", subs)
        if x < 0.85:
            b = self.base
            # Blank prefixes and "/" (after Java's trim: control characters and spaces) list all.
            blank = ["\x00", "\t/ ", "\x01/\x1f", "\u00a0", "\u3000/", " / "]
            prefixes = [b, b, b + "/a", b + "/", "/", "", " ", None, "/zookeeper", "x", self.path()]
            return ("getEphemerals", r.choice(prefixes + [r.choice(blank)]))
        name = r.choice(["setWatches", "setWatches2"])
        back = [("back", r.randint(1, 10)), ("back", r.randint(1, 60))]
        rel = r.choice([("last",), ("last",), ("zero",), ("huge",)] + back)
        reconnect = r.random() < 0.2
        if reconnect:
            # The old connection's watches are gone; the SetWatches on the new one sets them.
            w.data[slot].clear()
            w.child[slot].clear()
            w.persistent[slot].clear()

        def paths(count_max, ok):
            return [p for p in (self.path() for _ in range(r.randint(0, count_max))) if ok(p)]

        data = paths(3, lambda p: p not in w.persistent[slot])
        exist = paths(2, lambda p: p not in w.persistent[slot])
        child = paths(3, lambda p: p not in w.persistent[slot])
        if name == "setWatches":
            op = (name, rel, data, exist, child)
            return ("reconnect",) + op if reconnect else op
        taken = set(data + exist + child)

        def free(mode):
            def ok(p):
                return w.persistent[slot].get(p, mode) == mode and not w.one_shot(slot, p) and p not in taken

            return ok

        persistent = paths(2, free(PERSISTENT))
        taken.update(persistent)
        recursive = paths(2, free(RECURSIVE))
        op = (name, rel, data, exist, child, persistent, recursive)
        return ("reconnect",) + op if reconnect else op


# ---------------------------------------------------------------------------------------------
# A side: one server (or cluster) with its sessions.


def connect(host):
    deadline = time.time() + 30
    while True:
        zk = KazooClient(hosts=host, timeout=10)
        try:
            zk.start(timeout=10)
            return zk
        except Exception:
            zk.close()
            if time.time() > deadline:
                raise
            time.sleep(0.2)


class Side:
    def __init__(self, name, hosts):
        self.name = name
        self.hosts = hosts
        self.clients = [None] * SESSIONS
        self.events = [[] for _ in range(SESSIONS)]
        self.owners = {}  # session id -> "s<slot>.<generation>"
        self.generation = [0] * SESSIONS
        self.marks = []
        self.moves = [0] * SESSIONS  # reconnections of each slot's session
        self.dropped = []  # kazoo clients whose connection reconnect() dropped

    def open(self, slot):
        self.install(slot, connect(self.hosts[slot % len(self.hosts)]))
        self.owners[self.clients[slot].client_id[0]] = f"s{slot}.{self.generation[slot]}"
        self.generation[slot] += 1

    def reconnect(self, slot):
        """Moves session `slot` to a new connection (on Tally, to the next member), as a client
        does whose connection broke: the old connection is dropped without closing the session,
        and the new one attaches with the session's id, password and last zxid and sends its
        identities again (as kazoo does). Watches stay with the old connection: the caller sends
        SetWatches next. Returns the last zxid the old connection had seen."""
        old = self.clients[slot]
        last, client_id, auth = old.last_zxid, old.client_id, set(old.auth_data)
        old._stopped.set()  # kazoo must not reconnect it on its own
        try:
            old._connection._socket.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass
        self.dropped.append(old)  # closed at the end of the seed, once its thread has stopped
        self.moves[slot] += 1
        host = self.hosts[(slot + self.moves[slot]) % len(self.hosts)]
        zk = KazooClient(hosts=host, timeout=10, client_id=client_id)
        zk.auth_data = auth
        zk.last_zxid = last
        zk.start(timeout=CALL_TIMEOUT_S)
        assert zk.client_id[0] == client_id[0], f"{self.name}: the session was not resumed"
        self.install(slot, zk)
        return last

    def install(self, slot, zk):
        conn = zk._connection
        original = conn._read_watch_event
        events = self.events[slot]

        def record(buf, off):
            # On kazoo's reader thread, in the order the server sent them: before any later answer.
            typ, state = struct.unpack_from("!ii", buf, off)
            path = read_string(buf, off + 8)[0]
            events.append((typ, state, path))
            return original(buf, off)

        conn._read_watch_event = record
        self.clients[slot] = zk

    def open_all(self):
        for slot in range(SESSIONS):
            self.open(slot)

    def close(self, slot):
        zk = self.clients[slot]
        self.clients[slot] = None
        zk.stop()
        zk.close()

    def close_all(self):
        for slot in range(SESSIONS):
            if self.clients[slot] is not None:
                self.close(slot)
        for old in self.dropped:
            old._connection.connection_stopped.wait(CALL_TIMEOUT_S)
            old.close()
        self.dropped.clear()

    def send(self, slot, op):
        """Sends `op` on session `slot`; returns a function that waits for the answer. Both sides
        get their request before either answer is awaited, so they work at the same time."""
        zk = self.clients[slot]
        if op[0] == "addauth":
            user = op[1]
            result = zk.add_auth_async("digest", f"{user}:{USERS[user]}")
            return lambda: self.wait(result, ("auth",))
        if op[0] in ("restart", "close"):
            self.close(slot)
            if op[0] == "restart":
                self.open(slot)
            return lambda: ("ok", (op[0],))
        if op[0] in ("setWatches", "setWatches2"):
            op = (op[0], self.relative_zxid(slot, op[1])) + op[2:]
        elif op[0] == "reconnect":  # then the SetWatches(2) a reconnecting client sends
            last = self.reconnect(slot)
            op = (op[1], last if op[2] == ("last",) else self.relative_zxid(slot, op[2])) + op[3:]
        zk = self.clients[slot]
        result = zk.handler.async_result()
        zk._call(encode(op), result)
        return lambda: self.wait(result)

    def relative_zxid(self, slot, spec):
        """A SetWatches' zxid, meaning the same on both sides: the last zxid this side reported to
        the session (what a reconnecting client sends), the last it reported to any session a
        few requests ago, or a bound."""
        if spec[0] == "last":
            return self.clients[slot].last_zxid
        if spec[0] == "back":
            return self.marks[max(0, len(self.marks) - spec[1])]
        return {"zero": 0, "huge": 1 << 62}[spec[0]]

    def mark(self):
        """Remembers the last zxid this side reported, after a request (see relative_zxid)."""
        self.marks.append(max([0] + [zk.last_zxid for zk in self.clients if zk is not None]))

    @staticmethod
    def wait(result, fixed=None):
        try:
            answer = result.get(timeout=CALL_TIMEOUT_S)
        except Exception as e:  # noqa: BLE001
            code = getattr(e, "code", None)
            return ("err", code) if isinstance(code, int) else ("exc", type(e).__name__)
        if fixed is not None:
            return ("ok", fixed)
        if answer is None:  # kazoo's exists() turns NoNode into None
            return ("err", -101)
        return ("ok", answer)

    def start_flush(self):
        """A sync on every open session: its member has applied everything answered so far, and
        has sent each watch event before the sync's answer. Returns what to wait for."""
        return [zk.sync_async("/") for zk in self.clients if zk is not None]

    def take_events(self):
        out = [list(e) for e in self.events]
        for e in self.events:
            e.clear()
        return out


# ---------------------------------------------------------------------------------------------
# Normalisation and comparison.


class Zxid:
    def __init__(self, raw):
        self.raw = raw


def norm(x, side):
    """The comparable form of an answer; zxids wrapped for ranking later."""
    if isinstance(x, ZnodeStat):
        owner = x.ephemeralOwner
        return {
            "czxid": Zxid(x.czxid),
            "mzxid": Zxid(x.mzxid),
            "pzxid": Zxid(x.pzxid),
            "ctime": "set" if x.ctime else 0,
            "mtime": "set" if x.mtime else 0,
            "version": x.version,
            "cversion": x.cversion,
            "aversion": x.aversion,
            "ephemeralOwner": side.owners.get(owner, owner),
            "dataLength": x.dataLength,
            "numChildren": x.numChildren,
        }
    if isinstance(x, (list, tuple)):
        return [norm(y, side) for y in x]
    return x


def zxids_of(x, out):
    if isinstance(x, Zxid):
        out.add(x.raw)
    elif isinstance(x, dict):
        for v in x.values():
            zxids_of(v, out)
    elif isinstance(x, list):
        for v in x:
            zxids_of(v, out)


def ranked(x, rank):
    if isinstance(x, Zxid):
        return f"z{rank[x.raw]}"
    if isinstance(x, dict):
        return {k: ranked(v, rank) for k, v in x.items()}
    if isinstance(x, list):
        return [ranked(v, rank) for v in x]
    return x


def finish(transcript):
    """Each entry with every zxid replaced by its rank among the zxids the side reported up to
    and including that entry: a deviation shows at its own entry, not at earlier ones."""
    seen = set()
    out = []
    for entry in transcript:
        zxids_of(entry, seen)
        rank = {z: i for i, z in enumerate(sorted(seen))}
        out.append(ranked(entry, rank))
    return out


def run_seed(seed, ops, zk, tally, tag, verbose):
    base = f"/{tag}{seed}"
    gen = Generator(seed, base)
    sides = (zk, tally)
    for side in sides:
        side.owners.clear()
        side.generation = [0] * SESSIONS
        side.marks = []
        side.moves = [0] * SESSIONS
        side.take_events()
        side.open_all()
    transcripts = ([], [])
    raws = ([], [])
    sent = []
    # The base node first; the sessions closed last, so their ephemerals' ends reach the others.
    first = [(0, ("create", base, b"base", [ACL(ALL, Id("world", "anyone"))], 0))]
    last = [(slot, ("close",)) for slot in range(SESSIONS)]
    try:
        for i in range(ops + len(last)):
            slot, op = first.pop() if first else gen.next() if i < ops else last[i - ops]
            expected = gen.expected if i < ops else None
            sent.append((slot, op))
            answers = [get() for get in [side.send(slot, op) for side in sides]]
            raw_zk = answers[0]
            if expected is not None and answers[0] == ("err", MARSHALLING_ERROR):
                # Watcher types 4 and 5 are 3.9's: ZooKeeper 3.8.0 refuses them, and Tally is held
                # to the answer 3.9 gives, from what the generator knows of the session's
                # persistent watches. A watch Tally removed goes from ZooKeeper as well.
                answers[0], drop = expected
                if drop:
                    again = zk.send(slot, ("removeWatches", op[1], W_ANY))()
                    assert again[0] == "ok", f"zookeeper kept no watch on {op[1]}: {again}"
            if op[0] in WRITES or op[0] in ("restart", "close"):
                for result in [r for side in sides for r in side.start_flush()]:
                    result.get(timeout=CALL_TIMEOUT_S)
            for k, side in enumerate(sides):
                side.mark()
                events = side.take_events()
                if op[0] in ("restart", "close"):
                    # A closed session's ephemerals go in hash-set order in ZooKeeper, in path
                    # order here: the events they fire are compared as sets.
                    events = [sorted(e) for e in events]
                transcripts[k].append(norm([answers[k], events], side))
                raws[k].append((answers[k], events))
            gen.learn(slot, op, answers[0], raws[0][-1][1])
            if verbose:
                print(f"  {seed}/{i} s{slot} {show(op)} -> {raws[0][-1][0]}")
                if raw_zk != answers[0]:
                    print(f"      zookeeper answered {raw_zk} (3.8.0 lacks watcher types 4 and 5)")
                for k, side in enumerate(sides):
                    if any(raws[k][-1][1]):
                        print(f"      {side.name} events: {raws[k][-1][1]}")
    finally:
        for side in sides:
            side.close_all()
    a, b = finish(transcripts[0]), finish(transcripts[1])
    for i in range(len(sent)):
        if a[i] != b[i]:
            return i, sent[i], a[i], b[i], raws[0][i], raws[1][i]
    return None


def main():
    env = os.environ.get
    p = argparse.ArgumentParser()
    p.add_argument("--tally", required=True, help="comma-separated host:port, one per member")
    p.add_argument("--zk", required=True, help="the reference ZooKeeper's host:port")
    p.add_argument("--seeds", type=int, default=int(env("TALLY_ZKDIFF_SEEDS", "50")))
    p.add_argument("--first-seed", type=int, default=int(env("TALLY_ZKDIFF_FIRST_SEED", "0")))
    p.add_argument("--seed", type=int, default=int(env("TALLY_ZKDIFF_SEED", "-1")), help="replay one seed")
    p.add_argument("--ops", type=int, default=int(env("TALLY_ZKDIFF_OPS", "200")))
    p.add_argument("--tag", default="t", help="prefix of each seed's base node")
    p.add_argument("--keep-going", action="store_true", default=bool(env("TALLY_ZKDIFF_KEEP_GOING")))
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args()
    # kazoo logs its connection attempts while the servers start; failures are ours to report
    # (TALLY_ZKDIFF_LOG=WARNING or DEBUG shows kazoo's log).
    logging.basicConfig(level=getattr(logging, env("TALLY_ZKDIFF_LOG", "CRITICAL")))
    seeds = [args.seed] if args.seed >= 0 else range(args.first_seed, args.first_seed + args.seeds)
    zk = Side("zookeeper", [args.zk])
    tally = Side("tally", args.tally.split(","))
    started = time.time()
    failed = 0
    compared = 0
    for seed in seeds:
        result = run_seed(seed, args.ops, zk, tally, args.tag, args.verbose)
        if result is None:
            compared += args.ops + SESSIONS  # and the closes
            continue
        failed += 1
        i, (slot, op), a, b, ra, rb = result
        compared += i
        print(f"MISMATCH seed {seed} op {i} (replay: --seed {seed} -v): session {slot} {show(op)}")
        print(f"  zookeeper: {a}\n  tally:     {b}")
        print(f"  zookeeper raw: {ra}\n  tally raw:     {rb}")
        if not args.keep_going:
            break
    print(
        f"zk differential: {len(seeds)} seeds x {args.ops} ops, {compared} requests compared, "
        f"{failed} mismatching seeds, {time.time() - started:.1f}s"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
