"""A bare ZooKeeper protocol client for what kazoo 2.11 cannot ask: addWatch (persistent and
recursive watches), checkWatches and removeWatches, with every notification kept in order.

Jute: big-endian ints and longs, strings and buffers as an int length and bytes."""

import socket
import struct

ADD_WATCH, CHECK_WATCHES, REMOVE_WATCHES, SYNC, PING = 106, 17, 18, 9, 11
CREATE, CREATE_CONTAINER, CREATE_TTL = 1, 19, 21
EPHEMERAL_FLAGS, CONTAINER_FLAGS, PERSISTENT_WITH_TTL_FLAGS = 1, 4, 5
PERSISTENT, PERSISTENT_RECURSIVE = 0, 1
# WatcherType
CHILDREN, DATA, ANY, PERSISTENT_TYPE, RECURSIVE_TYPE = 1, 2, 3, 4, 5
EVENT_NAMES = {1: "created", 2: "deleted", 3: "changed", 4: "child"}


def _string(s):
    b = s.encode()
    return struct.pack(">i", len(b)) + b


class RawSession:
    def __init__(self, host, timeout_ms=10000):
        addr, port = host.rsplit(":", 1)
        self.sock = socket.create_connection((addr, int(port)), timeout=10)
        self.xid = 0
        self.events = []  # (event name, path) in arrival order
        connect = struct.pack(">iqiq", 0, 0, timeout_ms, 0) + struct.pack(">i", 16) + b"\0" * 16 + b"\0"
        self._send(connect)
        body = self._frame()
        _, self.timeout_ms, self.session_id, length = struct.unpack(">iiqi", body[:20])
        self.password = body[20 : 20 + length]
        assert self.session_id != 0, "the server refused the session"

    def _send(self, payload):
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)

    def _exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the server closed the connection")
            data += chunk
        return data

    def _frame(self):
        (length,) = struct.unpack(">i", self._exact(4))
        return self._exact(length)

    def call(self, op, body=b""):
        """Sends a request; returns (err, body), keeping notifications that come before it."""
        self.xid += 1
        self._send(struct.pack(">ii", self.xid, op) + body)
        while True:
            frame = self._frame()
            xid, _zxid, err = struct.unpack(">iqi", frame[:16])
            rest = frame[16:]
            if xid == -1:
                event_type, _state, length = struct.unpack(">iii", rest[:12])
                self.events.append((EVENT_NAMES.get(event_type, event_type), rest[12 : 12 + length].decode()))
                continue
            assert xid == self.xid, f"reply to xid {xid}, expected {self.xid}"
            return err, rest

    def add_watch(self, path, mode):
        return self.call(ADD_WATCH, _string(path) + struct.pack(">i", mode))[0]

    def check_watches(self, path, watcher_type):
        return self.call(CHECK_WATCHES, _string(path) + struct.pack(">i", watcher_type))[0]

    def remove_watches(self, path, watcher_type):
        return self.call(REMOVE_WATCHES, _string(path) + struct.pack(">i", watcher_type))[0]

    def create_ephemeral(self, path, data=b""):
        return self._create(CREATE, path, data, EPHEMERAL_FLAGS, b"")

    def create_container(self, path, data=b""):
        return self._create(CREATE_CONTAINER, path, data, CONTAINER_FLAGS, b"")

    def create_ttl(self, path, ttl_ms, data=b""):
        return self._create(CREATE_TTL, path, data, PERSISTENT_WITH_TTL_FLAGS, struct.pack(">q", ttl_ms))

    def _create(self, op, path, data, flags, tail):
        """Open to everyone (world:anyone, all permissions); returns the error code."""
        acl = struct.pack(">ii", 1, 31) + _string("world") + _string("anyone")
        body = _string(path) + struct.pack(">i", len(data)) + data + acl + struct.pack(">i", flags) + tail
        return self.call(op, body)[0]

    def sync(self, path="/"):
        """After it, every change committed before it has been applied (and notified) here."""
        return self.call(SYNC, _string(path))[0]

    def take_events(self):
        events, self.events = self.events, []
        return events

    def close(self):
        self.sock.close()
