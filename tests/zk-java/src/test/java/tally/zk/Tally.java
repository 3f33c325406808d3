package tally.zk;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.stream.Collectors;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.client.HostProvider;

/** The cluster run.sh started, and clients connected to it. */
final class Tally {
    /** The members' ZooKeeper addresses (host:port), in member order n1, n2, n3. */
    static final List<String> HOSTS = List.of(env("TALLY_ZK_HOSTS").split(","));
    /** The members' etcd client URLs, in the same order. */
    static final List<String> CLIENT_URLS = List.of(env("TALLY_CLIENT_URLS").split(","));
    /** The members' process ids, in the same order. */
    static final List<Long> PIDS =
            Arrays.stream(env("TALLY_PIDS").trim().split("\\s+")).map(Long::parseLong).collect(Collectors.toList());

    static final int SESSION_TIMEOUT_MS = 10_000;
    /** How long a fresh cluster may take to elect its first leader. */
    static final Duration STARTUP = Duration.ofSeconds(30);

    private Tally() {}

    private static String env(String name) {
        String value = System.getenv(name);
        if (value == null || value.isBlank()) {
            throw new IllegalStateException(name + " is not set: run these tests through tests/zk-java/run.sh");
        }
        return value;
    }

    static String all() {
        return String.join(",", HOSTS);
    }

    /**
     * A plain ZooKeeper client connected to {@code hosts}, with a session; retried while the
     * cluster is still electing its first leader.
     */
    static Zk connect(String hosts) throws Exception {
        return connect(hosts, 0, null);
    }

    /** The same, resuming session {@code id} with {@code password} when id is not 0. */
    static Zk connect(String hosts, long id, byte[] password) throws Exception {
        long deadline = System.nanoTime() + STARTUP.toNanos();
        while (true) {
            Zk zk = new Zk(hosts, id, password);
            Watcher.Event.KeeperState state = zk.awaitState(10, TimeUnit.SECONDS);
            if (state == Watcher.Event.KeeperState.SyncConnected) {
                return zk;
            }
            zk.close();
            if (state == Watcher.Event.KeeperState.Expired) {
                throw new IllegalStateException("session 0x" + Long.toHexString(id) + " was refused as expired");
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("no session on " + hosts + " (last state " + state + ")");
            }
            Thread.sleep(200);
        }
    }

    /** A started Curator client connected to {@code hosts} (comma-separated). */
    static CuratorFramework curator(String hosts) throws InterruptedException {
        CuratorFramework client = CuratorFrameworkFactory.builder()
                .connectString(hosts)
                .sessionTimeoutMs(SESSION_TIMEOUT_MS)
                .connectionTimeoutMs(5_000)
                .retryPolicy(new ExponentialBackoffRetry(100, 10, 1_000))
                .build();
        return started(client);
    }

    /**
     * A started Curator client whose ZooKeeper handle tries {@code hosts} in the order given
     * (ZooKeeper's own host provider shuffles them), so it connects to the first while it is up.
     */
    static CuratorFramework curatorInOrder(List<String> hosts) throws InterruptedException {
        CuratorFramework client = CuratorFrameworkFactory.builder()
                .connectString(String.join(",", hosts))
                .sessionTimeoutMs(SESSION_TIMEOUT_MS)
                .connectionTimeoutMs(5_000)
                .retryPolicy(new ExponentialBackoffRetry(100, 10, 1_000))
                .zookeeperFactory((connect, timeout, watcher, canBeReadOnly) ->
                        new ProbedZooKeeper(connect, timeout, watcher, new OrderedHosts(hosts)))
                .build();
        return started(client);
    }

    private static CuratorFramework started(CuratorFramework client) throws InterruptedException {
        client.start();
        if (!client.blockUntilConnected((int) STARTUP.toSeconds(), TimeUnit.SECONDS)) {
            client.close();
            throw new IllegalStateException("Curator did not connect to " + client.getZookeeperClient().getCurrentConnectionString());
        }
        return client;
    }

    /** Polls {@code condition} every 50 ms until it holds; fails with {@code what} after {@code timeout}. */
    static void eventually(Duration timeout, String what, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("not within " + timeout.toMillis() + " ms: " + what);
            }
            Thread.sleep(50);
        }
    }

    /** The index (0-2) of the member that says it leads: etcd's etcd_server_is_leader metric. */
    static int leader() throws Exception {
        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
        long deadline = System.nanoTime() + STARTUP.toNanos();
        while (true) {
            List<Integer> leaders = new ArrayList<>();
            for (int i = 0; i < CLIENT_URLS.size(); i++) {
                HttpRequest req = HttpRequest.newBuilder(URI.create(CLIENT_URLS.get(i) + "/metrics"))
                        .timeout(Duration.ofSeconds(2))
                        .build();
                try {
                    String body = http.send(req, HttpResponse.BodyHandlers.ofString()).body();
                    if (body.lines().anyMatch(l -> l.equals("etcd_server_is_leader 1"))) {
                        leaders.add(i);
                    }
                } catch (IOException e) {
                    // A member that is down leads nothing.
                }
            }
            if (leaders.size() == 1) {
                return leaders.get(0);
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("members claiming leadership: " + leaders);
            }
            Thread.sleep(100);
        }
    }

    /** A four-letter word's answer from member {@code host} (host:port). */
    static String fourLetter(String host, String word) throws IOException {
        String[] hp = host.split(":");
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress(hp[0], Integer.parseInt(hp[1])), 2_000);
            s.setSoTimeout(5_000);
            OutputStream out = s.getOutputStream();
            out.write(word.getBytes(StandardCharsets.US_ASCII));
            out.flush();
            InputStream in = s.getInputStream();
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static String string(byte[] b) {
        return b == null ? null : new String(b, StandardCharsets.UTF_8);
    }

    /**
     * A plain ZooKeeper handle that records its connection states, and can drop its connection
     * without closing its session (as a client that dies does), as ZooKeeper's own tests do.
     */
    static final class Zk extends ZooKeeper {
        private final StateWatcher states;

        Zk(String hosts, long id, byte[] password) throws IOException {
            this(hosts, id, password, new StateWatcher());
        }

        private Zk(String hosts, long id, byte[] password, StateWatcher states) throws IOException {
            super(hosts, SESSION_TIMEOUT_MS, states, id, password == null ? new byte[16] : password);
            this.states = states;
        }

        /** The first state other than Disconnected this handle reaches, or null on time-out. */
        Watcher.Event.KeeperState awaitState(long timeout, TimeUnit unit) throws InterruptedException {
            return states.first.await(timeout, unit) ? states.firstState : null;
        }

        List<Watcher.Event.KeeperState> states() {
            synchronized (states.seen) {
                return new ArrayList<>(states.seen);
            }
        }

        /** Closes the socket and stops the client's threads without closing the session. */
        void drop() {
            cnxn.disconnect();
        }

        SocketAddress remote() {
            return testableRemoteSocketAddress();
        }
    }

    private static final class StateWatcher implements Watcher {
        final CountDownLatch first = new CountDownLatch(1);
        final List<Event.KeeperState> seen = new ArrayList<>();
        volatile Event.KeeperState firstState;

        @Override
        public void process(org.apache.zookeeper.WatchedEvent event) {
            if (event.getType() != Event.EventType.None) {
                return;
            }
            synchronized (seen) {
                seen.add(event.getState());
            }
            if (event.getState() != Event.KeeperState.Disconnected && first.getCount() > 0) {
                firstState = event.getState();
                first.countDown();
            }
        }
    }

    /** A ZooKeeper handle for Curator's factory that tells which member it is connected to. */
    static final class ProbedZooKeeper extends ZooKeeper {
        ProbedZooKeeper(String connect, int timeout, Watcher watcher, HostProvider hosts) throws IOException {
            super(connect, timeout, watcher, false, hosts);
        }

        SocketAddress remote() {
            return testableRemoteSocketAddress();
        }
    }

    /** Tries its members in the order given, round and round, pausing after each full turn. */
    static final class OrderedHosts implements HostProvider {
        private final List<InetSocketAddress> hosts = new ArrayList<>();
        private int next = 0;
        private int triedSinceConnected = 0;

        OrderedHosts(List<String> hosts) {
            for (String h : hosts) {
                String[] hp = h.split(":");
                this.hosts.add(new InetSocketAddress(hp[0], Integer.parseInt(hp[1])));
            }
        }

        @Override
        public synchronized int size() {
            return hosts.size();
        }

        @Override
        public InetSocketAddress next(long spinDelay) {
            boolean pause;
            InetSocketAddress host;
            synchronized (this) {
                pause = triedSinceConnected >= hosts.size();
                if (pause) {
                    triedSinceConnected = 0;
                }
                triedSinceConnected++;
                host = hosts.get(next);
                next = (next + 1) % hosts.size();
            }
            if (pause && spinDelay > 0) {
                try {
                    Thread.sleep(spinDelay);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            return host;
        }

        @Override
        public synchronized void onConnected() {
            triedSinceConnected = 0;
        }

        @Override
        public boolean updateServerList(Collection<InetSocketAddress> servers, InetSocketAddress current) {
            return false;
        }
    }
}
