package tally.zk;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static tally.zk.Tally.HOSTS;
import static tally.zk.Tally.bytes;
import static tally.zk.Tally.eventually;

import java.time.Duration;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs.Ids;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;

/**
 * Behaviours where Tally first answered differently from ZooKeeper (3.8.0, Debian's, as
 * scripts/zk-ref runs it), found by this suite: each passes against ZooKeeper and now Tally.
 */
@Order(4)
class ZooKeeperQuirksTest {
    private static final Duration WAIT = Duration.ofSeconds(5);

    /**
     * ZooKeeper stores a parent's cversion as its count of child creations (which numbers
     * sequential children) but reports cversion * 2 - numChildren (DataNode.copyStat): creations
     * plus deletions.
     */
    @Test
    void cversionCountsChildDeletionsToo() throws Exception {
        try (Tally.Zk zk = Tally.connect(HOSTS.get(0))) {
            zk.create("/j-cversion", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            zk.create("/j-cversion/a", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            zk.create("/j-cversion/b", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            zk.delete("/j-cversion/a", -1);
            assertEquals(3, zk.exists("/j-cversion", false).getCversion(), "two creations and a deletion");
            // The next sequential name still counts creations only.
            assertEquals("/j-cversion/s-0000000002",
                    zk.create("/j-cversion/s-", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_SEQUENTIAL));
            zk.delete("/j-cversion/b", -1);
            zk.delete("/j-cversion/s-0000000002", -1);
            zk.delete("/j-cversion", -1);
        }
    }

    /**
     * A session attached by a second handle while the first is still connected. ZooKeeper keeps
     * one connection per session: reattaching on the same server closes the old connection
     * (ZooKeeperServer.processConnectRequest, CLIENT_RECONNECT). Tally keeps both.
     */
    @Test
    void reattachingOnTheSameMemberClosesTheOldConnection() throws Exception {
        Tally.Zk first = Tally.connect(HOSTS.get(0));
        try (Tally.Zk second = Tally.connect(HOSTS.get(0), first.getSessionId(), first.getSessionPasswd())) {
            eventually(WAIT, "the first handle was disconnected: " + first.states(),
                    () -> first.states().contains(Watcher.Event.KeeperState.Disconnected));
        } finally {
            first.drop(); // Not close(): that would end the session the second handle holds.
        }
    }

    /**
     * On another server, the old connection's next request fails with SessionMoved, which closes
     * it, so the old handle sees ConnectionLoss (ZooKeeper's SessionTest.testSessionMove). Tally
     * answers the old connection's write as if the session had not moved.
     */
    @Test
    void theOldConnectionOfAMovedSessionIsRefused() throws Exception {
        Tally.Zk first = Tally.connect(HOSTS.get(0));
        try {
            first.create("/j-session-moved", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            try (Tally.Zk second = Tally.connect(HOSTS.get(1), first.getSessionId(), first.getSessionPasswd())) {
                assertEquals(first.getSessionId(), second.getSessionId());
                second.sync("/");
                second.setData("/j-session-moved", bytes("second"), -1);
                assertThrows(KeeperException.ConnectionLossException.class,
                        () -> first.setData("/j-session-moved", bytes("first"), -1),
                        "the old connection's write is refused (SessionMoved) and the connection closed");
                first.drop();
                second.setData("/j-session-moved", bytes("second again"), -1);
                assertTrue(second.getState().isConnected());
                second.delete("/j-session-moved", -1);
            }
        } finally {
            first.drop();
        }
    }
}
