//! ZooKeeper's FIFO client order with a session's requests pipelined: a raw-protocol client
//! sends hundreds of requests without waiting (more writes than a connection keeps in flight,
//! so the server must stop reading), on the leader and on followers, and checks that the
//! replies come in request order, that each read sees exactly the writes sent before it, that
//! versions and sequential names follow the order sent, and that a watch's notification comes
//! before the reply of the write that fired it. Then the leader is killed (kill -9) under
//! pipelined streams, and the writes that survive are checked to be applied in the order sent,
//! without a gap, with every acknowledged one among them.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::zk::{self, Frame};
use support::{Cluster, Setup};
use tally_mvcc::StoreConfig;
use tally_zk::proto::{
    xid, Acl, CreateMode, CreateRequest, EventType, PathRequest, Request, Response, SetDataRequest, Stat,
    WatchedPathRequest, WatcherEvent, WriteOp,
};

fn create(path: &str, mode: CreateMode) -> Request {
    let r = CreateRequest { path: path.into(), data: Some(Vec::new()), acl: Acl::open_unsafe(), flags: mode as i32 };
    Request::Write(WriteOp::Create(r))
}

fn set_data(path: &str, data: &str) -> Request {
    Request::Write(WriteOp::SetData(SetDataRequest { path: path.into(), data: Some(data.into()), version: -1 }))
}

fn get_data(path: &str, watch: bool) -> Request {
    Request::GetData(WatchedPathRequest { path: path.into(), watch })
}

fn exists(path: &str) -> Request {
    Request::Exists(WatchedPathRequest { path: path.into(), watch: false })
}

fn response(request: &Request, frame: &Frame) -> Response {
    assert_eq!(frame.err, 0, "{request:?} failed with {}", frame.err);
    Response::decode(request.op_code(), &frame.body).expect("a reply body")
}

fn stat_of(response: Response) -> Stat {
    match response {
        Response::Stat(stat) | Response::GetData { stat, .. } => stat,
        other => panic!("no stat in {other:?}"),
    }
}

/// What a reply must say, given the requests before it.
enum Expect {
    /// setData: the node's version after it.
    Version(i32),
    /// getData: the data and version of the last setData before it; a watch is left.
    Data(String, i32),
    /// create of a sequential child: the suffix it takes (children created before it).
    Sequential(i32),
    /// exists: the version of the last setData before it.
    Exists(i32),
    Created,
}

/// A session's stream: `sets` setData on `path` with reads, sequential creates and watches
/// mixed in; each request with what its reply must say.
fn stream(path: &str, sets: i32) -> Vec<(Request, Expect)> {
    let mut requests = vec![(create(path, CreateMode::Persistent), Expect::Created)];
    let mut children = 0;
    for k in 1..=sets {
        requests.push((set_data(path, &k.to_string()), Expect::Version(k)));
        if k % 7 == 0 {
            requests.push((get_data(path, true), Expect::Data(k.to_string(), k)));
        }
        if k % 5 == 0 {
            requests
                .push((create(&format!("{path}/s-"), CreateMode::PersistentSequential), Expect::Sequential(children)));
            children += 1;
        }
        if k % 11 == 0 {
            requests.push((exists(path), Expect::Exists(k)));
        }
    }
    requests
}

/// Sends `path`'s stream on a new session on `port` without waiting, and checks every reply.
async fn pipelined_session(port: u16, path: String, sets: i32) {
    let (tx, rx, _) = zk::connect(port).await.expect("connect");
    send_and_check(tx, rx, &path, stream(&path, sets)).await;
}

/// Sends `requests` (a stream on `path`) without waiting, and checks every reply.
async fn send_and_check(mut tx: zk::Sender, mut rx: zk::Receiver, path: &str, requests: Vec<(Request, Expect)>) {
    let first_xid = tx.next_xid();
    let to_send: Vec<Request> = requests.iter().map(|(r, _)| r.clone()).collect();
    let sender = tokio::spawn(async move {
        for request in &to_send {
            tx.send(request).await.expect("send");
        }
        tx
    });
    // After a getData that left a watch, the next setData fires it: its notification must
    // come before that setData's reply.
    let mut watch_pending = false;
    let mut notified = false;
    for (i, (request, expect)) in requests.iter().enumerate() {
        let frame = loop {
            let frame = rx.recv().await.expect("a reply");
            if frame.xid != xid::NOTIFICATION {
                break frame;
            }
            let event: WatcherEvent = tally_zk::proto::decode(&frame.body).expect("an event");
            assert_eq!((event.event_type, event.path.as_str()), (EventType::NodeDataChanged.code(), path));
            assert!(watch_pending && !notified, "a notification no watch asked for, before request {i}");
            notified = true;
        };
        assert_eq!(frame.xid, first_xid + i as i32, "replies in request order");
        let got = response(request, &frame);
        match expect {
            Expect::Created => {}
            Expect::Version(v) => {
                assert_eq!(stat_of(got).version, *v, "setData {v}: versions follow the order sent");
                if watch_pending {
                    assert!(notified, "setData {v}: the watch's notification comes before the reply");
                    (watch_pending, notified) = (false, false);
                }
            }
            Expect::Data(data, v) => {
                let Response::GetData { data: Some(got), stat } = got else { panic!("getData answered {got:?}") };
                let seen = (String::from_utf8(got).expect("utf-8"), stat.version);
                assert_eq!(seen, (data.clone(), *v), "a read sees the writes before it, and none after");
                watch_pending = true;
            }
            Expect::Sequential(n) => {
                let Response::Create { path: created } = got else { panic!("create answered {got:?}") };
                assert_eq!(created, format!("{path}/s-{n:010}"), "sequential names follow the order sent");
            }
            Expect::Exists(v) => assert_eq!(stat_of(got).version, *v, "exists sees the writes before it"),
        }
    }
    sender.await.expect("sender");
}

fn with_zk() -> Setup {
    Setup { zk: true, ..Setup::default() }
}

/// 600 setData (and 300 reads and creates between them) per session, one session on every
/// member: more writes than a connection keeps in flight (256).
#[tokio::test]
async fn pipelined_requests_are_answered_in_order_and_see_exactly_the_writes_before_them() {
    let cluster = Cluster::start_with(3, with_zk()).await;
    let sessions: Vec<_> = (0..cluster.len())
        .map(|i| tokio::spawn(pipelined_session(cluster.members[i].zk_port, format!("/p{i}"), 600)))
        .collect();
    for session in sessions {
        tokio::time::timeout(Duration::from_secs(60), session).await.expect("in time").expect("session");
    }
}

/// Streams creates of `{path}/n{k}` for k = 0, 1, ... on a new session until the stream ends or
/// the connection fails; `acked` counts the creates answered OK (a prefix, replies being in
/// order).
async fn create_stream(port: u16, path: String, count: usize, acked: Arc<AtomicUsize>) {
    let (mut tx, mut rx, _) = zk::connect(port).await.expect("connect");
    zk::call(&mut tx, &mut rx, &create(&path, CreateMode::Persistent)).await.expect("create the parent");
    let sender_path = path.clone();
    let sender = tokio::spawn(async move {
        for k in 0..count {
            if tx.send(&create(&format!("{sender_path}/n{k:05}"), CreateMode::Persistent)).await.is_err() {
                return;
            }
        }
    });
    for k in 0..count {
        match rx.reply().await {
            Ok(frame) => {
                assert_eq!(frame.xid, k as i32 + 2, "replies in request order");
                assert_eq!(frame.err, 0, "create n{k:05} failed");
                acked.store(k + 1, Ordering::SeqCst);
            }
            // Connection loss: the client would reconnect with its session.
            Err(_) => break,
        }
    }
    sender.abort();
}

/// The creates of `path` that were applied, by k, with their zxid, read on `port`.
async fn applied_creates(port: u16, path: &str) -> Vec<(usize, i64)> {
    let (mut tx, mut rx, _) = zk::connect(port).await.expect("connect to a survivor");
    let sync = Request::Sync(PathRequest { path: path.into() });
    zk::call(&mut tx, &mut rx, &sync).await.expect("sync");
    let list = Request::GetChildren(WatchedPathRequest { path: path.into(), watch: false });
    let Response::GetChildren { children } = response(&list, &zk::call(&mut tx, &mut rx, &list).await.expect("list"))
    else {
        panic!("getChildren answered otherwise")
    };
    let mut applied = Vec::new();
    for child in children {
        let k: usize = child.strip_prefix('n').and_then(|k| k.parse().ok()).expect("a child n{k}");
        let request = exists(&format!("{path}/{child}"));
        let stat = stat_of(response(&request, &zk::call(&mut tx, &mut rx, &request).await.expect("exists")));
        applied.push((k, stat.czxid));
    }
    applied.sort();
    applied
}

/// kill -9 of the leader under pipelined create streams on the leader and on a follower: what
/// was applied of each session's stream is a prefix of it (no gap), applied in the order sent
/// (rising zxids), and holds every create that was acknowledged.
#[tokio::test]
async fn a_leader_killed_under_pipelined_writes_leaves_them_in_order_and_without_a_gap() {
    let mut cluster = Cluster::start_with(3, with_zk()).await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % cluster.len();
    let survivor = cluster.members[follower].zk_port;
    let count = 20_000;
    let streams: Vec<_> = [(leader, "/on-leader"), (follower, "/on-follower")]
        .into_iter()
        .map(|(i, path)| {
            let acked = Arc::new(AtomicUsize::new(0));
            let task = tokio::spawn(create_stream(cluster.members[i].zk_port, path.to_string(), count, acked.clone()));
            (path, acked, task)
        })
        .collect();
    // Kill the leader once both streams are well under way.
    support::eventually(Duration::from_secs(30), "both streams writing", || {
        let going = streams.iter().all(|(_, acked, _)| acked.load(Ordering::SeqCst) >= 300);
        async move { going.then_some(()) }
    })
    .await;
    cluster.kill9(leader);
    for (path, acked, task) in streams {
        tokio::time::timeout(Duration::from_secs(60), task).await.expect("the stream ends").expect("stream");
        let acked = acked.load(Ordering::SeqCst);
        if path == "/on-leader" {
            assert!(acked < count, "{path}: the stream outlived the kill (acked all {count}); make it longer");
        }
        let applied = applied_creates(survivor, path).await;
        let ks: Vec<usize> = applied.iter().map(|(k, _)| *k).collect();
        assert_eq!(ks, (0..ks.len()).collect::<Vec<_>>(), "{path}: applied without a gap");
        assert!(ks.len() >= acked, "{path}: {acked} acknowledged, {} applied", ks.len());
        assert!(applied.windows(2).all(|w| w[0].1 < w[1].1), "{path}: applied in the order sent");
        eprintln!("{path}: {acked} acknowledged before the connection failed, {} applied", ks.len());
    }
}

/// A connection the exactly-once table forgot while it was idle (more other clients wrote
/// since its last write than the table holds: every etcd request takes a client id) has its
/// next write refused as out of order. Its writes in flight start over under a new client id
/// and the client notices nothing: a pipelined stream on a follower and one on the leader,
/// every reply in order and every write applied once (versions and sequential names count
/// them), and each member says it started over once.
#[tokio::test]
async fn writes_of_a_connection_the_table_forgot_start_over_unnoticed() {
    let mut cluster = Cluster::start_with(3, with_zk()).await;
    let leader = cluster.leader().await;
    let on = [(leader + 1) % cluster.len(), leader];
    let mut sessions = Vec::new();
    for i in on {
        // A 40 s session (20 ticks, the most a server grants) outlives the etcd load below
        // between pings.
        let (mut tx, mut rx, _) = zk::connect_with_timeout(cluster.members[i].zk_port, 40_000).await.expect("connect");
        let known = create(&format!("/known-{i}"), CreateMode::Persistent);
        response(&known, &zk::call(&mut tx, &mut rx, &known).await.expect("a first write"));
        sessions.push((i, tx, rx));
    }
    let others = StoreConfig::default().sessions_max + 1_000;
    let endpoints = cluster.endpoints().join(",");
    let load = std::thread::spawn(move || {
        let total = others.to_string();
        let args = ["bench", "--endpoints", &endpoints, "--total", &total, "--no-progress", "--json", "put"];
        std::process::Command::new(env!("CARGO_BIN_EXE_tally")).args(args).args(["--val-size", "8"]).output()
    });
    while !load.is_finished() {
        for (_, tx, rx) in &mut sessions {
            zk::call(tx, rx, &Request::Ping).await.expect("a ping");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let out = load.join().expect("the load's thread").expect("run tally bench");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("tally bench's JSON report");
    assert_eq!(report["successes"], others as u64, "every put of the load succeeded: {report}");
    let streams: Vec<_> = sessions
        .into_iter()
        .map(|(i, tx, rx)| {
            let path = format!("/forgotten-{i}");
            tokio::spawn(async move { send_and_check(tx, rx, &path, stream(&path, 40)).await })
        })
        .collect();
    for stream in streams {
        tokio::time::timeout(Duration::from_secs(60), stream).await.expect("in time").expect("stream");
    }
    for i in on {
        let start_overs = support::metric(&cluster.members[i].endpoint(), "tally_zk_start_overs_total");
        assert_eq!(start_overs, 1, "member {i}: the connection's writes started over once");
    }
}
