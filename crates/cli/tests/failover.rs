//! Failures of real `tally server` processes: kill -9 of the leader under a continuous write
//! load, a full-cluster restart, follower reads and writes (also with the leader frozen), and
//! malformed requests.
//!
//! Each test starts its own 3-member cluster. They run in parallel by default; on a very
//! loaded machine, `--test-threads=1` keeps election timings comfortable.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{channel, eventually, Cluster};
use tally_proto::etcdserverpb::kv_client::KvClient;
use tally_proto::etcdserverpb::{PutRequest, RangeRequest, RangeResponse};
use tonic::transport::Channel;
use tonic::Code;

/// The end of the range of every key that starts with `prefix` (etcd's `--prefix`).
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

fn prefix_range(prefix: &str, serializable: bool) -> RangeRequest {
    RangeRequest {
        key: prefix.as_bytes().to_vec(),
        range_end: prefix_end(prefix.as_bytes()),
        serializable,
        ..Default::default()
    }
}

async fn range(kv: &mut KvClient<Channel>, req: RangeRequest) -> Result<RangeResponse, tonic::Status> {
    let mut req = tonic::Request::new(req);
    req.set_timeout(Duration::from_secs(5));
    kv.range(req).await.map(|r| r.into_inner())
}

async fn put(kv: &mut KvClient<Channel>, key: &str, value: &str) -> Result<i64, tonic::Status> {
    let req = PutRequest { key: key.into(), value: value.into(), ..Default::default() };
    let resp = kv.put(req).await?.into_inner();
    Ok(resp.header.expect("put header").revision)
}

/// A put carrying our own request identity, so retrying it anywhere applies it once.
fn identified_put(client_id: u64, seq: u64, key: &str, value: &str) -> tonic::Request<PutRequest> {
    let mut req = tonic::Request::new(PutRequest { key: key.into(), value: value.into(), ..Default::default() });
    req.set_timeout(Duration::from_secs(4));
    req.metadata_mut().insert("tally-client-id", client_id.to_string().parse().unwrap());
    req.metadata_mut().insert("tally-seq", seq.to_string().parse().unwrap());
    req
}

/// Writes `k{i}` for i = 0, 1, ... until `stop`, each retried (same request id) against the
/// next endpoint until it succeeds. Starts at endpoint `at`. Returns how many writes were acknowledged; `acked` follows it.
async fn writer(
    endpoints: Vec<String>,
    mut at: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
) -> (usize, usize) {
    let clients: Vec<KvClient<Channel>> = endpoints.iter().map(|e| KvClient::new(channel(e))).collect();
    let client_id = 0x7e57_0000_0000_0000 | u64::from(std::process::id());
    let mut retries = 0;
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("k{i:05}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mut kv = clients[at].clone();
            match kv.put(identified_put(client_id, i as u64 + 1, &key, &format!("v{i}"))).await {
                Ok(_) => break,
                Err(status) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "write of {key} failed for 30 s; last error: {status:?}"
                    );
                    retries += 1;
                    at = (at + 1) % clients.len();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        i += 1;
        acked.store(i, Ordering::Relaxed);
    }
    (i, retries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_leader_under_write_load_then_restart_it() {
    let mut cluster = Cluster::start(3).await;
    let first_leader = cluster.leader().await;

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    // Write to the leader itself, so the kill cuts off requests it is handling.
    let load = tokio::spawn(writer(cluster.endpoints(), first_leader, stop.clone(), acked.clone()));
    let count = |n: usize| {
        let acked = acked.clone();
        move || {
            let acked = acked.clone();
            async move { (acked.load(Ordering::Relaxed) >= n).then_some(()) }
        }
    };
    eventually(Duration::from_secs(10), "30 writes before the first kill", count(30)).await;

    // Two rounds: kill -9 the leader, see a new one elected and writes go on, restart the
    // killed member and see it catch up.
    for round in 0..2 {
        let old_leader = cluster.leader().await;
        let old_leader_id = cluster.id(old_leader);
        let early_campaigns = |cluster: &Cluster| -> u64 {
            (0..3)
                .filter(|&i| i != old_leader)
                .map(|i| support::metric(&cluster.members[i].endpoint(), "tally_fast_elections_total"))
                .sum()
        };
        let early_before = early_campaigns(&cluster);
        cluster.kill9(old_leader);
        let at_kill = acked.load(Ordering::Relaxed);

        // The survivors notice the leader is gone after an election timeout, then elect another.
        let new_leader_id = eventually(Duration::from_secs(10), "a new leader among the survivors", || {
            let cluster = &cluster;
            async move { cluster.agreed_leader().await.filter(|&l| l != old_leader_id) }
        })
        .await;
        let new_leader = cluster.index_of(new_leader_id).expect("new leader is a member");
        assert_ne!(new_leader, old_leader, "round {round}");
        eventually(Duration::from_secs(15), "30 more writes after the kill", count(at_kill + 30)).await;
        // The survivors saw the dead leader's connections reset and campaigned early.
        let early_after = early_campaigns(&cluster);
        assert!(early_after > early_before, "round {round}: early campaigns {early_before} -> {early_after}");

        // The killed member comes back and catches up: its local (serializable) state has
        // every key acknowledged so far.
        cluster.spawn(old_leader);
        let kv = cluster.kv(old_leader);
        let target = acked.load(Ordering::Relaxed) as i64;
        eventually(Duration::from_secs(20), "the restarted member to catch up", || {
            let mut kv = kv.clone();
            async move {
                let resp = range(&mut kv, prefix_range("k", true)).await.ok()?;
                (resp.count >= target).then_some(())
            }
        })
        .await;
        cluster.wait_for_leader().await;
    }
    stop.store(true, Ordering::Relaxed);
    let (written, retries) = load.await.expect("writer task");
    eprintln!("{written} writes acknowledged, {retries} retried attempts");

    // Every acknowledged write is there exactly once, read linearizably.
    let resp = range(&mut cluster.kv(first_leader), prefix_range("k", false)).await.expect("linearizable range");
    let keys: Vec<String> = resp.kvs.iter().map(|kv| String::from_utf8_lossy(&kv.key).into_owned()).collect();
    let expected: Vec<String> = (0..written).map(|i| format!("k{i:05}")).collect();
    assert_eq!(keys, expected, "the keys present are not exactly the acknowledged writes");
    assert_eq!(resp.count, written as i64);
    for (i, kv) in resp.kvs.iter().enumerate() {
        assert_eq!(kv.version, 1, "k{i:05} was applied {} times (version {})", kv.version, kv.version);
        assert_eq!(kv.value, format!("v{i}").into_bytes());
        assert_eq!(kv.create_revision, kv.mod_revision);
    }
    // Revisions grow by one per write (there were no other writes).
    for pair in resp.kvs.windows(2) {
        assert_eq!(pair[1].mod_revision, pair[0].mod_revision + 1, "a revision was skipped or duplicated");
    }
    // Every member's local copy converges to the same data.
    for i in 0..3 {
        let kv = cluster.kv(i);
        let local = eventually(Duration::from_secs(10), "every member to have every write", || {
            let mut kv = kv.clone();
            let want = written as i64;
            async move { range(&mut kv, prefix_range("k", true)).await.ok().filter(|r| r.count == want) }
        })
        .await;
        assert_eq!(local.kvs, resp.kvs, "member {i}'s copy differs");
    }
    cluster.assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_cluster_restart_keeps_everything() {
    let mut cluster = Cluster::start(3).await;
    // Through every member, without request ids of our own: each member mints them.
    for i in 0..50 {
        put(&mut cluster.kv(i % 3), &format!("durable/{i:03}"), &format!("value-{i}")).await.expect("put");
    }
    let mut kv = cluster.kv(0);
    // Overwrite one key and delete another so versions and tombstones must survive too.
    let mut last_rev = put(&mut kv, "durable/000", "rewritten").await.expect("overwrite");
    let del = kv
        .delete_range(tally_proto::etcdserverpb::DeleteRangeRequest {
            key: b"durable/001".to_vec(),
            ..Default::default()
        })
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(del.deleted, 1);
    last_rev += 1;
    let before = range(&mut kv, prefix_range("durable/", false)).await.expect("range before");
    assert_eq!(before.count, 49);
    assert_eq!(before.header.as_ref().unwrap().revision, last_rev);

    cluster.stop_all();
    cluster.start_all();
    cluster.wait_for_leader().await;

    for i in 0..3 {
        let kv = cluster.kv(i);
        let after = eventually(Duration::from_secs(10), "a linearizable read after restart", || {
            let mut kv = kv.clone();
            async move { range(&mut kv, prefix_range("durable/", false)).await.ok() }
        })
        .await;
        assert_eq!(after.kvs, before.kvs, "member {i} lost or changed data across the restart");
        assert_eq!(after.count, 49);
        assert_eq!(after.header.unwrap().revision, last_rev, "member {i}: the revision moved across the restart");
        let first = after.kvs.iter().find(|kv| kv.key == b"durable/000").unwrap();
        assert_eq!(first.version, 2);
        assert_eq!(first.value, b"rewritten");
    }

    // Writes after a restart are applied and continue the revision sequence. A few quick
    // restarts in a row, each member taking writes without request ids before and after each:
    // the ids a member mints for such writes must not repeat those of its previous life.
    for cycle in 0..3 {
        if cycle > 0 {
            cluster.stop_all();
            cluster.start_all();
            cluster.wait_for_leader().await;
        }
        for i in 0..3 {
            let mut kv = cluster.kv(i);
            let key = format!("after-restart/{cycle}/{i}");
            let rev = put(&mut kv, &key, "x").await.expect("put after restart");
            let got = range(&mut kv, RangeRequest { key: key.clone().into_bytes(), ..Default::default() })
                .await
                .expect("range after restart");
            assert_eq!(
                got.kvs.len(),
                1,
                "restart {cycle}, member {i}: the put of {key} was acknowledged (revision {rev}) but not applied"
            );
            assert_eq!(rev, last_rev + 1, "restart {cycle}, member {i}: a write did not get the next revision");
            last_rev = rev;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_see_each_others_writes() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let (a, b) = (followers[0], followers[1]);
    let (mut kv_a, mut kv_b) = (cluster.kv(a), cluster.kv(b));
    for round in 0..20 {
        let (writer, reader) = if round % 2 == 0 { (&mut kv_a, &mut kv_b) } else { (&mut kv_b, &mut kv_a) };
        let value = format!("value-{round}");
        let rev = put(writer, "shared", &value).await.expect("put through a follower");
        let resp = range(reader, RangeRequest { key: b"shared".to_vec(), ..Default::default() })
            .await
            .expect("linearizable range through a follower");
        assert_eq!(resp.kvs.len(), 1, "round {round}: key missing on the other follower");
        assert_eq!(
            String::from_utf8_lossy(&resp.kvs[0].value),
            value,
            "round {round}: a linearizable read through a follower missed a write acknowledged by another"
        );
        assert_eq!(resp.kvs[0].mod_revision, rev);
        assert_eq!(resp.kvs[0].version, round + 1);
        assert!(resp.header.unwrap().revision >= rev);
    }
    // The answers came from the followers themselves.
    let status = cluster.status(a).await.unwrap();
    assert_ne!(status.leader, cluster.id(a), "member {a} became leader during the test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_clear_errors_and_the_node_keeps_serving() {
    let cluster = Cluster::start(3).await;
    let mut huge_errors = Vec::new();
    for i in 0..3 {
        let mut kv = cluster.kv(i);
        let err = kv
            .put(PutRequest { key: Vec::new(), value: b"v".to_vec(), ..Default::default() })
            .await
            .expect_err("a put with an empty key must fail");
        assert_eq!(err.code(), Code::InvalidArgument, "member {i}: {err:?}");
        assert_eq!(err.message(), "etcdserver: key is not provided", "member {i}");

        // Above etcd's --max-request-bytes (1.5 MiB) but within gRPC's limit.
        let big = vec![b'x'; 1536 * 1024 + 1024];
        let err = kv
            .put(PutRequest { key: b"big".to_vec(), value: big, ..Default::default() })
            .await
            .expect_err("a 1.5 MiB put must fail");
        assert_eq!(err.code(), Code::InvalidArgument, "member {i}: {err:?}");
        assert_eq!(err.message(), "etcdserver: request is too large", "member {i}");

        // A 2 MiB value must fail too; its error is checked last, after the node showed it
        // keeps serving.
        let huge = vec![b'x'; 2 << 20];
        let err = kv
            .put(PutRequest { key: b"huge".to_vec(), value: huge, ..Default::default() })
            .await
            .expect_err("a 2 MiB put must fail");
        huge_errors.push((i, err));

        // A range whose end sorts before its key is malformed too, but not an error in etcd:
        // it is simply empty.
        let resp = range(&mut kv, RangeRequest { key: b"b".to_vec(), range_end: b"a".to_vec(), ..Default::default() })
            .await
            .expect("inverted range");
        assert_eq!(resp.count, 0);

        // The node keeps serving.
        let rev = put(&mut kv, &format!("ok/{i}"), "fine").await.expect("put after the malformed ones");
        let resp = range(&mut kv, RangeRequest { key: format!("ok/{i}").into_bytes(), ..Default::default() })
            .await
            .expect("range after the malformed ones");
        assert_eq!(resp.kvs[0].mod_revision, rev);
        assert!(cluster.status(i).await.is_some(), "member {i} stopped answering Status");
    }
    let resp = range(&mut cluster.kv(0), prefix_range("big", false)).await.unwrap();
    assert_eq!(resp.count, 0, "a rejected put was applied");
    let resp = range(&mut cluster.kv(0), prefix_range("huge", false)).await.unwrap();
    assert_eq!(resp.count, 0, "a rejected put was applied");
    for (i, err) in huge_errors {
        assert_eq!(
            (err.code(), err.message()),
            (Code::InvalidArgument, "etcdserver: request is too large"),
            "member {i}: a put with a 2 MiB value got {err:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_get_etcds_errors_on_leader_and_followers() {
    use tally_proto::etcdserverpb::request_op::Request as Op;
    use tally_proto::etcdserverpb::{DeleteRangeRequest, RequestOp, TxnRequest};

    let cluster = Cluster::start(3).await;
    let put_op = |key: &str| RequestOp {
        request: Some(Op::RequestPut(PutRequest { key: key.into(), value: b"v".to_vec(), ..Default::default() })),
    };
    for i in 0..3 {
        let mut kv = cluster.kv(i);
        let expect = |result: Result<(), tonic::Status>, code: Code, message: &str, what: &str| {
            let err = result.expect_err(what);
            assert_eq!((err.code(), err.message()), (code, message), "member {i}, {what}: {err:?}");
        };
        expect(
            kv.range(RangeRequest::default()).await.map(drop),
            Code::InvalidArgument,
            "etcdserver: key is not provided",
            "range of an empty key",
        );
        expect(
            kv.delete_range(DeleteRangeRequest::default()).await.map(drop),
            Code::InvalidArgument,
            "etcdserver: key is not provided",
            "delete of an empty key",
        );
        let too_many =
            TxnRequest { success: (0..129).map(|n| put_op(&format!("t{n}"))).collect(), ..Default::default() };
        expect(
            kv.txn(too_many).await.map(drop),
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request",
            "txn of 129 operations",
        );
        let duplicate = TxnRequest { success: vec![put_op("dup"), put_op("dup")], ..Default::default() };
        expect(
            kv.txn(duplicate).await.map(drop),
            Code::InvalidArgument,
            "etcdserver: duplicate key given in txn request",
            "txn putting one key twice",
        );
        let ignore_with_value =
            PutRequest { key: b"k".to_vec(), value: b"v".to_vec(), ignore_value: true, ..Default::default() };
        expect(
            kv.put(ignore_with_value).await.map(drop),
            Code::InvalidArgument,
            "etcdserver: value is provided",
            "put with ignore_value and a value",
        );
        // Checked when the entry applies (on the leader, also for a write forwarded by a follower).
        let ignore_missing = PutRequest { key: b"missing".to_vec(), ignore_value: true, ..Default::default() };
        expect(
            kv.put(ignore_missing).await.map(drop),
            Code::InvalidArgument,
            "etcdserver: key not found",
            "put with ignore_value of a missing key",
        );
        let unknown_lease =
            PutRequest { key: b"k".to_vec(), value: b"v".to_vec(), lease: 0x1234, ..Default::default() };
        expect(
            kv.put(unknown_lease).await.map(drop),
            Code::NotFound,
            "etcdserver: requested lease not found",
            "put with an unknown lease",
        );
        // And the member keeps serving.
        put(&mut kv, &format!("still-ok/{i}"), "yes").await.expect("put after the invalid requests");
    }
    // key "\0" with range_end "\0": every key.
    let all = range(&mut cluster.kv(0), RangeRequest { key: vec![0], range_end: vec![0], ..Default::default() })
        .await
        .expect("range of every key");
    let keys: Vec<String> = all.kvs.iter().map(|kv| String::from_utf8_lossy(&kv.key).into_owned()).collect();
    assert_eq!(keys, ["still-ok/0", "still-ok/1", "still-ok/2"], "a rejected request changed the store");
    assert_eq!(all.header.unwrap().revision, 4, "a rejected request made a revision");
}

/// A linearizable read sent through a follower while the leader is frozen cannot get its read
/// index from that leader; it waits for the next one and then sees the write made before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linearizable_read_through_a_follower_outlasts_a_frozen_leader() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    put(&mut cluster.kv(leader), "frozen/key", "before").await.expect("put through the leader");
    cluster.signal(leader, "-STOP");
    let mut req = tonic::Request::new(prefix_range("frozen/", false));
    req.set_timeout(Duration::from_secs(6));
    let read = cluster.kv(follower).range(req).await;
    cluster.signal(leader, "-CONT");
    let kvs = read.expect("a linearizable read through a follower while the old leader is frozen").into_inner().kvs;
    assert_eq!(kvs.len(), 1, "{kvs:?}");
    assert_eq!(kvs[0].value, b"before", "{kvs:?}");
    cluster.assert_running();
}

/// A read that cannot be served (no quorum: both other members frozen) ends at the deadline
/// its `grpc-timeout` header sets, answered by the server as tonic's server answers it, not
/// after the 7 s a linearizable read otherwise keeps retrying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_timeout_ends_a_read_that_cannot_be_served() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    put(&mut cluster.kv(leader), "timeout/key", "v").await.expect("put through the leader");
    let others = [(leader + 1) % 3, (leader + 2) % 3];
    for &i in &others {
        cluster.signal(i, "-STOP");
    }
    // The client sets the header only: this channel has no deadline of its own.
    let mut req = tonic::Request::new(prefix_range("timeout/", false));
    req.set_timeout(Duration::from_millis(300));
    let read = cluster.kv(leader).range(req).await;
    for &i in &others {
        cluster.signal(i, "-CONT");
    }
    let err = read.expect_err("no quorum confirms the read");
    assert_eq!((err.code(), err.message()), (tonic::Code::Cancelled, "Timeout expired"), "{err:?}");
    cluster.assert_running();
}
