//! Watch, Lease, Lock and Election end to end, against real 3-member clusters: first as a
//! person types them with etcdctl (Debian's etcd-client 3.4), then through the generated gRPC
//! clients, including a kill -9 of the leader under watches and under kept-alive leases.
//!
//! Each test starts its own 3-member cluster.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::etcdctl::{etcdctl_bin, Etcdctl};
use support::{channel, eventually, Cluster, WatchStream};
use tally_proto::etcdserverpb::kv_client::KvClient;
use tally_proto::etcdserverpb::lease_client::LeaseClient;
use tally_proto::etcdserverpb::watch_create_request::FilterType;
use tally_proto::etcdserverpb::watch_request::RequestUnion;
use tally_proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest,
    LeaseTimeToLiveRequest, PutRequest, RangeRequest, WatchCreateRequest, WatchRequest, WatchResponse,
};
use tally_proto::mvccpb::event::EventType;
use tally_proto::mvccpb::KeyValue;
use tally_proto::v3electionpb::election_client::ElectionClient;
use tally_proto::v3electionpb::{CampaignRequest, LeaderKey, LeaderRequest, ProclaimRequest, ResignRequest};
use tally_proto::v3lockpb::lock_client::LockClient;
use tally_proto::v3lockpb::{LockRequest, UnlockRequest};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

// ---------------------------------------------------------------------------------------------
// etcdctl

/// The etcdctl queries these tests repeat.
trait EtcdctlExt {
    fn revision(&self) -> i64;
    fn put_rev(&self, key: &str, value: &str) -> i64;
    fn spawn(&self, args: &[&str]) -> Running;
}

impl EtcdctlExt for Etcdctl {
    /// The store's revision now (`get -w json` of any key).
    fn revision(&self) -> i64 {
        let j = self.json(&["get", "revision-probe", "-w", "json"]);
        j["header"]["revision"].as_i64().unwrap_or_else(|| panic!("no header.revision: {j}"))
    }

    /// `put -w json`: the revision of the write.
    fn put_rev(&self, key: &str, value: &str) -> i64 {
        let j = self.json(&["put", key, value, "-w", "json"]);
        j["header"]["revision"].as_i64().unwrap_or_else(|| panic!("no header.revision: {j}"))
    }

    /// Starts a long-running etcdctl (watch, elect) whose stdout is collected as it comes.
    fn spawn(&self, args: &[&str]) -> Running {
        let mut child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| Etcdctl::spawn_err(e));
        let collect = |pipe: Box<dyn std::io::Read + Send>| {
            let text = Arc::new(Mutex::new(String::new()));
            let sink = text.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(pipe);
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 {
                    sink.lock().unwrap().push_str(&line);
                    line.clear();
                }
            });
            text
        };
        let stdout = collect(Box::new(child.stdout.take().expect("stdout")));
        let stderr = collect(Box::new(child.stderr.take().expect("stderr")));
        Running { child, stdout, stderr, what: format!("etcdctl {}", args.join(" ")) }
    }
}

/// A running etcdctl, killed when dropped.
struct Running {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    what: String,
}

impl Running {
    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stdout satisfies `done`, or panics with what was printed.
    fn wait_stdout(&mut self, timeout: Duration, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let out = self.stdout();
            if done(&out) {
                return out;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Give the reader thread a moment to pick up the last lines.
                std::thread::sleep(Duration::from_millis(100));
                let out = self.stdout();
                if done(&out) {
                    return out;
                }
                panic!("{} exited ({status}) before {what}:\nstdout: {out}\nstderr: {}", self.what, self.stderr());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{}: timed out after {timeout:?} waiting for {what}:\nstdout: {out:?}\nstderr: {}",
                self.what,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stdout once it has at least `expected.len()` bytes and then stayed the same for a
    /// moment (so extra or duplicated events would show).
    fn settled_stdout(&mut self, expected: &str, timeout: Duration) -> String {
        self.wait_stdout(timeout, &format!("output {expected:?}"), |out| out.len() >= expected.len());
        std::thread::sleep(Duration::from_millis(500));
        self.stdout()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill {signal} {} failed", self.child.id());
    }

    fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "{} did not exit within {timeout:?}", self.what);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until an `etcdctl watch` (without --rev) is live: puts `sync_key` with 0, 1, ...
/// until its event shows, then returns how many bytes of stdout those sync events took.
fn sync_watch(writer: &Etcdctl, watch: &mut Running, sync_key: &str) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    for i in 0.. {
        writer.ok(&["put", sync_key, &i.to_string()]);
        let seen = std::time::Instant::now() + Duration::from_millis(500);
        while std::time::Instant::now() < seen {
            let out = watch.stdout();
            if out.contains(&format!("PUT\n{sync_key}\n{i}\n")) {
                // Only sync events so far, and a contiguous run of them ending at i.
                let mut rest = out.as_str();
                let mut values = Vec::new();
                while let Some(r) = rest.strip_prefix(&format!("PUT\n{sync_key}\n")) {
                    let (v, r) = r.split_once('\n').expect("complete line");
                    values.push(v.parse::<i64>().expect("sync value"));
                    rest = r;
                }
                assert_eq!(rest, "", "unexpected watch output while syncing: {out:?}");
                let first = values[0];
                assert_eq!(values, (first..=i).collect::<Vec<_>>(), "sync events not contiguous: {out:?}");
                return out.len();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(std::time::Instant::now() < deadline, "{} never showed a sync event: {:?}", watch.what, watch.stderr());
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_watch_prefix_rev_and_prev_kv() {
    let cluster = Cluster::start(3).await;
    let on = |i: usize| Etcdctl::new(cluster.members[i].endpoint());
    let (w, a, b) = (on(0), on(1), on(2));

    let mut watch = w.spawn(&["watch", "--prefix", "p"]);
    let skip = sync_watch(&a, &mut watch, "p/0sync");

    // Writes through the two other members, alternating.
    let r1 = a.put_rev("p/a", "1");
    let r2 = b.put_rev("p/b", "2");
    assert_eq!(a.ok(&["put", "q/x", "outside"]), "OK\n");
    let r3 = b.put_rev("p/a", "3");
    assert_eq!(a.ok(&["del", "p/b"]), "1\n");
    assert_eq!(b.ok(&["del", "p/nothing"]), "0\n", "deleting nothing makes no event");
    let r5 = b.put_rev("p/c", "x y");
    assert_eq!((r2, r3, r5), (r1 + 1, r1 + 3, r1 + 5), "one revision per write");

    let expected = "PUT\np/a\n1\nPUT\np/b\n2\nPUT\np/a\n3\nDELETE\np/b\n\nPUT\np/c\nx y\n";
    let out = watch.settled_stdout(&" ".repeat(skip + expected.len()), Duration::from_secs(10));
    assert_eq!(&out[skip..], expected, "watch --prefix p output (after the sync events)");
    drop(watch);

    // --rev replays history from that revision (and then goes on live).
    let mut replay = a.spawn(&["watch", "--prefix", "p", &format!("--rev={r2}")]);
    let expected = "PUT\np/b\n2\nPUT\np/a\n3\nDELETE\np/b\n\nPUT\np/c\nx y\n";
    assert_eq!(replay.settled_stdout(expected, Duration::from_secs(10)), expected, "watch --rev={r2}");
    assert_eq!(b.ok(&["put", "p/d", "live"]), "OK\n");
    let expected = format!("{expected}PUT\np/d\nlive\n");
    assert_eq!(replay.settled_stdout(&expected, Duration::from_secs(10)), expected, "watch --rev, then live");
    drop(replay);

    // --prev-kv: a PUT over an existing key and a DELETE print the previous key-value first.
    let mut prev = b.spawn(&["watch", "--prefix", "p/", &format!("--rev={r1}"), "--prev-kv"]);
    let expected = "PUT\np/a\n1\n\
                    PUT\np/b\n2\n\
                    PUT\np/a\n1\np/a\n3\n\
                    DELETE\np/b\n2\np/b\n\n\
                    PUT\np/c\nx y\n\
                    PUT\np/d\nlive\n";
    assert_eq!(prev.settled_stdout(expected, Duration::from_secs(10)), expected, "watch --prev-kv --rev={r1}");

    // A single key (no --prefix) sees only that key.
    let mut single = w.spawn(&["watch", "p/a", &format!("--rev={r1}")]);
    let expected = "PUT\np/a\n1\nPUT\np/a\n3\n";
    assert_eq!(single.settled_stdout(expected, Duration::from_secs(10)), expected, "watch p/a --rev={r1}");
}

/// The hex lease id in "lease 694d71ddacfa3f0a granted with TTL(30s)".
fn granted_lease(out: &str, ttl: i64) -> String {
    let id = out
        .strip_prefix("lease ")
        .and_then(|r| r.strip_suffix(&format!(" granted with TTL({ttl}s)\n")))
        .unwrap_or_else(|| panic!("unexpected lease grant output: {out:?}"));
    assert_eq!(id.len(), 16, "lease id is printed as 16 hex digits: {out:?}");
    assert!(i64::from_str_radix(id, 16).is_ok_and(|v| v > 0), "lease id is not hex: {out:?}");
    id.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_lease_grant_attach_keepalive_list_revoke_expire() {
    let cluster = Cluster::start(3).await;
    let ctl = Etcdctl::new(cluster.etcdctl_endpoints());
    let follower_ctl = Etcdctl::new(cluster.members[1].endpoint());

    let id = granted_lease(&ctl.ok(&["lease", "grant", "30"]), 30);
    assert_eq!(ctl.ok(&["put", &format!("--lease={id}"), "leased", "v"]), "OK\n");
    assert_eq!(ctl.ok(&["put", &format!("--lease={id}"), "leased2", "w"]), "OK\n");
    assert_eq!(ctl.ok(&["get", "leased"]), "leased\nv\n");

    let ttl = follower_ctl.ok(&["lease", "timetolive", &id, "--keys"]);
    let prefix = format!("lease {id} granted with TTL(30s), remaining(");
    let rest = ttl.strip_prefix(&prefix).unwrap_or_else(|| panic!("timetolive output: {ttl:?}"));
    let (remaining, rest) = rest.split_once("s)").unwrap_or_else(|| panic!("timetolive output: {ttl:?}"));
    let remaining: i64 = remaining.parse().unwrap_or_else(|_| panic!("remaining is not a number: {ttl:?}"));
    assert!((25..=30).contains(&remaining), "remaining TTL {remaining} just after the grant: {ttl:?}");
    assert_eq!(rest, ", attached keys([leased leased2])\n", "timetolive --keys output: {ttl:?}");

    assert_eq!(
        follower_ctl.ok(&["lease", "keep-alive", "--once", &id]),
        format!("lease {id} keepalived with TTL(30)\n")
    );
    assert_eq!(ctl.ok(&["lease", "list"]), format!("found 1 leases\n{id}\n"));

    assert_eq!(follower_ctl.ok(&["lease", "revoke", &id]), format!("lease {id} revoked\n"));
    assert_eq!(ctl.ok(&["get", "leased", "--prefix"]), "", "revoke deletes the attached keys");
    assert_eq!(ctl.ok(&["lease", "list"]), "found 0 leases\n");
    assert_eq!(ctl.ok(&["lease", "timetolive", &id]), format!("lease {id} already expired\n"));

    // A put with a lease nobody granted fails and changes nothing.
    let before = ctl.revision();
    let out = ctl.run(&["put", "--lease=1234abcd", "orphan", "v"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "put with an unknown lease succeeded: {}", String::from_utf8_lossy(&out.stdout));
    assert!(stderr.contains("etcdserver: requested lease not found"), "unexpected error: {stderr}");
    assert_eq!(ctl.ok(&["get", "orphan"]), "");
    assert_eq!(ctl.revision(), before, "a failed put made a revision");

    // A 2 s lease nobody keeps alive expires, and its key goes with it.
    let short = granted_lease(&ctl.ok(&["lease", "grant", "2"]), 2);
    let attached = std::time::Instant::now();
    assert_eq!(ctl.ok(&["put", &format!("--lease={short}"), "ephemeral", "v"]), "OK\n");
    assert_eq!(ctl.ok(&["get", "ephemeral"]), "ephemeral\nv\n");
    let deadline = attached + Duration::from_secs(15);
    while !ctl.ok(&["get", "ephemeral"]).is_empty() {
        assert!(std::time::Instant::now() < deadline, "a 2 s lease's key still exists after 15 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let gone = attached.elapsed();
    assert!(gone >= Duration::from_millis(1500), "a 2 s lease expired after only {gone:?}");
    eprintln!("2 s lease expired after {gone:?}");
    assert_eq!(ctl.ok(&["lease", "timetolive", &short]), format!("lease {short} already expired\n"));
    assert_eq!(ctl.ok(&["lease", "list"]), "found 0 leases\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_lock_mutual_exclusion_and_elect() {
    let cluster = Cluster::start(3).await;
    let log = cluster.dir().join("critical-sections.log");

    // Two lockers through different members, three critical sections each, at the same time.
    let lockers: Vec<_> = (0..2)
        .map(|who| {
            let ctl = Etcdctl::new(cluster.members[who + 1].endpoint());
            let log = log.clone();
            std::thread::spawn(move || {
                for round in 0..3 {
                    let me = format!("{who}.{round}");
                    let script = r#"echo "start $0 $(date +%s%N) ${ETCD_LOCK_REV:-none}" >> "$1"; sleep 0.3; echo "end $0 $(date +%s%N)" >> "$1""#;
                    let log = log.to_str().expect("utf-8 path");
                    ctl.ok(&["lock", "L", "--", "sh", "-c", script, &me, log]);
                }
            })
        })
        .collect();
    for l in lockers {
        l.join().expect("locker thread");
    }
    let text = std::fs::read_to_string(&log).expect("critical section log");
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(lines.len(), 12, "six critical sections, two lines each:\n{text}");
    let mut last_end = 0u128;
    let mut seen = Vec::new();
    let mut revs = Vec::new();
    for pair in lines.chunks(2) {
        let (start, end) = (&pair[0], &pair[1]);
        assert!(start[0] == "start" && end[0] == "end" && start[1] == end[1], "critical sections interleave:\n{text}");
        let t0: u128 = start[2].parse().expect("start time");
        let t1: u128 = end[2].parse().expect("end time");
        assert!(last_end <= t0 && t0 <= t1, "critical sections overlap in time:\n{text}");
        last_end = t1;
        seen.push(start[1].to_string());
        if let Ok(rev) = start[3].parse::<i64>() {
            revs.push(rev);
        }
    }
    seen.sort();
    assert_eq!(seen, ["0.0", "0.1", "0.2", "1.0", "1.1", "1.2"], "every critical section ran once:\n{text}");
    // etcdctl passes the lock's revision to the command when it knows it: it only grows.
    assert!(revs.windows(2).all(|w| w[0] < w[1]), "ETCD_LOCK_REV did not increase:\n{text}");

    // elect: alice leads; `elect -l` prints the leader's key and value; bob waits; alice
    // resigns on SIGINT and bob leads.
    let on = |i: usize| Etcdctl::new(cluster.members[i].endpoint());
    let mut alice = on(0).spawn(&["elect", "E", "alice"]);
    let out = alice.wait_stdout(Duration::from_secs(10), "alice elected", |o| o.lines().count() >= 2);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "elect output: {out:?}");
    let alice_key = lines[0].to_string();
    assert!(alice_key.starts_with("E/") && alice_key.len() > 2, "leader key: {out:?}");
    assert_eq!(lines[1], "alice");

    let mut observer = on(1).spawn(&["elect", "-l", "E"]);
    let expected = format!("{alice_key}\nalice\n");
    assert_eq!(observer.settled_stdout(&expected, Duration::from_secs(10)), expected, "elect -l E");

    let mut bob = on(2).spawn(&["elect", "E", "bob"]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(bob.stdout(), "", "bob was elected while alice leads");

    alice.signal("-INT");
    let status = alice.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "alice's elect exited with {status}: {}", alice.stderr());
    let out = bob.wait_stdout(Duration::from_secs(10), "bob elected", |o| o.lines().count() >= 2);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "bob's elect output: {out:?}");
    let bob_key = lines[0].to_string();
    assert!(bob_key.starts_with("E/") && bob_key != alice_key, "bob's key: {out:?}");
    assert_eq!(lines[1], "bob");
    let expected = format!("{alice_key}\nalice\n{bob_key}\nbob\n");
    assert_eq!(observer.settled_stdout(&expected, Duration::from_secs(10)), expected, "elect -l E after the resign");
}

// ---------------------------------------------------------------------------------------------
// gRPC helpers

/// One watch event as (revision, put?, key, value).
type Ev = (i64, bool, String, String);

fn ev(e: &tally_proto::mvccpb::Event) -> Ev {
    let kv = e.kv.as_ref().expect("event kv");
    (
        kv.mod_revision,
        e.r#type == EventType::Put as i32,
        String::from_utf8_lossy(&kv.key).into_owned(),
        String::from_utf8_lossy(&kv.value).into_owned(),
    )
}

fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn watch_prefix(prefix: &str, watch_id: i64, start_revision: i64) -> WatchCreateRequest {
    WatchCreateRequest {
        key: prefix.as_bytes().to_vec(),
        range_end: prefix_end(prefix.as_bytes()),
        watch_id,
        start_revision,
        ..Default::default()
    }
}

/// Collects responses into events per watch id until `done` says so (checked after every
/// response) or `timeout`, then keeps listening `quiet` longer for anything unexpected.
async fn collect(
    stream: &mut WatchStream,
    events: &mut BTreeMap<i64, Vec<Ev>>,
    timeout: Duration,
    quiet: Duration,
    done: impl Fn(&BTreeMap<i64, Vec<Ev>>) -> bool,
) {
    let deadline = Instant::now() + timeout;
    let mut header_revs: BTreeMap<i64, i64> = BTreeMap::new();
    let mut absorb = |r: WatchResponse, events: &mut BTreeMap<i64, Vec<Ev>>| {
        assert!(!r.created && !r.canceled, "unexpected response while collecting events: {r:?}");
        let rev = r.header.as_ref().expect("header").revision;
        let last = header_revs.entry(r.watch_id).or_default();
        assert!(rev >= *last, "watch {} header revision went back from {last} to {rev}", r.watch_id);
        *last = rev;
        for e in &r.events {
            let e = ev(e);
            assert!(e.0 <= rev, "event at revision {} in a response with header revision {rev}", e.0);
            events.entry(r.watch_id).or_default().push(e);
        }
    };
    while !done(events) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(r) = stream.next(left).await else {
            panic!("timed out after {timeout:?} collecting watch events; so far: {events:?}");
        };
        absorb(r, events);
    }
    let until = Instant::now() + quiet;
    while let Some(r) = stream.next(until.saturating_duration_since(Instant::now())).await {
        absorb(r, events);
    }
}

async fn current_revision(kv: &mut KvClient<Channel>) -> i64 {
    let resp = kv.range(RangeRequest { key: b"revision-probe".to_vec(), ..Default::default() }).await.expect("range");
    resp.into_inner().header.expect("header").revision
}

async fn get(kv: &mut KvClient<Channel>, key: &[u8]) -> Option<KeyValue> {
    let resp = kv.range(RangeRequest { key: key.to_vec(), ..Default::default() }).await.expect("range");
    resp.into_inner().kvs.into_iter().next()
}

/// `events` must be exactly `expected`, in order.
fn assert_events(what: &str, events: &[Ev], expected: &[Ev]) {
    if events == expected {
        return;
    }
    let dups = events.windows(2).filter(|w| w[0].0 >= w[1].0).count();
    let missing: Vec<&Ev> = expected.iter().filter(|e| !events.contains(e)).take(10).collect();
    let extra: Vec<&Ev> = events.iter().filter(|e| !expected.contains(e)).take(10).collect();
    panic!(
        "{what}: {} events, expected {}; out of order or duplicated: {dups}; missing (first 10): {missing:?}; \
         unexpected (first 10): {extra:?}",
        events.len(),
        expected.len()
    );
}

// ---------------------------------------------------------------------------------------------
// Watch

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_order_replay_compaction_cancel_filters() {
    let cluster = Cluster::start(3).await;
    let mut kv0 = cluster.kv(0);
    let mut s = WatchStream::open(&cluster.members[0].client_url()).await.expect("open watch stream");

    // Three watches on one stream, with ids the client chose, one without and two with a filter.
    let rev0 = current_revision(&mut kv0).await;
    s.create(watch_prefix("w/", 100, 0)).await;
    assert_eq!(s.expect_created(100).await, rev0, "created response: header revision is the current one");
    s.create(WatchCreateRequest { filters: vec![FilterType::Noput as i32], ..watch_prefix("w/", 200, 0) }).await;
    assert_eq!(s.expect_created(200).await, rev0);
    s.create(WatchCreateRequest { filters: vec![FilterType::Nodelete as i32], ..watch_prefix("w/", 300, 0) }).await;
    assert_eq!(s.expect_created(300).await, rev0);
    // A taken id is refused (etcd 3.5), and the stream goes on.
    s.create(watch_prefix("w/", 100, 0)).await;
    let r = s.expect("duplicate id").await;
    assert!(r.watch_id == 100 && r.created && r.canceled, "a duplicate watch id was not refused: {r:?}");

    // Four writers through the three members at once: puts, and every fifth op a delete.
    const WRITERS: usize = 4;
    const OPS: usize = 80;
    let mut tasks = Vec::new();
    for j in 0..WRITERS {
        let mut kv = cluster.kv(j % 3);
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..OPS {
                if i % 5 == 4 {
                    let key = format!("w/{j}/{}", (i - 1) % 10);
                    let req = DeleteRangeRequest { key: key.clone().into(), ..Default::default() };
                    let resp = kv.delete_range(req).await.expect("delete").into_inner();
                    assert_eq!(resp.deleted, 1, "delete of {key}");
                    acked.push((resp.header.expect("header").revision, false, key, String::new()));
                } else {
                    let (key, value) = (format!("w/{j}/{}", i % 10), format!("v{j}-{i}"));
                    let req = PutRequest { key: key.clone().into(), value: value.clone().into(), ..Default::default() };
                    let resp = kv.put(req).await.expect("put").into_inner();
                    acked.push((resp.header.expect("header").revision, true, key, value));
                }
            }
            acked
        }));
    }
    let mut acked: Vec<Ev> = Vec::new();
    for t in tasks {
        acked.extend(t.await.expect("writer"));
    }
    acked.sort();
    let last = acked.last().expect("writes").0;
    assert_eq!(acked.len(), WRITERS * OPS);
    assert_eq!(
        acked.iter().map(|e| e.0).collect::<Vec<_>>(),
        (rev0 + 1..=last).collect::<Vec<_>>(),
        "every acknowledged write has its own revision"
    );

    let mut got = BTreeMap::new();
    collect(&mut s, &mut got, Duration::from_secs(20), Duration::from_millis(500), |g| {
        g.get(&100).and_then(|e| e.last()).is_some_and(|e| e.0 >= last)
    })
    .await;
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), [100, 200, 300], "events for unknown watch ids");
    assert_events("watch 100 (all events, in revision order)", &got[&100], &acked);
    let deletes: Vec<Ev> = acked.iter().filter(|e| !e.1).cloned().collect();
    let puts: Vec<Ev> = acked.iter().filter(|e| e.1).cloned().collect();
    assert_events("watch 200 (NOPUT)", &got[&200], &deletes);
    assert_events("watch 300 (NODELETE)", &got[&300], &puts);

    // A new stream on another member, from a revision in the past: exactly the missing events.
    let from = acked[150].0;
    let mut replay = WatchStream::open(&cluster.members[2].client_url()).await.expect("open watch stream");
    replay.create(WatchCreateRequest { prev_kv: true, ..watch_prefix("w/", 0, from) }).await;
    let created = replay.expect_created(0).await;
    assert!(created >= rev0, "created header revision {created}");
    let mut got = BTreeMap::new();
    collect(&mut replay, &mut got, Duration::from_secs(20), Duration::from_millis(500), |g| {
        g.get(&0).and_then(|e| e.last()).is_some_and(|e| e.0 >= last)
    })
    .await;
    assert_events(&format!("replay from revision {from}"), &got[&0], &acked[150..]);

    // prev_kv, replayed from history: each event carries the key's previous value (none after
    // a delete or for a new key). One writer's keys, from the first revision.
    let mine: Vec<&Ev> = acked.iter().filter(|e| e.2.starts_with("w/0/")).collect();
    let mut expected = Vec::new();
    let mut state: BTreeMap<&str, &str> = BTreeMap::new();
    for e in &mine {
        let prev = state.get(e.2.as_str()).map(|v| v.to_string());
        expected.push((e.0, e.1, e.2.clone(), e.3.clone(), prev));
        if e.1 {
            state.insert(&e.2, &e.3);
        } else {
            state.remove(e.2.as_str());
        }
    }
    let mut p = WatchStream::open(&cluster.members[1].client_url()).await.expect("open watch stream");
    p.create(WatchCreateRequest { prev_kv: true, ..watch_prefix("w/0/", 5, rev0 + 1) }).await;
    p.expect_created(5).await;
    let mut seen = Vec::new();
    while seen.len() < expected.len() {
        let r = p.expect("prev_kv events").await;
        for e in &r.events {
            let (rev, put, key, value) = ev(e);
            let prev = e.prev_kv.as_ref().map(|kv| {
                assert_eq!(kv.key, key.as_bytes(), "prev_kv of another key");
                String::from_utf8_lossy(&kv.value).into_owned()
            });
            seen.push((rev, put, key, value, prev));
        }
    }
    assert_eq!(seen, expected, "events with prev_kv replayed from revision {}", rev0 + 1);

    // Cancel: a canceled response, then nothing more for that id while the others go on.
    s.cancel(300).await;
    let r = s.expect("cancel of 300").await;
    assert!(r.canceled && r.watch_id == 300 && r.events.is_empty(), "not a canceled response: {r:?}");
    let put = PutRequest { key: b"w/after-cancel".to_vec(), value: b"x".to_vec(), ..Default::default() };
    let rev = kv0.put(put).await.expect("put").into_inner().header.expect("header").revision;
    let mut got = BTreeMap::new();
    collect(&mut s, &mut got, Duration::from_secs(10), Duration::from_millis(500), |g| g.contains_key(&100)).await;
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), [100], "only watch 100 sees the put: {got:?}");
    assert_eq!(got[&100], [(rev, true, "w/after-cancel".to_string(), "x".to_string())]);

    // Compaction: below the compacted revision a watch is canceled with compact_revision; at
    // it (etcd: `start_revision < compact_revision` is what fails) history still replays.
    let compact_at = puts[200].0;
    let mut kv1 = cluster.kv(1);
    kv1.compact(CompactionRequest { revision: compact_at, physical: true }).await.expect("compact");
    for (i, member) in [1, 2].into_iter().enumerate() {
        let mut c = WatchStream::open(&cluster.members[member].client_url()).await.expect("open watch stream");
        let id = 10 + i as i64;
        // Wait until this member has applied the compaction (a local read below it fails).
        let kv = cluster.kv(member);
        eventually(Duration::from_secs(10), "the compaction applied", || {
            let mut kv = kv.clone();
            async move {
                let req = RangeRequest {
                    key: b"w/".to_vec(),
                    revision: compact_at - 1,
                    serializable: true,
                    ..Default::default()
                };
                kv.range(req).await.err().filter(|e| e.message().contains("compacted")).map(|_| ())
            }
        })
        .await;
        // etcd 3.5: the watch is created, then canceled with the compact revision.
        c.create(watch_prefix("w/", id, compact_at - 1)).await;
        assert_eq!(c.expect_created(id).await, rev, "created header revision");
        let r = c.expect("the compacted response").await;
        assert!(r.canceled, "a compacted watch must be canceled: {r:?}");
        assert_eq!(r.compact_revision, compact_at, "compact_revision: {r:?}");
        assert_eq!(r.watch_id, id, "{r:?}");

        c.create(watch_prefix("w/", id + 100, compact_at)).await;
        let r = c.expect("watch at the compaction").await;
        assert!(
            r.created && !r.canceled && r.compact_revision == 0,
            "a watch from the compacted revision itself: {r:?}"
        );
        let mut got = BTreeMap::new();
        collect(&mut c, &mut got, Duration::from_secs(20), Duration::from_millis(300), |g| {
            g.get(&(id + 100)).and_then(|e| e.last()).is_some_and(|e| e.0 >= rev)
        })
        .await;
        let mut expected: Vec<Ev> = acked.iter().filter(|e| e.0 >= compact_at).cloned().collect();
        expected.push((rev, true, "w/after-cancel".to_string(), "x".to_string()));
        assert_events(&format!("member {member}: replay from the compacted revision"), &got[&(id + 100)], &expected);
    }
}

/// Puts `r/{writer}/{i}`, each with its own request id and retried (same id) on the next
/// endpoint until acknowledged; returns (revision, key, value) of every acknowledged write.
async fn identified_writer(
    endpoints: Vec<String>,
    writer: u64,
    mut at: usize,
    stop: Arc<AtomicBool>,
    acked_count: Arc<AtomicUsize>,
) -> Vec<Ev> {
    let clients: Vec<KvClient<Channel>> = endpoints.iter().map(|e| KvClient::new(channel(e))).collect();
    let client_id = 0x3a7c_0000_0000_0000 | (u64::from(std::process::id()) << 8) | writer;
    let mut acked = Vec::new();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let (key, value) = (format!("r/{writer}/{i:05}"), format!("v{i}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        let rev = loop {
            let mut req = tonic::Request::new(PutRequest {
                key: key.clone().into(),
                value: value.clone().into(),
                ..Default::default()
            });
            req.set_timeout(Duration::from_secs(3));
            req.metadata_mut().insert("tally-client-id", client_id.to_string().parse().unwrap());
            req.metadata_mut().insert("tally-seq", (i + 1).to_string().parse().unwrap());
            match clients[at].clone().put(req).await {
                Ok(resp) => break resp.into_inner().header.expect("header").revision,
                Err(status) => {
                    assert!(Instant::now() < deadline, "put {key} failed for 30 s: {status:?}");
                    at = (at + 1) % clients.len();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        acked.push((rev, true, key, value));
        i += 1;
        acked_count.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    acked
}

/// A watcher that survives its member: on a broken stream (or when `hop` is set) it opens a
/// new stream on the next member with `start_revision = last seen + 1`. Runs until it has seen
/// revision `target` (once that is set above 0). Returns every event seen and the members used.
async fn reconnecting_watcher(
    endpoints: Vec<String>,
    mut at: usize,
    last_seen: Arc<AtomicI64>,
    hop: Arc<AtomicBool>,
    target: Arc<AtomicI64>,
) -> (Vec<Ev>, Vec<usize>) {
    let mut seen: Vec<Ev> = Vec::new();
    let mut used = vec![at];
    let deadline = Instant::now() + Duration::from_secs(60);
    let start = last_seen.load(Ordering::Relaxed) + 1;
    let mut next_rev = start;
    'streams: loop {
        assert!(Instant::now() < deadline, "watcher gave up after 60 s; at revision {next_rev}");
        let Ok(mut s) = WatchStream::open(&endpoints[at]).await else {
            at = (at + 1) % endpoints.len();
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if s.tx
            .send(WatchRequest { request_union: Some(RequestUnion::CreateRequest(watch_prefix("r/", 0, next_rev))) })
            .await
            .is_err()
        {
            at = (at + 1) % endpoints.len();
            continue;
        }
        let mut created = false;
        loop {
            let t = target.load(Ordering::Relaxed);
            if t > 0 && next_rev > t {
                return (seen, used);
            }
            if hop.swap(false, Ordering::Relaxed) {
                at = (at + 1) % endpoints.len();
                used.push(at);
                continue 'streams;
            }
            match tokio::time::timeout(Duration::from_millis(100), s.rx.message()).await {
                Err(_) => continue,
                Ok(Ok(Some(r))) => {
                    if r.created {
                        assert!(!created && !r.canceled, "unexpected created response: {r:?}");
                        created = true;
                        continue;
                    }
                    assert!(created && !r.canceled, "unexpected response: {r:?}");
                    for e in &r.events {
                        let e = ev(e);
                        assert!(
                            e.0 >= next_rev,
                            "event at revision {} after {}: duplicate or out of order",
                            e.0,
                            next_rev - 1
                        );
                        next_rev = e.0 + 1;
                        last_seen.store(e.0, Ordering::Relaxed);
                        seen.push(e);
                    }
                }
                Ok(_) => {
                    // The member died (or the stream broke): go on elsewhere from last seen + 1.
                    at = (at + 1) % endpoints.len();
                    used.push(at);
                    continue 'streams;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reconnects_after_leader_kill_without_gaps_or_duplicates() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let endpoints = cluster.endpoints();
    let mut kv = cluster.kv(follower);
    let start = current_revision(&mut kv).await;

    // One watcher on the leader (its stream dies with it), one on a follower (its stream
    // survives; it hops to the other member on purpose after the failover).
    let target = Arc::new(AtomicI64::new(0));
    let watchers: Vec<_> = [leader, follower]
        .into_iter()
        .map(|at| {
            let last = Arc::new(AtomicI64::new(start));
            let hop = Arc::new(AtomicBool::new(false));
            let task =
                tokio::spawn(reconnecting_watcher(endpoints.clone(), at, last.clone(), hop.clone(), target.clone()));
            (task, last, hop)
        })
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            tokio::spawn(identified_writer(
                endpoints.clone(),
                w,
                (leader + w as usize) % 3,
                stop.clone(),
                count.clone(),
            ))
        })
        .collect();
    let at_least = |n: usize| {
        let count = count.clone();
        move || {
            let count = count.clone();
            async move { (count.load(Ordering::Relaxed) >= n).then_some(()) }
        }
    };
    eventually(Duration::from_secs(15), "60 writes before the kill", at_least(60)).await;
    eventually(Duration::from_secs(10), "both watchers see events", || {
        let lasts: Vec<i64> = watchers.iter().map(|w| w.1.load(Ordering::Relaxed)).collect();
        async move { lasts.iter().all(|&l| l > start + 10).then_some(()) }
    })
    .await;

    let old_id = cluster.id(leader);
    cluster.kill9(leader);
    let killed_at = count.load(Ordering::Relaxed);
    eventually(Duration::from_secs(10), "a new leader", || {
        let cluster = &cluster;
        async move { cluster.agreed_leader().await.filter(|&l| l != old_id) }
    })
    .await;
    eventually(Duration::from_secs(20), "60 writes after the kill", at_least(killed_at + 60)).await;
    watchers[1].2.store(true, Ordering::Relaxed);
    let hopped_at = count.load(Ordering::Relaxed);
    eventually(Duration::from_secs(20), "30 writes after the hop", at_least(hopped_at + 30)).await;

    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.expect("writer"));
    }
    acked.sort();
    let last = acked.last().expect("writes").0;
    target.store(last, Ordering::Relaxed);
    for (i, (task, _, _)) in watchers.into_iter().enumerate() {
        let (seen, used) = tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .unwrap_or_else(|_| panic!("watcher {i} did not reach revision {last}"))
            .expect("watcher task");
        eprintln!("watcher {i}: {} events through members {used:?}", seen.len());
        assert!(used.len() >= 2, "watcher {i} never reconnected: {used:?}");
        assert_events(&format!("watcher {i} (members {used:?}) vs acknowledged writes"), &seen, &acked);
    }
    eprintln!("{} writes acknowledged, revisions {}..={last}", acked.len(), start + 1);
}

// ---------------------------------------------------------------------------------------------
// Lock and Election

async fn next_observed(observe: &mut tonic::Streaming<tally_proto::v3electionpb::LeaderResponse>) -> (String, String) {
    let r = tokio::time::timeout(Duration::from_secs(5), observe.message())
        .await
        .expect("no Observe response within 5 s")
        .expect("observe stream")
        .expect("observe stream ended");
    let kv = r.kv.expect("observed kv");
    (String::from_utf8_lossy(&kv.key).into_owned(), String::from_utf8_lossy(&kv.value).into_owned())
}

async fn grant(lease: &mut LeaseClient<Channel>, ttl: i64) -> i64 {
    let resp = lease.lease_grant(LeaseGrantRequest { ttl, id: 0 }).await.expect("lease grant").into_inner();
    assert!(resp.id > 0 && resp.ttl == ttl, "grant: {resp:?}");
    resp.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_fencing_token_grows_and_election_basics() {
    let cluster = Cluster::start(3).await;
    let mut lease = LeaseClient::new(channel(&cluster.members[0].client_url()));
    let mut kv = cluster.kv(0);
    let (l1, l2, l3) = (grant(&mut lease, 30).await, grant(&mut lease, 30).await, grant(&mut lease, 30).await);
    let mut lock1 = LockClient::new(channel(&cluster.members[1].client_url()));
    let lock2 = LockClient::new(channel(&cluster.members[2].client_url()));

    let err = lock1.lock(LockRequest { name: b"L".to_vec(), lease: 0x7777 }).await.expect_err("lock with no lease");
    assert!(err.message().contains("etcdserver: requested lease not found"), "{err:?}");
    let k1 = lock1.lock(LockRequest { name: b"L".to_vec(), lease: l1 }).await.expect("lock 1").into_inner().key;
    assert_eq!(k1, format!("L/{l1:x}").into_bytes(), "lock key is <name>/<lease hex>");
    let t1 = get(&mut kv, &k1).await.expect("lock key 1").create_revision;

    // The second locker waits until the first unlocks.
    let mut waiting = {
        let mut lock2 = lock2.clone();
        tokio::spawn(async move { lock2.lock(LockRequest { name: b"L".to_vec(), lease: l2 }).await })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!waiting.is_finished(), "a second Lock on L returned while the first holds it");
    // Its key is already there, queued behind the holder's.
    let queued = get(&mut kv, format!("L/{l2:x}").as_bytes()).await.expect("the waiter's key");
    assert!(queued.create_revision > t1);
    lock1.unlock(UnlockRequest { key: k1.clone() }).await.expect("unlock 1");
    let resp = tokio::time::timeout(Duration::from_secs(5), &mut waiting)
        .await
        .expect("second Lock still waiting 5 s after Unlock")
        .expect("task")
        .expect("lock 2")
        .into_inner();
    let k2 = resp.key;
    assert!(get(&mut kv, &k1).await.is_none(), "Unlock left the key");
    let t2 = get(&mut kv, &k2).await.expect("lock key 2").create_revision;
    assert!(t2 > t1, "fencing token did not grow: {t1} then {t2}");
    assert!(resp.header.expect("header").revision >= t2);

    // The holder's lease ends (revoke): the next waiter gets the lock with a larger token.
    let waiting = {
        let mut lock1 = lock1.clone();
        tokio::spawn(async move { lock1.lock(LockRequest { name: b"L".to_vec(), lease: l3 }).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "a Lock on L returned while another holds it");
    lease.lease_revoke(LeaseRevokeRequest { id: l2 }).await.expect("revoke");
    let k3 = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("Lock still waiting 5 s after the holder's lease was revoked")
        .expect("task")
        .expect("lock 3")
        .into_inner()
        .key;
    let t3 = get(&mut kv, &k3).await.expect("lock key 3").create_revision;
    assert!(t3 > t2, "fencing token did not grow: {t2} then {t3}");
    // And again with the first lease: a new holder, a new, larger token.
    lock1.unlock(UnlockRequest { key: k3 }).await.expect("unlock 3");
    let k4 = lock1.lock(LockRequest { name: b"L".to_vec(), lease: l1 }).await.expect("lock 4").into_inner().key;
    let t4 = get(&mut kv, &k4).await.expect("lock key 4").create_revision;
    assert!(t4 > t3, "fencing token did not grow: {t3} then {t4}");
    eprintln!("fencing tokens: {t1} {t2} {t3} {t4}");

    // Election.
    let (la, lb) = (grant(&mut lease, 30).await, grant(&mut lease, 30).await);
    let mut e0 = ElectionClient::new(channel(&cluster.members[0].client_url()));
    let e1 = ElectionClient::new(channel(&cluster.members[1].client_url()));
    let mut e2 = ElectionClient::new(channel(&cluster.members[2].client_url()));
    let err = e2.leader(LeaderRequest { name: b"E".to_vec() }).await.expect_err("a leader before any campaign");
    assert!(err.message().contains("election: no leader"), "{err:?}");

    let alice = e0
        .campaign(CampaignRequest { name: b"E".to_vec(), lease: la, value: b"alice".to_vec() })
        .await
        .expect("campaign alice")
        .into_inner()
        .leader
        .expect("leader key");
    assert_eq!(alice.name, b"E");
    assert_eq!(alice.key, format!("E/{la:x}").into_bytes());
    assert_eq!(alice.lease, la);
    assert_eq!(get(&mut kv, &alice.key).await.expect("alice's key").create_revision, alice.rev, "LeaderKey.rev");

    let mut observe = e1.clone().observe(LeaderRequest { name: b"E".to_vec() }).await.expect("observe").into_inner();
    let alice_key = String::from_utf8_lossy(&alice.key).into_owned();
    assert_eq!(next_observed(&mut observe).await, (alice_key.clone(), "alice".to_string()));

    let leader = |v: tally_proto::v3electionpb::LeaderResponse| {
        let kv = v.kv.expect("leader kv");
        (String::from_utf8_lossy(&kv.key).into_owned(), String::from_utf8_lossy(&kv.value).into_owned())
    };
    let now = e2.leader(LeaderRequest { name: b"E".to_vec() }).await.expect("leader").into_inner();
    assert_eq!(leader(now), (alice_key.clone(), "alice".to_string()));

    e2.proclaim(ProclaimRequest { leader: Some(alice.clone()), value: b"alice-2".to_vec() }).await.expect("proclaim");
    let now = e0.leader(LeaderRequest { name: b"E".to_vec() }).await.expect("leader").into_inner();
    assert_eq!(leader(now), (alice_key.clone(), "alice-2".to_string()));
    assert_eq!(next_observed(&mut observe).await, (alice_key.clone(), "alice-2".to_string()));

    // Proclaim with a LeaderKey that is not the leader's (wrong rev) fails and changes nothing.
    let wrong = LeaderKey { rev: alice.rev + 1000, ..alice.clone() };
    let err = e0
        .proclaim(ProclaimRequest { leader: Some(wrong), value: b"mallory".to_vec() })
        .await
        .expect_err("proclaim with a wrong rev");
    assert!(err.message().contains("election: not leader"), "{err:?}");
    let now = e0.leader(LeaderRequest { name: b"E".to_vec() }).await.expect("leader").into_inner();
    assert_eq!(leader(now), (alice_key.clone(), "alice-2".to_string()));

    // Bob campaigns and waits; alice resigns; bob leads with a larger rev.
    let mut bob_campaign = {
        let mut e1 = e1.clone();
        tokio::spawn(async move {
            e1.campaign(CampaignRequest { name: b"E".to_vec(), lease: lb, value: b"bob".to_vec() }).await
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!bob_campaign.is_finished(), "bob's campaign returned while alice leads");
    e2.resign(ResignRequest { leader: Some(alice.clone()) }).await.expect("resign");
    let bob = tokio::time::timeout(Duration::from_secs(5), &mut bob_campaign)
        .await
        .expect("bob still campaigning 5 s after alice resigned")
        .expect("task")
        .expect("campaign bob")
        .into_inner()
        .leader
        .expect("leader key");
    assert!(bob.rev > alice.rev, "election rev did not grow: {} then {}", alice.rev, bob.rev);
    let bob_key = String::from_utf8_lossy(&bob.key).into_owned();
    let now = e0.leader(LeaderRequest { name: b"E".to_vec() }).await.expect("leader").into_inner();
    assert_eq!(leader(now), (bob_key.clone(), "bob".to_string()));
    assert_eq!(next_observed(&mut observe).await, (bob_key.clone(), "bob".to_string()));
    // Alice's key is gone; her proclaim now fails.
    assert!(get(&mut kv, &alice.key).await.is_none(), "Resign left the key");
    let err = e0
        .proclaim(ProclaimRequest { leader: Some(alice), value: b"again".to_vec() })
        .await
        .expect_err("proclaim after resign");
    assert!(err.message().contains("election: not leader"), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// Leases across a leader failover

/// One keep-alive round for every lease through `endpoint`: the TTLs it answered, in order.
async fn keep_alive_round(endpoint: &str, ids: &[i64]) -> Result<Vec<i64>, String> {
    let mut client = LeaseClient::new(channel(endpoint));
    let reqs: Vec<LeaseKeepAliveRequest> = ids.iter().map(|&id| LeaseKeepAliveRequest { id }).collect();
    let round = async {
        let (tx, rx) = mpsc::channel(ids.len());
        for r in reqs {
            tx.send(r).await.expect("queue keep-alive");
        }
        let mut answers =
            client.lease_keep_alive(ReceiverStream::new(rx)).await.map_err(|s| s.to_string())?.into_inner();
        let mut ttls = Vec::new();
        for &id in ids {
            match answers.message().await {
                Ok(Some(r)) if r.id == id => ttls.push(r.ttl),
                other => return Err(format!("keep-alive of {id:x}: {other:?}")),
            }
        }
        drop(tx);
        Ok(ttls)
    };
    tokio::time::timeout(Duration::from_millis(1500), round).await.map_err(|_| "keep-alive timed out".to_string())?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_kept_alive_survive_leader_kill_then_expire() {
    let mut cluster = Cluster::start(3).await;
    let endpoints = cluster.endpoints();
    let leader = cluster.leader().await;
    let mut lease = LeaseClient::new(channel(&endpoints[(leader + 1) % 3]));
    let mut kv = cluster.kv((leader + 1) % 3);

    const TTL: i64 = 3;
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = grant(&mut lease, TTL).await;
        let put =
            PutRequest { key: format!("ka/{i}").into(), value: b"alive".to_vec(), lease: id, ..Default::default() };
        kv.put(put).await.expect("put with lease");
        ids.push(id);
    }
    // A lease with a TTL below the minimum is raised to 2 s.
    let short = lease.lease_grant(LeaseGrantRequest { ttl: 1, id: 0 }).await.expect("grant").into_inner();
    assert_eq!(short.ttl, 2, "granted TTL of a 1 s request: {short:?}");
    lease.lease_revoke(LeaseRevokeRequest { id: short.id }).await.expect("revoke");

    // Keep them alive every 500 ms through whichever member answers; start at the leader.
    let stop = Arc::new(AtomicBool::new(false));
    let bad_ttls = Arc::new(Mutex::new(Vec::new()));
    let keeper = {
        let (stop, bad_ttls, ids, endpoints) = (stop.clone(), bad_ttls.clone(), ids.clone(), endpoints.clone());
        tokio::spawn(async move {
            let mut at = leader;
            let (mut rounds, mut failed) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                loop {
                    match keep_alive_round(&endpoints[at], &ids).await {
                        Ok(ttls) => {
                            if ttls.iter().any(|&t| t <= 0) {
                                bad_ttls.lock().unwrap().push((started, at, ttls));
                            }
                            break;
                        }
                        Err(_) => {
                            failed += 1;
                            at = (at + 1) % endpoints.len();
                            assert!(
                                started.elapsed() < Duration::from_secs(20),
                                "no member answered keep-alives for 20 s"
                            );
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                rounds += 1;
                tokio::time::sleep_until(started + Duration::from_millis(500)).await;
            }
            (rounds, failed)
        })
    };

    tokio::time::sleep(Duration::from_secs(2)).await;
    let old_id = cluster.id(leader);
    cluster.kill9(leader);
    eventually(Duration::from_secs(10), "a new leader", || {
        let cluster = &cluster;
        async move { cluster.agreed_leader().await.filter(|&l| l != old_id) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;

    let survivor = (leader + 1) % 3;
    let mut kv = cluster.kv(survivor);
    let mut lease = LeaseClient::new(channel(&endpoints[survivor]));
    for (i, &id) in ids.iter().enumerate() {
        let key = format!("ka/{i}");
        assert!(get(&mut kv, key.as_bytes()).await.is_some(), "{key} (lease {id:x}) vanished across the failover");
        let ttl = lease.lease_time_to_live(LeaseTimeToLiveRequest { id, keys: true }).await.expect("ttl").into_inner();
        assert!(ttl.ttl > 0, "lease {id:x} TTL after the failover: {ttl:?}");
        assert_eq!(ttl.granted_ttl, TTL);
        assert_eq!(ttl.keys, [key.into_bytes()]);
    }
    stop.store(true, Ordering::Relaxed);
    let (rounds, failed) = keeper.await.expect("keeper");
    eprintln!("{rounds} keep-alive rounds, {failed} failed attempts");
    let bad = bad_ttls.lock().unwrap().clone();
    assert!(bad.is_empty(), "keep-alives answered TTL <= 0 (lease gone): {bad:?}");

    // No more keep-alives: every key goes within TTL (plus some slack), each with a DELETE
    // event.
    let mut w = WatchStream::open(&endpoints[survivor]).await.expect("open watch stream");
    w.create(watch_prefix("ka/", 1, 0)).await;
    w.expect_created(1).await;
    let stopped = Instant::now();
    eventually(Duration::from_secs(15), "the leased keys to expire", || {
        let mut kv = kv.clone();
        async move {
            let req = RangeRequest {
                key: b"ka/".to_vec(),
                range_end: prefix_end(b"ka/"),
                count_only: true,
                ..Default::default()
            };
            (kv.range(req).await.ok()?.into_inner().count == 0).then_some(())
        }
    })
    .await;
    let took = stopped.elapsed();
    assert!(took >= Duration::from_millis(2000), "leases expired {took:?} after the last keep-alive, TTL is {TTL} s");
    eprintln!("keys expired {took:?} after keep-alives stopped");
    for &id in &ids {
        let ttl = lease.lease_time_to_live(LeaseTimeToLiveRequest { id, keys: false }).await.expect("ttl").into_inner();
        assert_eq!(ttl.ttl, -1, "lease {id:x} after expiry: {ttl:?}");
    }
    let mut deleted = Vec::new();
    while deleted.len() < ids.len() {
        let r = w.expect("DELETE events of the expired leases' keys").await;
        for e in &r.events {
            let (_, put, key, _) = ev(e);
            assert!(!put, "unexpected PUT of {key} while the leases expire");
            deleted.push(key);
        }
    }
    deleted.sort();
    assert_eq!(deleted, (0..ids.len()).map(|i| format!("ka/{i}")).collect::<Vec<_>>());
    // An expired lease: keep-alive answers TTL 0 (etcd), and it cannot take new keys.
    assert_eq!(keep_alive_round(&endpoints[survivor], &ids[..1]).await, Ok(vec![0]), "keep-alive of an expired lease");
    let put = PutRequest { key: b"ka/late".to_vec(), value: b"x".to_vec(), lease: ids[0], ..Default::default() };
    let err = kv.put(put).await.expect_err("put with an expired lease");
    assert!(err.message().contains("etcdserver: requested lease not found"), "{err:?}");
}

#[test]
fn etcdctl_is_installed() {
    let out = Command::new(etcdctl_bin()).arg("version").env("ETCDCTL_API", "3").output();
    let out = out.unwrap_or_else(|e| Etcdctl::spawn_err(e));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("etcdctl version: 3."), "etcdctl version: {text}");
}
