//! Membership changes of real `tally server` processes (etcd's Cluster service): growing 3 to 5
//! through learners, shrinking 5 to 3, removing the leader, replacing a member killed with
//! kill -9, etcd's refusals, and etcdctl's `member` commands.
//!
//! Throughout each test a client writes (sequential puts with request ids of its own, retried
//! against other members on errors) and reads (linearizable reads of the last acknowledged
//! key); at the end every acknowledged write is on every member, exactly once.

mod support;

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::etcdctl::{etcdctl_bin, Etcdctl};
use support::{channel, eventually, Cluster};
use tally_proto::etcdserverpb::kv_client::KvClient;
use tally_proto::etcdserverpb::{
    Member, MemberAddRequest, MemberListRequest, MemberPromoteRequest, MemberRemoveRequest, PutRequest, RangeRequest,
    RangeResponse,
};
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::Code;

/// How long a new member may take to catch up with a few thousand small keys.
const CATCH_UP: Duration = Duration::from_secs(30);
/// How long a removed member may take to notice and stop.
const EXIT: Duration = Duration::from_secs(15);

fn prefix_range(prefix: &str, serializable: bool) -> RangeRequest {
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().expect("non-empty prefix") += 1;
    RangeRequest { key: prefix.as_bytes().to_vec(), range_end: end, serializable, ..Default::default() }
}

async fn range(kv: &mut KvClient<Channel>, req: RangeRequest) -> Result<RangeResponse, tonic::Status> {
    let mut req = tonic::Request::new(req);
    req.set_timeout(Duration::from_secs(5));
    kv.range(req).await.map(|r| r.into_inner())
}

fn key(i: usize) -> String {
    format!("k{i:06}")
}

/// A put carrying our own request identity, so retrying it anywhere applies it once.
fn identified_put(client_id: u64, seq: u64, key: &str, value: &str) -> tonic::Request<PutRequest> {
    let mut req = tonic::Request::new(PutRequest { key: key.into(), value: value.into(), ..Default::default() });
    req.set_timeout(Duration::from_secs(4));
    req.metadata_mut().insert("tally-client-id", client_id.to_string().parse().unwrap());
    req.metadata_mut().insert("tally-seq", seq.to_string().parse().unwrap());
    req
}

/// Client URLs the load uses; tests add members once they are voters and drop removed ones.
type Endpoints = Arc<Mutex<Vec<String>>>;

/// A KV client for the `at`-th endpoint (modulo their number), one channel per URL.
fn client_at(endpoints: &Endpoints, cache: &mut HashMap<String, KvClient<Channel>>, at: usize) -> KvClient<Channel> {
    let url = {
        let list = endpoints.lock().unwrap();
        list[at % list.len()].clone()
    };
    cache.entry(url.clone()).or_insert_with(|| KvClient::new(channel(&url))).clone()
}

/// The client load: one writer, one reader.
struct Load {
    endpoints: Endpoints,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
    writer: JoinHandle<(usize, usize)>,
    reader: JoinHandle<(u64, u64)>,
}

static CLIENT_IDS: AtomicU64 = AtomicU64::new(1);

impl Load {
    fn start(endpoints: Vec<String>, at: usize) -> Load {
        let endpoints: Endpoints = Arc::new(Mutex::new(endpoints));
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicUsize::new(0));
        let client_id =
            0x3e3b_0000_0000_0000 | (u64::from(std::process::id()) << 16) | CLIENT_IDS.fetch_add(1, Ordering::Relaxed);
        let writer = tokio::spawn(writer(endpoints.clone(), at, client_id, stop.clone(), acked.clone()));
        let reader = tokio::spawn(reader(endpoints.clone(), at + 1, stop.clone(), acked.clone()));
        Load { endpoints, stop, acked, writer, reader }
    }

    fn acked(&self) -> usize {
        self.acked.load(Ordering::Relaxed)
    }

    fn add_endpoint(&self, url: String) {
        self.endpoints.lock().unwrap().push(url);
    }

    fn remove_endpoint(&self, url: &str) {
        self.endpoints.lock().unwrap().retain(|u| u != url);
    }

    /// Waits until `n` more writes than now are acknowledged.
    async fn more(&self, n: usize, what: &str) {
        let target = self.acked() + n;
        let acked = self.acked.clone();
        eventually(Duration::from_secs(30), what, || {
            let acked = acked.clone();
            async move { (acked.load(Ordering::Relaxed) >= target).then_some(()) }
        })
        .await;
    }

    /// Stops the load; returns how many writes were acknowledged.
    async fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let (written, retries) = self.writer.await.expect("writer task");
        let (reads, read_errors) = self.reader.await.expect("reader task");
        eprintln!("{written} writes acknowledged ({retries} retried attempts), {reads} reads ({read_errors} failed)");
        assert!(reads > 0, "no read succeeded during the test");
        written
    }
}

/// Writes `key(i)` = `v{i}` for i = 0, 1, ... until `stop`, each retried (same request id)
/// against the next endpoint until it succeeds. Returns (acknowledged writes, retries).
async fn writer(
    endpoints: Endpoints,
    mut at: usize,
    client_id: u64,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
) -> (usize, usize) {
    let mut cache = HashMap::new();
    let mut retries = 0;
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let key = key(i);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mut kv = client_at(&endpoints, &mut cache, at);
            match kv.put(identified_put(client_id, i as u64 + 1, &key, &format!("v{i}"))).await {
                Ok(_) => break,
                Err(status) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "write of {key} failed for 30 s; last error: {status:?}"
                    );
                    retries += 1;
                    at += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        i += 1;
        acked.store(i, Ordering::Relaxed);
    }
    (i, retries)
}

/// Linearizable reads of the last acknowledged key, through every endpoint in turn: each must
/// see it. Returns (successful reads, failed attempts).
async fn reader(endpoints: Endpoints, mut at: usize, stop: Arc<AtomicBool>, acked: Arc<AtomicUsize>) -> (u64, u64) {
    let mut cache = HashMap::new();
    let (mut reads, mut errors) = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        let n = acked.load(Ordering::Relaxed);
        if n == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        let mut kv = client_at(&endpoints, &mut cache, at);
        at += 1;
        let k = key(n - 1);
        match range(&mut kv, RangeRequest { key: k.clone().into_bytes(), ..Default::default() }).await {
            Ok(resp) => {
                assert_eq!(resp.kvs.len(), 1, "a linearizable read missed {k}, acknowledged before the read began");
                assert_eq!(resp.kvs[0].value, format!("v{}", n - 1).into_bytes());
                reads += 1;
            }
            Err(_) => {
                errors += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (reads, errors)
}

/// Keys `pre/<n>` written before a test's load (more entries than the leader keeps in its log
/// behind a snapshot, 5000).
const PRELOAD: usize = 7000;

/// Writes `n` keys `pre/<i>` of `value_bytes` through every member, 64 at a time.
async fn preload(cluster: &Cluster, n: usize, value_bytes: usize) {
    let clients: Vec<KvClient<Channel>> = (0..cluster.len()).map(|i| cluster.kv(i)).collect();
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let mut kv = clients[t % clients.len()].clone();
            let next = next.clone();
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    let value = vec![b'p'; value_bytes];
                    let req = PutRequest { key: format!("pre/{i:06}").into(), value, ..Default::default() };
                    kv.put(req).await.expect("preload put");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("preload task");
    }
}

/// Waits until member `i`'s local (serializable) state has at least the writes acknowledged
/// so far.
async fn wait_caught_up(cluster: &Cluster, i: usize, load: &Load) {
    let target = load.acked() as i64;
    let kv = cluster.kv(i);
    let what = format!("{} to catch up to {target} writes", cluster.members[i].name);
    eventually(CATCH_UP, &what, || {
        let mut kv = kv.clone();
        async move {
            let resp = range(&mut kv, RangeRequest { count_only: true, ..prefix_range("k", true) }).await.ok()?;
            (resp.count >= target).then_some(())
        }
    })
    .await;
}

/// Every acknowledged write is on each of `members` (their local state, once caught up),
/// exactly once, and all copies are the same.
async fn verify(cluster: &Cluster, written: usize, members: &[usize]) {
    let mut first: Option<RangeResponse> = None;
    for &i in members {
        let kv = cluster.kv(i);
        let name = &cluster.members[i].name;
        let want = written as i64;
        let resp = eventually(Duration::from_secs(20), &format!("{name} to have every write"), || {
            let mut kv = kv.clone();
            async move { range(&mut kv, prefix_range("k", true)).await.ok().filter(|r| r.count >= want) }
        })
        .await;
        assert_eq!(resp.count, want, "{name} has more keys than were acknowledged");
        for (n, kv) in resp.kvs.iter().enumerate() {
            assert_eq!(
                String::from_utf8_lossy(&kv.key),
                key(n),
                "{name}: keys are not exactly the acknowledged writes"
            );
            assert_eq!(kv.version, 1, "{name}: {} was applied {} times", key(n), kv.version);
            assert_eq!(kv.value, format!("v{n}").into_bytes(), "{name}: value of {}", key(n));
        }
        match &first {
            None => first = Some(resp),
            Some(f) => assert_eq!(f.kvs, resp.kvs, "{name}'s copy differs from the first member's"),
        }
    }
}

async fn member_list(cluster: &Cluster, i: usize) -> Vec<Member> {
    let mut req = tonic::Request::new(MemberListRequest { linearizable: false });
    req.set_timeout(Duration::from_secs(5));
    let mut members = cluster.cluster_client(i).member_list(req).await.expect("member list").into_inner().members;
    members.sort_by(|a, b| a.name.cmp(&b.name));
    members
}

async fn add(cluster: &Cluster, via: usize, peer_url: String, is_learner: bool) -> Result<Member, tonic::Status> {
    let mut req = tonic::Request::new(MemberAddRequest { peer_ur_ls: vec![peer_url.clone()], is_learner });
    req.set_timeout(Duration::from_secs(10));
    let resp = cluster.cluster_client(via).member_add(req).await?.into_inner();
    let member = resp.member.expect("MemberAddResponse.member");
    assert_eq!(member.peer_ur_ls, [peer_url]);
    assert_eq!(member.is_learner, is_learner);
    assert!(resp.members.iter().any(|m| m.id == member.id), "the new member is not in the response's list");
    Ok(member)
}

async fn promote(cluster: &Cluster, via: usize, id: u64) -> Result<Vec<Member>, tonic::Status> {
    let mut req = tonic::Request::new(MemberPromoteRequest { id });
    req.set_timeout(Duration::from_secs(10));
    Ok(cluster.cluster_client(via).member_promote(req).await?.into_inner().members)
}

async fn remove(cluster: &Cluster, via: usize, id: u64) -> Result<Vec<Member>, tonic::Status> {
    let mut req = tonic::Request::new(MemberRemoveRequest { id });
    req.set_timeout(Duration::from_secs(10));
    Ok(cluster.cluster_client(via).member_remove(req).await?.into_inner().members)
}

/// MemberAdd as a learner through `via`, start the new member (state `existing`, an initial
/// cluster of `current` plus itself), wait until it caught up, promote it. Returns its slot.
async fn add_learner_and_promote(
    cluster: &mut Cluster,
    load: &Load,
    current: &[usize],
    name: &str,
    via: usize,
) -> usize {
    let slot = cluster.new_member(name);
    let member = add(cluster, via, cluster.members[slot].peer_url(), true).await.expect("MemberAdd of a learner");
    cluster.set_id(slot, member.id);
    let mut with_new = current.to_vec();
    with_new.push(slot);
    let initial_cluster = cluster.initial_cluster_of(&with_new);
    cluster.spawn_with(slot, &initial_cluster, "existing");
    wait_caught_up(cluster, slot, load).await;
    // A learner serves (serializable) reads but is not a voter yet.
    let listed = member_list(cluster, via).await;
    let me = listed.iter().find(|m| m.id == member.id).expect("the learner in MemberList");
    assert!(me.is_learner, "{name} is listed as a voter before its promotion: {me:?}");

    let members = promote(cluster, via, member.id).await.expect("MemberPromote of a caught-up learner");
    let me = members.iter().find(|m| m.id == member.id).expect("the promoted member in the response");
    assert!(!me.is_learner, "{name} is still a learner after MemberPromote: {me:?}");
    slot
}

/// Waits until removed member `gone` stopped by itself; otherwise fails with what it and the
/// others report (Status: leader, term, commit and applied index; its own MemberList).
async fn assert_stops_after_removal(cluster: &mut Cluster, gone: usize) {
    if cluster.wait_exit(gone, EXIT).await.is_some() {
        return;
    }
    let describe = |s: Option<tally_proto::etcdserverpb::StatusResponse>| match s {
        Some(s) => format!(
            "member {:x}: leader {:x}, term {}, commit index {}, applied index {}",
            s.header.map_or(0, |h| h.member_id),
            s.leader,
            s.raft_term,
            s.raft_index,
            s.raft_applied_index
        ),
        None => "no answer".into(),
    };
    let mut report = format!("removed member: {}\n", describe(cluster.status(gone).await));
    let list = member_list(cluster, gone).await;
    report.push_str(&format!(
        "  its MemberList: {:?}\n",
        list.iter().map(|m| format!("{} {:x}", m.name, m.id)).collect::<Vec<_>>()
    ));
    for i in 0..cluster.len() {
        if i != gone && cluster.members[i].is_running() {
            report.push_str(&format!("{}: {}\n", cluster.members[i].name, describe(cluster.status(i).await)));
        }
    }
    panic!(
        "{} ({:x}) still runs {EXIT:?} after its removal was acknowledged:\n{report}",
        cluster.members[gone].name,
        cluster.id(gone)
    );
}

/// Every member in `which` lists exactly `which` as voters, with names and client URLs.
async fn assert_listed_voters(cluster: &Cluster, which: &[usize]) {
    /// id, name, peer URLs, client URLs, is learner.
    type Row = (u64, String, Vec<String>, Vec<String>, bool);
    let mut want: Vec<Row> = which
        .iter()
        .map(|&i| {
            let m = &cluster.members[i];
            (cluster.id(i), m.name.clone(), vec![m.peer_url()], vec![m.client_url()], false)
        })
        .collect();
    want.sort_by(|a, b| a.1.cmp(&b.1));
    for &i in which {
        // Names and client URLs of the others arrive when they connect to this member.
        let got = eventually(Duration::from_secs(10), &format!("{}'s MemberList", cluster.members[i].name), || {
            let want = want.clone();
            async move {
                let got: Vec<_> = member_list(cluster, i)
                    .await
                    .into_iter()
                    .map(|m| (m.id, m.name, m.peer_ur_ls, m.client_ur_ls, m.is_learner))
                    .collect();
                (got == want).then_some(got)
            }
        })
        .await;
        assert_eq!(got, want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grow_from_3_to_5_through_learners() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let load = Load::start(cluster.endpoints(), follower);
    load.more(30, "30 writes before the first change").await;

    let mut current = vec![0, 1, 2];
    // n4 through a follower (forwarded to the leader), n5 through the leader.
    for (name, via) in [("n4", follower), ("n5", leader)] {
        let slot = add_learner_and_promote(&mut cluster, &load, &current, name, via).await;
        current.push(slot);
        load.add_endpoint(cluster.members[slot].client_url());
        load.more(30, &format!("30 writes after promoting {name}")).await;
    }
    assert_listed_voters(&cluster, &current).await;
    let leader_id = cluster.wait_for_leader().await;
    assert!(cluster.index_of(leader_id).is_some(), "the leader {leader_id:x} is not one of the five");
    for i in 0..5 {
        let status = cluster.status(i).await.expect("status");
        assert_eq!(status.leader, leader_id, "member {i} names another leader");
        assert_eq!(status.header.unwrap().member_id, cluster.id(i));
    }
    // The new voters count: with two of the original members down, writes still commit.
    let leader = cluster.leader().await;
    let old: Vec<usize> = (0..3).filter(|&i| i != leader).take(2).collect();
    for &i in &old {
        cluster.kill9(i);
    }
    load.more(30, "30 writes with two of the original three down").await;
    for &i in &old {
        cluster.spawn(i);
    }
    let written = load.finish().await;
    verify(&cluster, written, &current).await;
    cluster.assert_running();
}

/// MemberList with `linearizable` (etcd 3.5) waits for a read index: a member that was frozen
/// while a change went through the others lists it in its first answer after it thaws. (Without
/// the flag it answers from its own table, which may not have caught up yet.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linearizable_member_list_includes_a_change_made_through_another_member() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let frozen = (leader + 1) % 3;
    cluster.signal(frozen, "-STOP");
    let slot = cluster.new_member("n4");
    let added = add(&cluster, leader, cluster.members[slot].peer_url(), true).await.expect("member add");
    cluster.signal(frozen, "-CONT");
    let mut req = tonic::Request::new(MemberListRequest { linearizable: true });
    req.set_timeout(Duration::from_secs(5));
    let listed = cluster.cluster_client(frozen).member_list(req).await.expect("member list").into_inner().members;
    assert!(
        listed.iter().any(|m| m.id == added.id && m.is_learner),
        "the thawed member's linearizable list lacks the learner {:x}: {listed:?}",
        added.id
    );
    cluster.assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shrink_from_5_to_3() {
    let mut cluster = Cluster::start(5).await;
    let leader = cluster.leader().await;
    let followers: Vec<usize> = (0..5).filter(|&i| i != leader).collect();
    let load = Load::start(cluster.endpoints(), followers[0]);
    load.more(30, "30 writes before the first removal").await;

    // The first removal through the leader, the second through a follower that stays.
    let (gone_a, gone_b, stays) = (followers[0], followers[1], followers[2]);
    for (gone, via, left) in [(gone_a, leader, 4), (gone_b, stays, 3)] {
        let id = cluster.id(gone);
        let members = remove(&cluster, via, id).await.expect("MemberRemove of a follower");
        assert_eq!(members.len(), left, "MemberRemove's answer lists {members:?}");
        assert!(members.iter().all(|m| m.id != id), "the removed member is still listed");
        load.remove_endpoint(&cluster.members[gone].client_url());
        assert_stops_after_removal(&mut cluster, gone).await;
        load.more(20, "20 writes after a removal").await;
    }
    // A removed member refuses to start again.
    let offset = cluster.log_len(gone_a);
    cluster.spawn(gone_a);
    let status = cluster.wait_exit(gone_a, EXIT).await.expect("a removed member must not start again");
    assert!(!status.success(), "a removed member exited with {status} on restart");
    let log = cluster.log_since(gone_a, offset);
    assert!(log.contains("was removed from the cluster"), "restart of a removed member says:\n{log}");
    // Its id cannot come back (ids derive from the peer URLs).
    let err = add(&cluster, stays, cluster.members[gone_a].peer_url(), true)
        .await
        .expect_err("MemberAdd of a removed member's peer URL");
    assert_eq!((err.code(), err.message()), (Code::FailedPrecondition, "etcdserver: ID removed"), "{err:?}");

    let remaining: Vec<usize> = (0..5).filter(|&i| i != gone_a && i != gone_b).collect();
    assert_listed_voters(&cluster, &remaining).await;
    cluster.wait_for_leader().await;
    let written = load.finish().await;
    verify(&cluster, written, &remaining).await;
    cluster.assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_the_leader() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let leader_id = cluster.id(leader);
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    // Writes start at the leader, so the removal cuts off requests it is handling.
    let load = Load::start(cluster.endpoints(), leader);
    load.more(30, "30 writes before the removal").await;

    let members = remove(&cluster, followers[0], leader_id).await.expect("MemberRemove of the leader");
    assert_eq!(members.len(), 2, "{members:?}");
    assert_stops_after_removal(&mut cluster, leader).await;
    load.remove_endpoint(&cluster.members[leader].client_url());

    let new_leader = eventually(Duration::from_secs(10), "a new leader among the two left", || {
        let cluster = &cluster;
        async move { cluster.agreed_leader().await.filter(|&l| l != leader_id) }
    })
    .await;
    assert!(followers.iter().any(|&f| cluster.id(f) == new_leader), "new leader {new_leader:x} is not a follower");
    load.more(50, "50 writes after the leader's removal").await;
    assert_listed_voters(&cluster, &followers).await;
    let written = load.finish().await;
    verify(&cluster, written, &followers).await;
    cluster.assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_a_member_killed_with_kill_9() {
    let mut cluster = Cluster::start(3).await;
    // Snapshots often, and a history longer than the log the leader keeps behind its snapshot:
    // the replacement must start from a snapshot, then follow the log. (etcd's schedule: every
    // 500 entries, whatever the state's size.)
    cluster.restart_founders_with(&["--snapshot-count", "500", "--snapshot-log-ratio", "0"]).await;
    preload(&cluster, PRELOAD, 64).await;
    let victim = cluster.leader().await;
    let victim_id = cluster.id(victim);
    let load = Load::start(cluster.endpoints(), (victim + 1) % 3);
    load.more(30, "30 writes before the kill").await;

    cluster.kill9(victim);
    load.remove_endpoint(&cluster.members[victim].client_url());
    let survivors: Vec<usize> = (0..3).filter(|&i| i != victim).collect();
    eventually(Duration::from_secs(10), "a new leader among the survivors", || {
        let cluster = &cluster;
        async move { cluster.agreed_leader().await.filter(|&l| l != victim_id) }
    })
    .await;
    load.more(20, "20 writes after the kill").await;

    let members = remove(&cluster, survivors[0], victim_id).await.expect("MemberRemove of the dead member");
    assert_eq!(members.len(), 2, "{members:?}");
    load.more(20, "20 writes after the removal").await;

    // The replacement: a new name, a new peer URL (so a new id), an empty data directory.
    let fresh = add_learner_and_promote(&mut cluster, &load, &survivors, "n4", survivors[1]).await;
    assert_ne!(cluster.id(fresh), victim_id);
    load.add_endpoint(cluster.members[fresh].client_url());
    load.more(30, "30 writes after the replacement").await;
    let mut current = survivors.clone();
    current.push(fresh);
    assert_listed_voters(&cluster, &current).await;
    assert!(!cluster.snapshot_files(fresh).is_empty(), "the replacement caught up without a snapshot");
    let resp = range(&mut cluster.kv(fresh), RangeRequest { count_only: true, ..prefix_range("pre/", true) })
        .await
        .expect("count of preloaded keys on the replacement");
    assert_eq!(resp.count, PRELOAD as i64, "the replacement lacks preloaded keys");

    // The dead member comes back on its old data directory: it is told it was removed, and stops.
    let offset = cluster.log_len(victim);
    cluster.spawn(victim);
    let status = cluster.wait_exit(victim, EXIT).await;
    let log = cluster.log_since(victim, offset);
    assert!(status.is_some(), "the removed member restarted and keeps running {EXIT:?} later; its log:\n{log}");
    assert!(log.contains("was removed from the cluster"), "the removed member's log:\n{log}");

    cluster.wait_for_leader().await;
    let written = load.finish().await;
    verify(&cluster, written, &current).await;
    assert_listed_voters(&cluster, &current).await;
    cluster.assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_catches_up_from_a_snapshot_streamed_in_chunks() {
    let mut cluster = Cluster::start(3).await;
    // etcd's schedule (a snapshot every 500 entries, whatever the state's size), so that the
    // log the learner needs is compacted away.
    cluster.restart_founders_with(&["--snapshot-count", "500", "--snapshot-log-ratio", "0"]).await;
    // About 6 MiB of state: a snapshot of several 1 MiB chunks.
    const KEYS: usize = 6000;
    preload(&cluster, KEYS, 1024).await;
    let leader = cluster.leader().await;
    let load = Load::start(cluster.endpoints(), leader);
    load.more(20, "20 writes before the learner").await;

    let slot = cluster.new_member("n4");
    let member = add(&cluster, leader, cluster.members[slot].peer_url(), true).await.expect("MemberAdd of a learner");
    cluster.set_id(slot, member.id);
    let initial_cluster = cluster.initial_cluster_of(&[0, 1, 2, slot]);
    cluster.spawn_with(slot, &initial_cluster, "existing");
    wait_caught_up(&cluster, slot, &load).await;
    let resp = range(&mut cluster.kv(slot), RangeRequest { count_only: true, ..prefix_range("pre/", true) })
        .await
        .expect("count of preloaded keys on the learner");
    assert_eq!(resp.count, KEYS as i64, "the learner lacks preloaded keys");
    assert!(!cluster.snapshot_files(slot).is_empty(), "the learner caught up without a snapshot");
    // The snapshot came in one stream of several chunks (the receiver logs its size).
    let log = cluster.log_since(slot, 0);
    let received = log.lines().find(|l| l.contains("received a snapshot")).unwrap_or_else(|| panic!("{log}"));
    let bytes: usize = received
        .split_whitespace()
        .find_map(|w| w.strip_prefix("bytes="))
        .and_then(|b| b.parse().ok())
        .unwrap_or_else(|| panic!("no size in {received:?}"));
    assert!(bytes > 4 << 20, "a snapshot of {bytes} bytes needs no chunks");
    assert!(!log.contains("receiving a snapshot failed"), "{log}");

    // Then it follows the log.
    load.more(30, "30 writes after the catch-up").await;
    let written = load.finish().await;
    verify(&cluster, written, &[0, 1, 2, slot]).await;
    cluster.assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_use_etcds_codes_and_messages() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let load = Load::start(cluster.endpoints(), leader);
    load.more(20, "20 writes before the refusals").await;

    let expect = |result: Result<(), tonic::Status>, code: Code, message: &str, what: &str| {
        let err = result.expect_err(what);
        assert_eq!((err.code(), err.message()), (code, message), "{what}: {err:?}");
    };
    const NOT_FOUND: &str = "etcdserver: member not found";
    const URL_EXISTS: &str = "etcdserver: Peer URLs already exists";
    // Each refusal through the leader and through a follower (which forwards to the leader).
    for via in [leader, followers[0]] {
        let unknown = 0xdead_beef_u64;
        expect(remove(&cluster, via, unknown).await.map(drop), Code::NotFound, NOT_FOUND, "remove an unknown id");
        expect(promote(&cluster, via, unknown).await.map(drop), Code::NotFound, NOT_FOUND, "promote an unknown id");
        expect(
            promote(&cluster, via, cluster.id(followers[1])).await.map(drop),
            Code::FailedPrecondition,
            "etcdserver: can only promote a learner member",
            "promote a voter",
        );
        for is_learner in [false, true] {
            expect(
                add(&cluster, via, cluster.members[followers[1]].peer_url(), is_learner).await.map(drop),
                Code::FailedPrecondition,
                URL_EXISTS,
                "add an existing peer URL",
            );
        }
    }

    // A learner that never started is not in sync.
    let learner = cluster.new_member("n4");
    let member = add(&cluster, followers[0], cluster.members[learner].peer_url(), true).await.expect("add a learner");
    cluster.set_id(learner, member.id);
    let extra = cluster.new_member("n5");
    for via in [leader, followers[0]] {
        expect(
            promote(&cluster, via, member.id).await.map(drop),
            Code::FailedPrecondition,
            "etcdserver: can only promote a learner member which is in sync with leader",
            "promote a learner that never connected",
        );
        expect(
            add(&cluster, via, cluster.members[extra].peer_url(), true).await.map(drop),
            Code::FailedPrecondition,
            "etcdserver: too many learner members in cluster",
            "add a second learner",
        );
        expect(
            add(&cluster, via, cluster.members[learner].peer_url(), false).await.map(drop),
            Code::FailedPrecondition,
            URL_EXISTS,
            "add the learner's peer URL again",
        );
    }
    // A learner can always be removed; then the next learner is welcome.
    let members = remove(&cluster, followers[1], member.id).await.expect("remove the learner");
    assert_eq!(members.len(), 3);
    let extra_member =
        add(&cluster, leader, cluster.members[extra].peer_url(), true).await.expect("a learner after the removal");
    remove(&cluster, leader, extra_member.id).await.expect("remove the second learner");
    load.more(20, "20 writes after the learner changes").await;

    // One of three down: removing either of the two live ones would leave 1 started voter of 2.
    let dead = followers[1];
    cluster.kill9(dead);
    load.remove_endpoint(&cluster.members[dead].client_url());
    // The leader counts a member as started while it heard from it within an election timeout.
    tokio::time::sleep(Duration::from_secs(2)).await;
    const NOT_ENOUGH: &str = "etcdserver: re-configuration failed due to not enough started members";
    for (target, via) in [(followers[0], leader), (followers[0], followers[0]), (leader, followers[0])] {
        expect(
            remove(&cluster, via, cluster.id(target)).await.map(drop),
            Code::FailedPrecondition,
            NOT_ENOUGH,
            &format!("remove live {} through {}", cluster.members[target].name, cluster.members[via].name),
        );
    }
    load.more(20, "20 writes after the refusals").await;
    let listed = member_list(&cluster, leader).await;
    let ids: Vec<u64> = listed.iter().map(|m| m.id).collect();
    let mut want: Vec<u64> = (0..3).map(|i| cluster.id(i)).collect();
    let mut got = ids.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want, "a refused change altered the membership: {listed:?}");
    assert!(listed.iter().all(|m| !m.is_learner));

    let written = load.finish().await;
    let live: Vec<usize> = (0..3).filter(|&i| i != dead).collect();
    verify(&cluster, written, &live).await;
    cluster.spawn(dead);
    verify(&cluster, written, &[dead]).await;
    cluster.assert_running();
}

// ----- etcdctl -----

fn etcdctl(endpoints: &str, args: &[&str]) -> String {
    // Membership changes wait for the new configuration to apply: allow them longer.
    Etcdctl { endpoints: endpoints.to_string(), command_timeout: "15s" }.ok(args)
}

/// `etcdctl member list` (simple): id, status, name, peer URLs, client URLs, is learner.
fn etcdctl_member_list(endpoints: &str) -> Vec<(u64, String, String, String, String, bool)> {
    let out = etcdctl(endpoints, &["member", "list"]);
    let mut rows: Vec<_> = out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split(", ").map(str::trim).collect();
            assert_eq!(f.len(), 6, "unexpected `member list` line: {line:?}");
            let id = u64::from_str_radix(f[0], 16).unwrap_or_else(|_| panic!("member id in {line:?}"));
            (id, f[1].to_string(), f[2].to_string(), f[3].to_string(), f[4].to_string(), f[5] == "true")
        })
        .collect();
    rows.sort_by(|a, b| a.2.cmp(&b.2));
    rows
}

/// The hex id after `word` in a line such as `Member  8e9e05c52164694d added to cluster ...`.
fn hex_after(out: &str, word: &str) -> u64 {
    let mut it = out.split_whitespace();
    while let Some(w) = it.next() {
        if w == word {
            let id = it.next().unwrap_or_else(|| panic!("nothing after {word:?} in {out:?}"));
            return u64::from_str_radix(id, 16).unwrap_or_else(|_| panic!("bad id {id:?} in {out:?}"));
        }
    }
    panic!("no {word:?} in {out:?}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_member_add_promote_remove_list() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let load = Load::start(cluster.endpoints(), leader);
    load.more(20, "20 writes before the changes").await;
    let endpoints = cluster.etcdctl_endpoints();
    let version = Command::new(etcdctl_bin()).arg("version").output().expect("etcdctl version");
    eprintln!("{}", String::from_utf8_lossy(&version.stdout));

    let rows = etcdctl_member_list(&endpoints);
    let want: Vec<_> = (0..3)
        .map(|i| {
            let m = &cluster.members[i];
            (cluster.id(i), "started".to_string(), m.name.clone(), m.peer_url(), m.client_url(), false)
        })
        .collect();
    assert_eq!(rows, want, "etcdctl member list");

    // member add --learner prints the new member's id and the flags to start it with.
    let slot = cluster.new_member("n4");
    let peer_url = cluster.members[slot].peer_url();
    let out = etcdctl(&endpoints, &["member", "add", "n4", "--learner", &format!("--peer-urls={peer_url}")]);
    let id = hex_after(&out, "Member");
    assert!(out.contains(" added to cluster "), "member add printed:\n{out}");
    let env: HashMap<&str, &str> =
        out.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.trim(), v.trim().trim_matches('"'))).collect();
    assert_eq!(env.get("ETCD_NAME"), Some(&"n4"), "member add printed:\n{out}");
    assert_eq!(env.get("ETCD_INITIAL_ADVERTISE_PEER_URLS"), Some(&peer_url.as_str()), "{out}");
    assert_eq!(env.get("ETCD_INITIAL_CLUSTER_STATE"), Some(&"existing"), "{out}");
    let initial_cluster = env.get("ETCD_INITIAL_CLUSTER").expect("ETCD_INITIAL_CLUSTER").to_string();
    let mut entries: Vec<&str> = initial_cluster.split(',').collect();
    entries.sort();
    let mut want_entries: Vec<String> = (0..4).map(|i| cluster.initial_cluster_of(&[i])).collect();
    want_entries.sort();
    assert_eq!(entries, want_entries, "ETCD_INITIAL_CLUSTER printed by member add:\n{out}");
    cluster.set_id(slot, id);
    // etcdctl 3.4 asks for a serializable list, from whichever member it picks: one that has
    // not applied the change yet answers without it, as etcd's would.
    let endpoints_ref = &endpoints;
    let new_row = eventually(Duration::from_secs(10), "etcdctl to list the new member", || async move {
        etcdctl_member_list(endpoints_ref).into_iter().find(|r| r.0 == id)
    })
    .await;
    assert!(new_row.5, "the added member is not listed as a learner: {new_row:?}");

    // Start it exactly as etcdctl said.
    cluster.spawn_with(slot, &initial_cluster, "existing");
    wait_caught_up(&cluster, slot, &load).await;
    let n4 = &cluster.members[slot];
    let want_n4 = (id, "started".to_string(), "n4".to_string(), n4.peer_url(), n4.client_url(), true);
    let (endpoints_ref, want_ref) = (&endpoints, &want_n4);
    eventually(Duration::from_secs(10), "etcdctl to list n4 as a started learner", || async move {
        etcdctl_member_list(endpoints_ref).into_iter().find(|r| r.0 == id).filter(|r| r == want_ref)
    })
    .await;

    let out = etcdctl(&endpoints, &["member", "promote", &format!("{id:x}")]);
    assert_eq!(hex_after(&out, "Member"), id, "{out}");
    assert!(out.contains(" promoted in cluster "), "member promote printed:\n{out}");
    load.add_endpoint(cluster.members[slot].client_url());
    load.more(20, "20 writes after the promotion").await;

    // member list -w json: four voters, once the member etcdctl asks has applied the promotion.
    let json = eventually(Duration::from_secs(10), "etcdctl to list four voters", || async move {
        let json: serde_json::Value =
            serde_json::from_str(&etcdctl(endpoints_ref, &["member", "list", "-w", "json"])).expect("member list json");
        let members = json["members"].as_array().expect("members array");
        let learner = |m: &serde_json::Value| m.get("isLearner").and_then(|v| v.as_bool()).unwrap_or(false);
        (members.len() == 4 && !members.iter().any(learner)).then_some(json)
    })
    .await;
    for m in json["members"].as_array().expect("members array") {
        let mid = m["ID"].as_u64().expect("ID");
        let i = cluster.index_of(mid).unwrap_or_else(|| panic!("unknown member {m}"));
        assert_eq!(m["name"], cluster.members[i].name.as_str(), "{m}");
        assert_eq!(m["clientURLs"][0], cluster.members[i].client_url().as_str(), "{m}");
    }

    // member remove of one of the original followers.
    let gone = (0..3).find(|&i| i != leader).unwrap();
    let gone_id = cluster.id(gone);
    let out = etcdctl(&endpoints, &["member", "remove", &format!("{gone_id:x}")]);
    assert_eq!(hex_after(&out, "Member"), gone_id, "{out}");
    assert!(out.contains(" removed from cluster "), "member remove printed:\n{out}");
    load.remove_endpoint(&cluster.members[gone].client_url());
    assert_stops_after_removal(&mut cluster, gone).await;
    let current: Vec<usize> = (0..4).filter(|&i| i != gone).collect();
    let remaining_endpoints = current.iter().map(|&i| cluster.members[i].endpoint()).collect::<Vec<_>>().join(",");
    let rows = etcdctl_member_list(&remaining_endpoints);
    let mut want: Vec<_> = current
        .iter()
        .map(|&i| {
            let m = &cluster.members[i];
            (cluster.id(i), "started".to_string(), m.name.clone(), m.peer_url(), m.client_url(), false)
        })
        .collect();
    want.sort_by(|a, b| a.2.cmp(&b.2));
    assert_eq!(rows, want, "etcdctl member list after the removal");

    load.more(20, "20 writes after the removal").await;
    let written = load.finish().await;
    verify(&cluster, written, &current).await;
    cluster.assert_running();
}
