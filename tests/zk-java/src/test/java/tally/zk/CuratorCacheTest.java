package tally.zk;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;
import static tally.zk.Tally.HOSTS;
import static tally.zk.Tally.bytes;
import static tally.zk.Tally.eventually;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.ZooDefs.Ids;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;

/**
 * Persistent recursive watches (addWatch, ZooKeeper 3.6+) and Curator's CuratorCache, which is
 * built on them.
 */
@Order(3)
class CuratorCacheTest {
    private static final Duration WAIT = Duration.ofSeconds(15);

    @Test
    void persistentRecursiveWatchFiresForEveryChangeBelowIt() throws Exception {
        try (Tally.Zk watcher = Tally.connect(HOSTS.get(0)); Tally.Zk writer = Tally.connect(HOSTS.get(1))) {
            List<String> seen = new CopyOnWriteArrayList<>();
            try {
                watcher.addWatch("/j-persistent", e -> seen.add(e.getType() + " " + e.getPath()),
                        AddWatchMode.PERSISTENT_RECURSIVE);
            } catch (KeeperException.UnimplementedException e) {
                fail("Tally answered addWatch (op 106, PERSISTENT_RECURSIVE) with Unimplemented", e);
            }
            writer.create("/j-persistent", bytes("0"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            writer.setData("/j-persistent", bytes("1"), -1);
            writer.create("/j-persistent/a", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            writer.create("/j-persistent/a/b", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            writer.setData("/j-persistent/a/b", bytes("2"), -1);
            writer.delete("/j-persistent/a/b", -1);
            eventually(WAIT, "six events: " + seen, () -> seen.size() >= 6);
            Thread.sleep(300);
            // A recursive watch reports no child events: creations and deletions say it all.
            assertEquals(List.of("NodeCreated /j-persistent", "NodeDataChanged /j-persistent",
                    "NodeCreated /j-persistent/a", "NodeCreated /j-persistent/a/b",
                    "NodeDataChanged /j-persistent/a/b", "NodeDeleted /j-persistent/a/b"), seen);
        }
    }

    @Test
    void curatorCacheFollowsASubtreeChangedThroughOtherMembers() throws Exception {
        CuratorFramework reader = Tally.curator(HOSTS.get(0));
        CuratorFramework writer = Tally.curator(HOSTS.get(2));
        List<String> events = new CopyOnWriteArrayList<>();
        try (CuratorCache cache = CuratorCache.build(reader, "/j-curator-cache")) {
            cache.listenable().addListener(CuratorCacheListener.builder()
                    .forCreates(n -> events.add("create " + n.getPath()))
                    .forChanges((before, after) -> events.add("change " + after.getPath() + " " + Tally.string(after.getData())))
                    .forDeletes(n -> events.add("delete " + n.getPath()))
                    .forInitialized(() -> events.add("initialized"))
                    .build());
            cache.start();
            eventually(WAIT, "initialized", () -> events.contains("initialized"));
            writer.create().forPath("/j-curator-cache", bytes("root"));
            writer.create().forPath("/j-curator-cache/a", bytes("1"));
            eventually(WAIT, "a cached", () -> cache.get("/j-curator-cache/a").isPresent());
            writer.create().forPath("/j-curator-cache/a/b", bytes("2"));
            writer.setData().forPath("/j-curator-cache/a", bytes("3"));
            eventually(WAIT, "a changed", () -> events.contains("change /j-curator-cache/a 3"));
            writer.delete().forPath("/j-curator-cache/a/b");
            eventually(WAIT, "b deleted", () -> events.contains("delete /j-curator-cache/a/b"));
            assertEquals(List.of("/j-curator-cache", "/j-curator-cache/a"),
                    new ArrayList<>(cache.stream().map(n -> n.getPath()).sorted().toList()));
            assertEquals(List.of("initialized", "create /j-curator-cache", "create /j-curator-cache/a",
                    "create /j-curator-cache/a/b", "change /j-curator-cache/a 3", "delete /j-curator-cache/a/b"), events);
        } finally {
            reader.close();
            writer.close();
        }
    }
}
