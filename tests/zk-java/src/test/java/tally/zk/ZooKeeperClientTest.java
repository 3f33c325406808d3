package tally.zk;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static tally.zk.Tally.HOSTS;
import static tally.zk.Tally.bytes;
import static tally.zk.Tally.string;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs.Ids;
import org.apache.zookeeper.data.Stat;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;

/** ZooKeeper's own Java client, without Curator: nodes, versions, errors and sessions. */
@Order(1)
class ZooKeeperClientTest {

    @Test
    void crudStatsAndVersions() throws Exception {
        try (Tally.Zk zk = Tally.connect(HOSTS.get(0))) {
            long before = System.currentTimeMillis();
            Stat created = new Stat();
            assertEquals("/j-crud", zk.create("/j-crud", bytes("hello"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT, created));
            assertEquals(0, created.getVersion());
            assertEquals(created.getCzxid(), created.getMzxid());
            assertEquals(created.getCzxid(), created.getPzxid());
            assertEquals(5, created.getDataLength());
            assertEquals(0, created.getEphemeralOwner());
            assertTrue(Math.abs(created.getCtime() - before) < 60_000, "ctime is the wall clock: " + created.getCtime());

            Stat read = new Stat();
            assertEquals("hello", string(zk.getData("/j-crud", false, read)));
            assertEquals(created, read);

            Stat set = zk.setData("/j-crud", bytes("world!"), 0);
            assertEquals(1, set.getVersion());
            assertEquals(created.getCzxid(), set.getCzxid());
            assertTrue(set.getMzxid() > created.getMzxid(), "mzxid grows");
            assertTrue(set.getMtime() >= set.getCtime());
            assertEquals(6, set.getDataLength());
            assertEquals(set, zk.exists("/j-crud", false));

            assertThrows(KeeperException.BadVersionException.class, () -> zk.setData("/j-crud", bytes("again"), 0));
            assertThrows(KeeperException.NodeExistsException.class,
                    () -> zk.create("/j-crud", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT));
            assertThrows(KeeperException.NoNodeException.class,
                    () -> zk.create("/j-missing/child", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT));
            assertThrows(KeeperException.NoNodeException.class, () -> zk.getData("/j-missing", false, null));
            assertNull(zk.exists("/j-missing", false));

            // Children: cversion, numChildren and pzxid on the parent; sequential names.
            zk.create("/j-crud/a", bytes("1"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            String s0 = zk.create("/j-crud/s-", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_SEQUENTIAL);
            String s1 = zk.create("/j-crud/s-", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_SEQUENTIAL);
            assertEquals("/j-crud/s-0000000001", s0, "the sequence number is the parent's cversion");
            assertEquals("/j-crud/s-0000000002", s1);
            Stat parent = new Stat();
            List<String> children = new ArrayList<>(zk.getChildren("/j-crud", false, parent));
            Collections.sort(children);
            assertEquals(List.of("a", "s-0000000001", "s-0000000002"), children);
            assertEquals(3, parent.getNumChildren());
            assertEquals(3, parent.getCversion());
            assertEquals(1, parent.getVersion(), "children do not change the parent's data version");
            assertEquals(zk.exists(s1, false).getCzxid(), parent.getPzxid());
            assertEquals(3, zk.getAllChildrenNumber("/j-crud"));

            assertThrows(KeeperException.NotEmptyException.class, () -> zk.delete("/j-crud", -1));
            assertThrows(KeeperException.BadVersionException.class, () -> zk.delete("/j-crud/a", 7));
            zk.delete("/j-crud/a", 0);
            zk.delete(s0, -1);
            zk.delete(s1, -1);
            Stat afterDeletes = zk.exists("/j-crud", false);
            assertEquals(0, afterDeletes.getNumChildren());
            assertTrue(afterDeletes.getPzxid() > parent.getPzxid());
            zk.delete("/j-crud", 1);
            assertNull(zk.exists("/j-crud", false));
            assertThrows(KeeperException.NoNodeException.class, () -> zk.delete("/j-crud", -1));
        }
    }

    @Test
    void multiIsAllOrNothing() throws Exception {
        try (Tally.Zk zk = Tally.connect(HOSTS.get(1))) {
            KeeperException failed = assertThrows(KeeperException.class, () -> zk.multi(List.of(
                    Op.create("/j-multi", bytes("1"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
                    Op.check("/j-multi", 5))));
            assertEquals(KeeperException.Code.BADVERSION, failed.code());
            List<OpResult> results = failed.getResults();
            assertInstanceOf(OpResult.ErrorResult.class, results.get(0));
            assertEquals(KeeperException.Code.OK.intValue(), ((OpResult.ErrorResult) results.get(0)).getErr());
            assertEquals(KeeperException.Code.BADVERSION.intValue(), ((OpResult.ErrorResult) results.get(1)).getErr());
            assertNull(zk.exists("/j-multi", false), "a failed multi changes nothing");

            List<OpResult> ok = zk.multi(List.of(
                    Op.create("/j-multi", bytes("1"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
                    Op.setData("/j-multi", bytes("2"), 0),
                    Op.check("/j-multi", 1),
                    Op.create("/j-multi/kid", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT)));
            assertEquals("/j-multi", ((OpResult.CreateResult) ok.get(0)).getPath());
            assertEquals(1, ((OpResult.SetDataResult) ok.get(1)).getStat().getVersion());
            Stat stat = new Stat();
            assertEquals("2", string(zk.getData("/j-multi", false, stat)));
            assertEquals(1, stat.getNumChildren());
            zk.multi(List.of(Op.delete("/j-multi/kid", -1), Op.delete("/j-multi", 1)));
            assertNull(zk.exists("/j-multi", false));
        }
    }

    @Test
    void ephemeralsEndWithTheirSessionAsSeenFromOtherMembers() throws Exception {
        Tally.Zk owner = Tally.connect(HOSTS.get(0));
        owner.create("/j-eph", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        owner.create("/j-eph/mine", bytes("x"), Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
        String seq = owner.create("/j-eph/seq-", null, Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL_SEQUENTIAL);
        assertThrows(KeeperException.NoChildrenForEphemeralsException.class,
                () -> owner.create("/j-eph/mine/child", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT));
        long session = owner.getSessionId();

        List<Tally.Zk> others = List.of(Tally.connect(HOSTS.get(1)), Tally.connect(HOSTS.get(2)));
        CountDownLatch deleted = new CountDownLatch(2);
        for (Tally.Zk other : others) {
            other.sync("/");
            Stat stat = other.exists("/j-eph/mine", event -> {
                if (event.getType() == Watcher.Event.EventType.NodeDeleted) {
                    deleted.countDown();
                }
            });
            assertNotNull(stat);
            assertEquals(session, stat.getEphemeralOwner());
            assertEquals(session, other.exists(seq, false).getEphemeralOwner());
        }
        owner.close();
        assertTrue(deleted.await(10, TimeUnit.SECONDS), "the other members' watches saw the ephemeral go");
        for (Tally.Zk other : others) {
            other.sync("/");
            assertNull(other.exists("/j-eph/mine", false));
            assertNull(other.exists(seq, false));
            assertEquals(List.of(), other.getChildren("/j-eph", false));
            other.close();
        }
    }

    @Test
    void aSessionMovesToAnotherMemberWithItsIdAndPassword() throws Exception {
        Tally.Zk first = Tally.connect(HOSTS.get(0));
        first.create("/j-moving", null, Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
        long id = first.getSessionId();
        byte[] password = first.getSessionPasswd();
        // The client loses its member without closing its session.
        first.drop();

        Tally.Zk resumed = Tally.connect(HOSTS.get(1), id, password);
        assertEquals(id, resumed.getSessionId());
        assertArrayEquals(password, resumed.getSessionPasswd());
        resumed.sync("/");
        assertEquals(id, resumed.exists("/j-moving", false).getEphemeralOwner());
        resumed.create("/j-moving-2", null, Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);

        // A wrong password does not resume it: the handle is told its session expired.
        byte[] wrong = password.clone();
        wrong[0] ^= 1;
        try (Tally.Zk intruder = new Tally.Zk(HOSTS.get(2), id, wrong)) {
            assertEquals(Watcher.Event.KeeperState.Expired, intruder.awaitState(10, TimeUnit.SECONDS));
        }
        // (ZooKeeper closes the owner's connection when any handle, even a wrong password's,
        // claims the session on the same server; the owner reconnects. Tally leaves it alone.)
        Tally.eventually(Duration.ofSeconds(10), "the intruder did not end the session", () -> {
            try {
                return resumed.exists("/j-moving-2", false).getEphemeralOwner() == id;
            } catch (KeeperException.ConnectionLossException e) {
                return false;
            } catch (Exception e) {
                throw new RuntimeException(e);
            }
        });

        // Closing it through the member it moved to ends it everywhere.
        resumed.close();
        try (Tally.Zk observer = Tally.connect(HOSTS.get(2))) {
            observer.sync("/");
            assertNull(observer.exists("/j-moving", false));
            assertNull(observer.exists("/j-moving-2", false));
        }
        // An ended session cannot be resumed.
        try (Tally.Zk again = new Tally.Zk(HOSTS.get(0), id, password)) {
            assertEquals(Watcher.Event.KeeperState.Expired, again.awaitState(10, TimeUnit.SECONDS));
        }
    }

    @Test
    void aDroppedClientsSessionExpiresAndItsEphemeralsGo() throws Exception {
        Tally.Zk dying = Tally.connect(HOSTS.get(2));
        dying.create("/j-orphan", null, Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
        long id = dying.getSessionId();
        long dropped = System.nanoTime();
        dying.drop();
        try (Tally.Zk observer = Tally.connect(HOSTS.get(0))) {
            observer.sync("/");
            assertNotNull(observer.exists("/j-orphan", false));
            // A new leader restarts every session's clock (as ZooKeeper's does), and on a loaded
            // machine a debug build's members may change leader meanwhile: allow a few timeouts.
            Tally.eventually(Duration.ofMillis(3L * Tally.SESSION_TIMEOUT_MS), "the dropped session expired", () -> {
                try {
                    observer.sync("/");
                    return observer.exists("/j-orphan", false) == null;
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
            long after = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - dropped);
            assertTrue(after >= Tally.SESSION_TIMEOUT_MS - 1_000, "expired after " + after + " ms, before its timeout");
        }
        try (Tally.Zk again = new Tally.Zk(HOSTS.get(1), id, new byte[16])) {
            assertEquals(Watcher.Event.KeeperState.Expired, again.awaitState(10, TimeUnit.SECONDS));
        }
    }

    @Test
    void watchesFireOnceForChangesThroughAnotherMember() throws Exception {
        try (Tally.Zk watcher = Tally.connect(HOSTS.get(0)); Tally.Zk writer = Tally.connect(HOSTS.get(1))) {
            writer.create("/j-watched", bytes("0"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            watcher.sync("/");
            List<String> seen = Collections.synchronizedList(new ArrayList<>());
            Watcher record = event -> seen.add(event.getType() + " " + event.getPath());
            assertEquals("0", string(watcher.getData("/j-watched", record, null)));
            watcher.getChildren("/j-watched", record);
            assertNull(watcher.exists("/j-watched-absent", record));
            writer.setData("/j-watched", bytes("1"), -1);
            writer.setData("/j-watched", bytes("2"), -1);
            writer.create("/j-watched/kid", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            writer.create("/j-watched/kid2", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            writer.create("/j-watched-absent", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            Tally.eventually(Duration.ofSeconds(10), "three watches fired: " + seen, () -> seen.size() >= 3);
            Thread.sleep(300);
            assertEquals(List.of("NodeDataChanged /j-watched", "NodeChildrenChanged /j-watched",
                    "NodeCreated /j-watched-absent"), seen, "each watch fires once, in the order of the changes");
            // The client sees the change before its read can return the new data.
            assertEquals("2", string(watcher.getData("/j-watched", false, null)));
        }
    }

    @Test
    void aNewSessionGetsItsOwnIdOnEveryMember() throws Exception {
        List<Long> ids = new ArrayList<>();
        for (String host : HOSTS) {
            try (Tally.Zk zk = Tally.connect(host)) {
                assertNotEquals(0, zk.getSessionId());
                assertEquals(16, zk.getSessionPasswd().length);
                ids.add(zk.getSessionId());
            }
        }
        assertEquals(3, ids.stream().distinct().count(), "session ids are unique: " + ids);
    }
}
