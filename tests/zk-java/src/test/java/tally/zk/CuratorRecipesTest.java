package tally.zk;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static tally.zk.Tally.HOSTS;
import static tally.zk.Tally.bytes;
import static tally.zk.Tally.eventually;
import static tally.zk.Tally.string;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.atomic.AtomicValue;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicLong;
import org.apache.curator.framework.recipes.barriers.DistributedBarrier;
import org.apache.curator.framework.recipes.barriers.DistributedDoubleBarrier;
import org.apache.curator.framework.recipes.cache.ChildData;
import org.apache.curator.framework.recipes.cache.NodeCache;
import org.apache.curator.framework.recipes.cache.PathChildrenCache;
import org.apache.curator.framework.recipes.cache.TreeCache;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderSelector;
import org.apache.curator.framework.recipes.leader.LeaderSelectorListenerAdapter;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.shared.SharedCount;
import org.apache.curator.framework.recipes.shared.SharedCountListener;
import org.apache.curator.framework.recipes.shared.SharedCountReader;
import org.apache.curator.framework.recipes.shared.VersionedValue;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.RetryNTimes;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.data.Stat;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;

/**
 * Apache Curator's recipes, built on one-shot watches, with one client per member: each recipe's
 * participants talk to three different members, so they meet only through the replicated tree.
 */
@Order(2)
class CuratorRecipesTest {
    private static final Duration WAIT = Duration.ofSeconds(15);
    private static final List<CuratorFramework> clients = new ArrayList<>();
    private static ExecutorService pool;

    @BeforeAll
    static void connect() throws Exception {
        for (String host : HOSTS) {
            clients.add(Tally.curator(host));
        }
        pool = Executors.newCachedThreadPool();
    }

    @AfterAll
    static void close() {
        pool.shutdownNow();
        clients.forEach(CuratorFramework::close);
    }

    private static CuratorFramework client(int i) {
        return clients.get(i % clients.size());
    }

    @Test
    void interProcessMutexLosesNoUpdate() throws Exception {
        final String counter = "/j-mutex/counter";
        final int workers = 6;
        final int rounds = 8;
        client(0).create().creatingParentsIfNeeded().forPath(counter, bytes("0"));
        AtomicInteger inside = new AtomicInteger();
        AtomicInteger mostInside = new AtomicInteger();
        List<Future<?>> done = new ArrayList<>();
        for (int w = 0; w < workers; w++) {
            CuratorFramework c = client(w);
            done.add(pool.submit(() -> {
                InterProcessMutex mutex = new InterProcessMutex(c, "/j-mutex/lock");
                for (int r = 0; r < rounds; r++) {
                    assertTrue(mutex.acquire(WAIT.toSeconds(), TimeUnit.SECONDS), "acquired the lock");
                    try {
                        mostInside.accumulateAndGet(inside.incrementAndGet(), Math::max);
                        // Read, then write without a version: only the lock keeps updates apart.
                        int value = Integer.parseInt(string(c.getData().forPath(counter)));
                        c.setData().forPath(counter, bytes(Integer.toString(value + 1)));
                        inside.decrementAndGet();
                    } finally {
                        mutex.release();
                    }
                }
                return null;
            }));
        }
        for (Future<?> f : done) {
            f.get(60, TimeUnit.SECONDS);
        }
        assertEquals(1, mostInside.get(), "one holder at a time");
        Stat stat = new Stat();
        client(1).sync().forPath(counter);
        assertEquals(Integer.toString(workers * rounds), string(client(1).getData().storingStatIn(stat).forPath(counter)));
        assertEquals(workers * rounds, stat.getVersion());
        assertEquals(List.of(), childrenOfContainer(client(2), "/j-mutex/lock"), "every lock node was removed");
    }

    @Test
    void leaderLatchElectsOneAndHandsOverWhenItCloses() throws Exception {
        List<LeaderLatch> latches = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            LeaderLatch latch = new LeaderLatch(client(i), "/j-latch", "c" + i);
            latch.start();
            latches.add(latch);
        }
        List<LeaderLatch> open = new ArrayList<>(latches);
        Set<String> leaders = new TreeSet<>();
        while (!open.isEmpty()) {
            LeaderLatch leader = onlyLeader(open);
            String id = leader.getId();
            assertTrue(leaders.add(id), "a closed latch leads no more: " + id);
            for (LeaderLatch latch : open) {
                eventually(WAIT, "every participant names " + id + " as leader",
                        () -> quietly(() -> latch.getLeader().getId()).equals(id));
                assertEquals(open.size(), quietly(() -> latch.getParticipants().size()));
            }
            leader.close();
            open.remove(leader);
        }
        assertEquals(Set.of("c0", "c1", "c2"), leaders);
        // A closed latch deletes its node in the background.
        eventually(WAIT, "every latch node was removed",
                () -> quietly(() -> childrenOfContainer(client(0), "/j-latch")).isEmpty());
    }

    /**
     * The children of a recipe's parent node, none if it is gone: recipes create their parents as
     * containers, which the leader deletes soon after they empty (run.sh checks every 10 ms,
     * --zk-container-check-interval's default is a second, ZooKeeper's a minute).
     */
    private static List<String> childrenOfContainer(CuratorFramework c, String path) throws Exception {
        try {
            return c.getChildren().forPath(path);
        } catch (KeeperException.NoNodeException e) {
            return List.of();
        }
    }

    /** Waits until exactly one of {@code latches} leads, and checks it stays alone for a moment. */
    private static LeaderLatch onlyLeader(List<LeaderLatch> latches) throws InterruptedException {
        eventually(WAIT, "one latch leads", () -> latches.stream().filter(LeaderLatch::hasLeadership).count() == 1);
        Thread.sleep(200);
        List<LeaderLatch> leading = latches.stream().filter(LeaderLatch::hasLeadership).toList();
        assertEquals(1, leading.size(), "exactly one leader");
        return leading.get(0);
    }

    @Test
    void leaderSelectorRunsOneLeaderAtATimeAndHandsOverWhenItCloses() throws Exception {
        AtomicInteger leading = new AtomicInteger();
        AtomicInteger mostLeading = new AtomicInteger();
        List<String> terms = new CopyOnWriteArrayList<>();
        List<LeaderSelector> selectors = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            String id = "c" + i;
            LeaderSelector selector = new LeaderSelector(client(i), "/j-selector", new LeaderSelectorListenerAdapter() {
                @Override
                public void takeLeadership(CuratorFramework c) throws Exception {
                    mostLeading.accumulateAndGet(leading.incrementAndGet(), Math::max);
                    terms.add(id);
                    try {
                        Thread.sleep(Long.MAX_VALUE); // Leads until its selector closes.
                    } finally {
                        leading.decrementAndGet();
                    }
                }
            });
            selector.setId(id);
            selector.start();
            selectors.add(selector);
        }
        for (int term = 1; term <= 3; term++) {
            final int expected = term;
            eventually(WAIT, "term " + term + " has a leader", () -> terms.size() == expected);
            Thread.sleep(200);
            assertEquals(expected, terms.size(), "no second leader while one leads");
            String leader = terms.get(term - 1);
            LeaderSelector current = selectors.stream().filter(s -> s.getId().equals(leader)).findFirst().orElseThrow();
            assertTrue(current.hasLeadership());
            for (LeaderSelector s : selectors) {
                eventually(WAIT, "every selector names " + leader, () -> quietly(() -> s.getLeader().getId()).equals(leader));
            }
            current.close();
            selectors.remove(current);
        }
        assertEquals(1, mostLeading.get(), "one leader at a time");
        assertEquals(Set.of("c0", "c1", "c2"), new TreeSet<>(terms));
    }

    @Test
    void doubleBarrierLetsNobodyInBeforeAllArriveNorOutBeforeAllLeave() throws Exception {
        List<DistributedDoubleBarrier> barriers = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            barriers.add(new DistributedDoubleBarrier(client(i), "/j-double-barrier", 3));
        }
        List<CompletableFuture<Boolean>> entered = new ArrayList<>();
        for (int i = 0; i < 2; i++) {
            DistributedDoubleBarrier b = barriers.get(i);
            entered.add(CompletableFuture.supplyAsync(() -> quietly(() -> b.enter(WAIT.toSeconds(), TimeUnit.SECONDS)), pool));
        }
        Thread.sleep(500);
        assertTrue(entered.stream().noneMatch(CompletableFuture::isDone), "two of three did not enter");
        entered.add(CompletableFuture.supplyAsync(() -> quietly(() -> barriers.get(2).enter(WAIT.toSeconds(), TimeUnit.SECONDS)), pool));
        for (CompletableFuture<Boolean> f : entered) {
            assertTrue(f.get(WAIT.toSeconds(), TimeUnit.SECONDS), "entered once all three arrived");
        }

        List<CompletableFuture<Boolean>> left = new ArrayList<>();
        for (int i = 0; i < 2; i++) {
            DistributedDoubleBarrier b = barriers.get(i);
            left.add(CompletableFuture.supplyAsync(() -> quietly(() -> b.leave(WAIT.toSeconds(), TimeUnit.SECONDS)), pool));
        }
        Thread.sleep(500);
        assertTrue(left.stream().noneMatch(CompletableFuture::isDone), "two of three did not leave");
        left.add(CompletableFuture.supplyAsync(() -> quietly(() -> barriers.get(2).leave(WAIT.toSeconds(), TimeUnit.SECONDS)), pool));
        for (CompletableFuture<Boolean> f : left) {
            assertTrue(f.get(WAIT.toSeconds(), TimeUnit.SECONDS), "left once all three left");
        }
    }

    @Test
    void barrierHoldsWaitersUntilRemovedThroughAnotherMember() throws Exception {
        new DistributedBarrier(client(0), "/j-barrier").setBarrier();
        // Reads are local, as in ZooKeeper: the waiter's member must have applied the barrier's
        // creation (made through another member) before the waiter looks for it.
        client(1).sync().forPath("/j-barrier");
        DistributedBarrier waiter = new DistributedBarrier(client(1), "/j-barrier");
        CompletableFuture<Boolean> passed = CompletableFuture.supplyAsync(
                () -> quietly(() -> waiter.waitOnBarrier(WAIT.toSeconds(), TimeUnit.SECONDS)), pool);
        Thread.sleep(500);
        assertFalse(passed.isDone(), "the waiter is held");
        new DistributedBarrier(client(2), "/j-barrier").removeBarrier();
        assertTrue(passed.get(WAIT.toSeconds(), TimeUnit.SECONDS), "the waiter passed once the barrier was removed");
    }

    @Test
    void sharedCountIncrementsFromEveryMemberAddUp() throws Exception {
        List<SharedCount> counts = new ArrayList<>();
        List<Integer> heard = new CopyOnWriteArrayList<>();
        for (int i = 0; i < 3; i++) {
            SharedCount count = new SharedCount(client(i), "/j-shared-count", 0);
            count.start();
            counts.add(count);
        }
        counts.get(0).addListener(new SharedCountListener() {
            @Override
            public void countHasChanged(SharedCountReader reader, int newCount) {
                heard.add(newCount);
            }

            @Override
            public void stateChanged(CuratorFramework c, ConnectionState state) {}
        });
        final int each = 5;
        List<Future<?>> done = new ArrayList<>();
        for (SharedCount count : counts) {
            done.add(pool.submit(() -> {
                for (int n = 0; n < each; n++) {
                    while (true) {
                        VersionedValue<Integer> seen = count.getVersionedValue();
                        if (count.trySetCount(seen, seen.getValue() + 1)) {
                            break;
                        }
                    }
                }
                return null;
            }));
        }
        for (Future<?> f : done) {
            f.get(60, TimeUnit.SECONDS);
        }
        for (SharedCount count : counts) {
            eventually(WAIT, "every member's counter shows 15", () -> count.getCount() == 3 * each);
        }
        eventually(WAIT, "client 0 heard the last change", () -> heard.contains(3 * each));
        for (SharedCount count : counts) {
            count.close();
        }
    }

    @Test
    void distributedAtomicLongLosesNoIncrement() throws Exception {
        final int each = 10;
        List<Future<List<Long>>> done = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            DistributedAtomicLong counter = new DistributedAtomicLong(client(i), "/j-atomic-long", new RetryNTimes(100, 10));
            done.add(pool.submit(() -> {
                List<Long> posts = new ArrayList<>();
                for (int n = 0; n < each; n++) {
                    AtomicValue<Long> v = counter.increment();
                    assertTrue(v.succeeded(), "the increment succeeded");
                    assertEquals(v.preValue() + 1, v.postValue());
                    posts.add(v.postValue());
                }
                return posts;
            }));
        }
        Set<Long> posts = new TreeSet<>();
        for (Future<List<Long>> f : done) {
            posts.addAll(f.get(60, TimeUnit.SECONDS));
        }
        assertEquals(3 * each, posts.size(), "every increment saw its own value: " + posts);
        assertEquals(1L, posts.iterator().next());
        client(0).sync().forPath("/j-atomic-long");
        AtomicValue<Long> total = new DistributedAtomicLong(client(0), "/j-atomic-long", new RetryNTimes(3, 10)).get();
        assertTrue(total.succeeded());
        assertEquals(3L * each, total.postValue());
    }

    @Test
    void nodeCacheFollowsANodeChangedThroughOtherMembers() throws Exception {
        AtomicInteger changes = new AtomicInteger();
        try (NodeCache cache = new NodeCache(client(0), "/j-node-cache")) {
            cache.getListenable().addListener(changes::incrementAndGet);
            cache.start(true);
            assertNull(cache.getCurrentData());
            client(1).create().forPath("/j-node-cache", bytes("a"));
            eventually(WAIT, "the cache saw the node created", () -> "a".equals(dataOf(cache.getCurrentData())));
            client(2).setData().forPath("/j-node-cache", bytes("b"));
            eventually(WAIT, "the cache saw the node changed", () -> "b".equals(dataOf(cache.getCurrentData())));
            assertEquals(1, cache.getCurrentData().getStat().getVersion());
            client(1).delete().forPath("/j-node-cache");
            eventually(WAIT, "the cache saw the node deleted", () -> cache.getCurrentData() == null);
            // The cache sets its data before it calls its listeners: the last call may still be
            // on its way (seen once: 2 heard when the data was already gone).
            eventually(WAIT, "the listener heard each change", () -> changes.get() >= 3);
        }
    }

    @Test
    void pathChildrenCacheFollowsChildrenChangedThroughOtherMembers() throws Exception {
        client(0).create().forPath("/j-children-cache");
        List<String> events = new CopyOnWriteArrayList<>();
        try (PathChildrenCache cache = new PathChildrenCache(client(0), "/j-children-cache", true)) {
            cache.getListenable().addListener((c, e) -> events.add(
                    e.getType() + (e.getData() == null ? "" : " " + e.getData().getPath() + "=" + dataOf(e.getData()))));
            cache.start(PathChildrenCache.StartMode.POST_INITIALIZED_EVENT);
            eventually(WAIT, "initialized", () -> events.contains("INITIALIZED"));
            client(1).create().forPath("/j-children-cache/a", bytes("1"));
            eventually(WAIT, "a added", () -> cache.getCurrentData("/j-children-cache/a") != null);
            client(2).create().forPath("/j-children-cache/b", bytes("2"));
            eventually(WAIT, "b added", () -> cache.getCurrentData("/j-children-cache/b") != null);
            client(1).setData().forPath("/j-children-cache/a", bytes("3"));
            eventually(WAIT, "a updated", () -> "3".equals(dataOf(cache.getCurrentData("/j-children-cache/a"))));
            client(2).delete().forPath("/j-children-cache/b");
            eventually(WAIT, "b removed", () -> events.size() == 5);
            assertEquals(List.of("INITIALIZED", "CHILD_ADDED /j-children-cache/a=1", "CHILD_ADDED /j-children-cache/b=2",
                    "CHILD_UPDATED /j-children-cache/a=3", "CHILD_REMOVED /j-children-cache/b=2"), events);
        }
    }

    @Test
    void treeCacheFollowsASubtreeChangedThroughOtherMembers() throws Exception {
        List<String> events = new CopyOnWriteArrayList<>();
        try (TreeCache cache = TreeCache.newBuilder(client(2), "/j-tree-cache").build()) {
            cache.getListenable().addListener((c, e) -> {
                if (e.getType() != org.apache.curator.framework.recipes.cache.TreeCacheEvent.Type.CONNECTION_RECONNECTED) {
                    events.add(e.getType() + (e.getData() == null ? "" : " " + e.getData().getPath()));
                }
            });
            cache.start();
            eventually(WAIT, "initialized", () -> events.contains("INITIALIZED"));
            client(0).create().creatingParentsIfNeeded().forPath("/j-tree-cache/x/y", bytes("deep"));
            eventually(WAIT, "the deep node cached", () -> "deep".equals(dataOf(cache.getCurrentData("/j-tree-cache/x/y"))));
            client(1).setData().forPath("/j-tree-cache/x/y", bytes("deeper"));
            eventually(WAIT, "the deep node updated", () -> "deeper".equals(dataOf(cache.getCurrentData("/j-tree-cache/x/y"))));
            client(0).delete().deletingChildrenIfNeeded().forPath("/j-tree-cache/x");
            eventually(WAIT, "the subtree removed", () -> events.size() == 7);
            assertEquals(List.of("INITIALIZED", "NODE_ADDED /j-tree-cache", "NODE_ADDED /j-tree-cache/x",
                    "NODE_ADDED /j-tree-cache/x/y", "NODE_UPDATED /j-tree-cache/x/y"), events.subList(0, 5));
            // Both deletions' watches fire together: their events may come in either order.
            assertEquals(Set.of("NODE_REMOVED /j-tree-cache/x/y", "NODE_REMOVED /j-tree-cache/x"),
                    Set.copyOf(events.subList(5, 7)));
        }
    }

    private static String dataOf(ChildData data) {
        return data == null ? null : string(data.getData());
    }

    interface Call<T> {
        T call() throws Exception;
    }

    private static <T> T quietly(Call<T> call) {
        try {
            return call.call();
        } catch (RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new RuntimeException(e);
        }
    }
}
