package tally.zk;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static tally.zk.Tally.HOSTS;
import static tally.zk.Tally.bytes;
import static tally.zk.Tally.eventually;

import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.data.Stat;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;

/**
 * Runs last (it leaves two members): the leader is killed with kill -9 under Curator clients
 * connected to it, which hold a lock, a leader latch and ephemerals. Their sessions must be kept
 * (no LOST, no new session), their ephemerals too, and their writes must resume through another
 * member.
 */
@Order(Integer.MAX_VALUE)
class LeaderKillTest {
    private static final Duration WAIT = Duration.ofSeconds(15);

    @Test
    void sessionsLocksLatchesAndEphemeralsSurviveTheLeaderKilled() throws Exception {
        int leader = Tally.leader();
        String leaderHost = HOSTS.get(leader);
        assertTrue(Tally.fourLetter(leaderHost, "srvr").contains("Mode: leader"), "srvr agrees on the leader");
        List<String> order = new ArrayList<>();
        order.add(leaderHost);
        HOSTS.stream().filter(h -> !h.equals(leaderHost)).forEach(order::add);

        List<CuratorFramework> clients = new ArrayList<>();
        List<List<ConnectionState>> states = new ArrayList<>();
        List<Long> sessions = new ArrayList<>();
        long[] killedAt = {0};
        try {
            for (int i = 0; i < 3; i++) {
                CuratorFramework c = Tally.curatorInOrder(order);
                List<ConnectionState> seen = new CopyOnWriteArrayList<>();
                c.getConnectionStateListenable().addListener((client, state) -> seen.add(state));
                clients.add(c);
                states.add(seen);
                assertEquals(port(leaderHost), connectedPort(c), "client " + i + " is connected to the leader");
                sessions.add(c.getZookeeperClient().getZooKeeper().getSessionId());
                c.create().creatingParentsIfNeeded().withMode(CreateMode.EPHEMERAL).forPath("/j-kill/eph-" + i);
                c.create().forPath("/j-kill/data-" + i, bytes("before"));
            }
            // Client 0 holds a lock that client 2 waits for; client 1's latch leads client 2's.
            InterProcessMutex held = new InterProcessMutex(clients.get(0), "/j-kill/lock");
            assertTrue(held.acquire(WAIT.toSeconds(), TimeUnit.SECONDS));
            InterProcessMutex waiting = new InterProcessMutex(clients.get(2), "/j-kill/lock");
            CompletableFuture<Boolean> waiterGotIt = CompletableFuture.supplyAsync(() -> {
                try {
                    // A mutex belongs to the thread that acquired it: release it here.
                    boolean got = waiting.acquire(60, TimeUnit.SECONDS);
                    if (got) {
                        waiting.release();
                    }
                    return got;
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
            LeaderLatch latch1 = new LeaderLatch(clients.get(1), "/j-kill/latch", "c1");
            latch1.start();
            assertTrue(latch1.await(WAIT.toSeconds(), TimeUnit.SECONDS));
            LeaderLatch latch2 = new LeaderLatch(clients.get(2), "/j-kill/latch", "c2");
            latch2.start();
            eventually(WAIT, "both latches take part", () -> call(() -> latch2.getParticipants().size()) == 2);
            eventually(WAIT, "the waiter's lock node is there",
                    () -> call(() -> clients.get(1).getChildren().forPath("/j-kill/lock")).size() == 2);
            assertFalse(waiterGotIt.isDone());

            // A plain client already on a surviving member measures Tally's own failover,
            // without the Java client's reconnection delay (a random 0-1000 ms before each
            // new connection, in ClientCnxn).
            String survivor = order.get(1);
            Tally.Zk probe = Tally.connect(survivor);
            probe.setData("/j-kill/data-0", bytes("probe"), -1);
            List<Long> reconnectedMs = new CopyOnWriteArrayList<>();
            for (CuratorFramework c : clients) {
                c.getConnectionStateListenable().addListener((client, state) -> {
                    if (state == ConnectionState.RECONNECTED) {
                        reconnectedMs.add(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - killedAt[0]));
                    }
                });
            }

            // kill -9 the leader.
            long pid = Tally.PIDS.get(leader);
            Process kill = new ProcessBuilder("kill", "-9", Long.toString(pid)).inheritIO().start();
            long killed = System.nanoTime();
            killedAt[0] = killed;
            assertEquals(0, kill.waitFor());
            CompletableFuture<Long> probed = CompletableFuture.supplyAsync(() -> {
                long deadline = killed + WAIT.toNanos();
                while (true) {
                    try {
                        probe.setData("/j-kill/data-0", bytes("probe"), -1);
                        return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - killed);
                    } catch (Exception e) {
                        if (System.nanoTime() > deadline) {
                            throw new AssertionError("writes through a surviving member did not resume", e);
                        }
                        sleep(10);
                    }
                }
            });

            // Every client writes again, through another member.
            List<CompletableFuture<Long>> resumed = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                CuratorFramework c = clients.get(i);
                String path = "/j-kill/data-" + i;
                resumed.add(CompletableFuture.supplyAsync(() -> {
                    long deadline = killed + WAIT.toNanos();
                    while (true) {
                        try {
                            c.setData().forPath(path, bytes("after"));
                            return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - killed);
                        } catch (Exception e) {
                            if (System.nanoTime() > deadline) {
                                throw new AssertionError("writes did not resume after the leader was killed", e);
                            }
                            sleep(20);
                        }
                    }
                }));
            }
            List<Long> resumedMs = new ArrayList<>();
            for (CompletableFuture<Long> f : resumed) {
                resumedMs.add(f.get(WAIT.toSeconds() + 5, TimeUnit.SECONDS));
            }
            long probeMs = probed.get(WAIT.toSeconds() + 5, TimeUnit.SECONDS);
            probe.close();
            System.out.printf("LeaderKillTest: after the leader's kill -9, the Curator clients on it wrote again after %s ms"
                    + " (reconnected after %s ms); a client already on a survivor after %d ms; new leader n%d%n",
                    resumedMs, reconnectedMs, probeMs, Tally.leader() + 1);

            checkKept(clients, states, sessions, leaderHost);
            assertTrue(held.isAcquiredInThisProcess(), "the lock is still held");
            assertFalse(waiterGotIt.isDone(), "the waiter did not get the held lock");
            assertTrue(latch1.hasLeadership() && !latch2.hasLeadership(), "the latch's leader did not change");
            assertEquals("c1", latch2.getLeader().getId());

            // Sessions stay alive past their timeout: their pings reach the new leader.
            Thread.sleep(Tally.SESSION_TIMEOUT_MS + 1_000);
            checkKept(clients, states, sessions, leaderHost);

            // The recipes hand over through the watches re-set after the reconnection.
            held.release();
            assertTrue(waiterGotIt.get(WAIT.toSeconds(), TimeUnit.SECONDS), "the waiter got the lock once released");
            latch1.close();
            assertTrue(latch2.await(WAIT.toSeconds(), TimeUnit.SECONDS), "the second latch leads once the first closes");
            latch2.close();
        } finally {
            clients.forEach(CuratorFramework::close);
        }
        String survivor = HOSTS.stream().filter(h -> !h.equals(leaderHost)).findFirst().orElseThrow();
        try (Tally.Zk observer = Tally.connect(survivor)) {
            eventually(WAIT, "the closed sessions' ephemerals are gone", () -> call(() -> {
                observer.sync("/");
                return observer.getChildren("/j-kill", false).stream().noneMatch(n -> n.startsWith("eph-"));
            }));
            assertNull(observer.exists("/j-kill/eph-0", false));
        }
    }

    /** The clients' sessions, ephemerals and connections after the kill. */
    private static void checkKept(List<CuratorFramework> clients, List<List<ConnectionState>> states, List<Long> sessions,
            String deadHost) throws Exception {
        String survivor = HOSTS.stream().filter(h -> !h.equals(deadHost)).findFirst().orElseThrow();
        try (Tally.Zk observer = Tally.connect(survivor)) {
            observer.sync("/");
            for (int i = 0; i < clients.size(); i++) {
                CuratorFramework c = clients.get(i);
                List<ConnectionState> seen = states.get(i);
                eventually(WAIT, "client " + i + " reconnected: " + seen, () -> seen.contains(ConnectionState.RECONNECTED));
                assertFalse(seen.contains(ConnectionState.LOST), "client " + i + " lost its session: " + seen);
                assertEquals(sessions.get(i), c.getZookeeperClient().getZooKeeper().getSessionId(), "client " + i + "'s session");
                assertNotEquals(port(deadHost), connectedPort(c));
                Stat eph = observer.exists("/j-kill/eph-" + i, false);
                assertNotNull(eph, "client " + i + "'s ephemeral went with the leader");
                assertEquals(sessions.get(i), eph.getEphemeralOwner());
            }
        }
    }

    private static int port(String host) {
        return Integer.parseInt(host.substring(host.lastIndexOf(':') + 1));
    }

    private static int connectedPort(CuratorFramework c) throws Exception {
        Tally.ProbedZooKeeper zk = (Tally.ProbedZooKeeper) c.getZookeeperClient().getZooKeeper();
        return ((InetSocketAddress) zk.remote()).getPort();
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new RuntimeException(e);
        }
    }

    interface Call<T> {
        T call() throws Exception;
    }

    private static <T> T call(Call<T> call) {
        try {
            return call.call();
        } catch (RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new RuntimeException(e);
        }
    }
}
