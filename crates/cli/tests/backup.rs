//! Backups and moves from etcd, end to end with etcd's own etcdctl (the reference 3.5.x that
//! `scripts/etcd-ref` builds): `etcdctl snapshot save` of a Tally cluster, `tally snapshot
//! restore` of it into a new cluster, and the same from a real etcd's snapshot. Either way every
//! key keeps its value, revisions, version and lease, the history since the compaction stays
//! readable, and the new cluster takes writes at the next revision. From an etcd with auth on,
//! its users log in to Tally with their etcd passwords and get the permissions etcd gave them.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::reference_etcd::{
    ctl, ctl_output as etcdctl, ctl_refused as refused, enable_auth_with_alice, etcd_bin_dir, start_etcd, ALICE, ROOT,
};
use support::{eventually, Cluster};

fn tally(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tally")).args(args).output().expect("run tally");
    assert!(out.status.success(), "tally {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A history with overwrites, deletes, a txn, a lease with keys, a compaction and writes after
/// it. Returns the compacted revision.
fn write_history(endpoints: &str) -> i64 {
    for i in 0..20 {
        ctl(endpoints, &["put", &format!("k/{i:02}"), &format!("v{i}")]);
    }
    for i in 0..10 {
        ctl(endpoints, &["put", &format!("k/{i:02}"), &format!("again{i}")]);
    }
    ctl(endpoints, &["del", "k/05"]);
    ctl(endpoints, &["del", "k/1", "--prefix"]);
    let lease = ctl(endpoints, &["lease", "grant", "3600"]);
    let lease = lease.split_whitespace().nth(1).expect("lease id").to_string();
    ctl(endpoints, &["put", "leased/a", "la", &format!("--lease={lease}")]);
    ctl(endpoints, &["put", "leased/b", "lb", &format!("--lease={lease}")]);
    let compacted = revision(endpoints) - 5;
    ctl(endpoints, &["compaction", &compacted.to_string()]);
    ctl(endpoints, &["put", "k/00", "after-compaction"]);
    ctl(endpoints, &["put", "big", &"x".repeat(10_000)]);
    compacted
}

fn revision(endpoints: &str) -> i64 {
    let v: Value = serde_json::from_str(&ctl(endpoints, &["get", "nothing", "-w", "json"])).unwrap();
    v["header"]["revision"].as_i64().unwrap()
}

/// Every key with its value, revisions, version and lease, as of `rev` (0: now).
fn keys_at(endpoints: &str, rev: i64) -> Vec<Value> {
    let out = ctl(endpoints, &["get", "", "--prefix", "-w", "json", &format!("--rev={rev}")]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v["kvs"].as_array().cloned().unwrap_or_default()
}

/// (revision, every key at every readable revision, leases with their TTL and keys).
fn everything(endpoints: &str, compacted: i64) -> (i64, Vec<Vec<Value>>, Vec<String>) {
    let now = revision(endpoints);
    let history = (compacted..=now).map(|rev| keys_at(endpoints, rev)).collect();
    let mut leases = Vec::new();
    for line in ctl(endpoints, &["lease", "list"]).lines().skip(1) {
        let id = line.split_whitespace().next().unwrap_or_default();
        let ttl = ctl(endpoints, &["lease", "timetolive", id, "--keys"]);
        // "lease X granted with TTL(3600s), remaining(3599s), attached keys([...])": all but remaining.
        let granted = ttl.split(", remaining(").next().unwrap_or_default();
        // etcd lists a lease's keys in its map's order: compare them as a set.
        let keys = ttl.split_once("), attached keys([").map_or("", |(_, keys)| keys.trim().trim_end_matches("])"));
        let mut keys: Vec<&str> = keys.split_whitespace().collect();
        keys.sort_unstable();
        leases.push(format!("{granted} attached keys {keys:?}"));
    }
    leases.sort();
    (now, history, leases)
}

/// Stops `cluster`, empties its members' data directories and restores each from `file`, then
/// starts them and waits for a leader.
async fn restore_into(cluster: &mut Cluster, file: &Path) {
    restore_members(cluster, file);
    cluster.start_all();
    cluster.wait_for_leader().await;
}

/// Stops `cluster`, empties its members' data directories and restores each from `file`.
fn restore_members(cluster: &mut Cluster, file: &Path) {
    cluster.stop_all();
    let (initial_cluster, token) = cluster.initial_cluster_and_token();
    let (initial_cluster, token) = (initial_cluster.to_string(), token.to_string());
    for m in &cluster.members {
        std::fs::remove_dir_all(&m.data_dir).expect("remove data dir");
        let data_dir = m.data_dir.to_str().unwrap();
        let peer = m.peer_url();
        tally(&[
            "snapshot",
            "restore",
            file.to_str().unwrap(),
            "--name",
            &m.name,
            "--initial-cluster",
            &initial_cluster,
            "--initial-cluster-token",
            &token,
            "--initial-advertise-peer-urls",
            &peer,
            "--data-dir",
            data_dir,
        ]);
    }
}

/// The new cluster serves `before` and takes a write at the next revision on every member.
async fn assert_same_and_writable(cluster: &Cluster, before: &(i64, Vec<Vec<Value>>, Vec<String>), compacted: i64) {
    let endpoints = cluster.etcdctl_endpoints();
    let after = everything(&endpoints, compacted);
    assert_eq!(after.0, before.0, "revision");
    assert!(before.2.iter().any(|l| l.contains("\"leased/a\", \"leased/b\"")), "leases read: {:?}", before.2);
    assert_eq!(after.2, before.2, "leases");
    for (i, (a, b)) in after.1.iter().zip(&before.1).enumerate() {
        assert_eq!(a, b, "keys at revision {}", compacted + i as i64);
    }
    let below = Command::new(etcd_bin_dir().join("etcdctl"))
        .arg(format!("--endpoints={endpoints}"))
        .args(["get", "k/00", &format!("--rev={}", compacted - 1)])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&below.stderr);
    assert!(!below.status.success() && err.contains("required revision has been compacted"), "{err}");
    ctl(&endpoints, &["put", "new", "write"]);
    for m in &cluster.members {
        let at = m.endpoint();
        eventually(Duration::from_secs(10), "every member at the new revision", || {
            let at = at.clone();
            async move { (revision(&at) == before.0 + 1).then_some(()) }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_snapshot_save_then_tally_restore_rebuilds_the_cluster() {
    let mut cluster = Cluster::start(3).await;
    let endpoints = cluster.etcdctl_endpoints();
    let compacted = write_history(&endpoints);
    let before = everything(&endpoints, compacted);
    let file = cluster.dir().join("backup.db");
    let first = cluster.members[0].endpoint();
    ctl(&first, &["snapshot", "save", file.to_str().unwrap()]);
    let status: Value =
        serde_json::from_str(&tally(&["snapshot", "status", "-w", "json", file.to_str().unwrap()])).unwrap();
    assert_eq!(status["revision"], before.0);
    assert_eq!(status["compactRevision"], compacted);
    assert_eq!(status["origin"], "tally");

    restore_into(&mut cluster, &file).await;
    assert_same_and_writable(&cluster, &before, compacted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_snapshot_is_refused_and_the_data_dir_left_alone() {
    let cluster = Cluster::start(1).await;
    let endpoint = cluster.members[0].endpoint();
    ctl(&endpoint, &["put", "a", "b"]);
    let file = cluster.dir().join("backup.db");
    tally(&["snapshot", "save", file.to_str().unwrap(), "--endpoints", &endpoint]);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[40] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let dir = cluster.dir().join("restored");
    let out = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["snapshot", "restore", file.to_str().unwrap(), "--data-dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SHA-256 does not match"), "{out:?}");
    assert!(!dir.exists() || std::fs::read_dir(&dir).unwrap().next().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_snapshot_moves_to_tally_with_every_revision() {
    let mut cluster = Cluster::start(3).await;
    let etcd = start_etcd(cluster.dir()).await;
    let compacted = write_history(&etcd.endpoint);
    let before = everything(&etcd.endpoint, compacted);
    let file = cluster.dir().join("etcd.db");
    ctl(&etcd.endpoint, &["snapshot", "save", file.to_str().unwrap()]);
    drop(etcd);
    let status: Value =
        serde_json::from_str(&tally(&["snapshot", "status", "-w", "json", file.to_str().unwrap()])).unwrap();
    assert_eq!(status["origin"], "etcd");
    assert_eq!(status["revision"], before.0);

    restore_into(&mut cluster, &file).await;
    assert_same_and_writable(&cluster, &before, compacted).await;
}

/// (enabled, auth revision) as `auth status` reports them.
fn auth_status(endpoint: &str) -> (bool, u64) {
    let v: Value = serde_json::from_str(&ctl(endpoint, &[ROOT, "auth", "status", "-w", "json"])).unwrap();
    (v["enabled"].as_bool().unwrap_or(false), v["authRevision"].as_u64().expect("authRevision"))
}

/// root, and alice whose role may read and write under a/ only; auth on; keys on both sides.
fn write_auth(endpoint: &str) {
    ctl(endpoint, &["put", "a/one", "1"]);
    ctl(endpoint, &["put", "b/one", "2"]);
    enable_auth_with_alice(endpoint);
    ctl(endpoint, &[ALICE, "put", "a/two", "2"]);
}

/// Member `endpoint` lets alice in with her etcd password, to a/ only, and no one in without
/// credentials.
fn assert_alice_confined(endpoint: &str, tag: &str) {
    assert_eq!(ctl(endpoint, &[ALICE, "get", "a/one"]), "a/one\n1\n");
    assert_eq!(ctl(endpoint, &[ALICE, "get", "--consistency=s", "a/two"]), "a/two\n2\n");
    ctl(endpoint, &[ALICE, "put", &format!("a/{tag}"), "x"]);
    let denied = "Error: etcdserver: permission denied";
    assert_eq!(refused(endpoint, &[ALICE, "put", &format!("b/{tag}"), "x"]), denied);
    assert_eq!(refused(endpoint, &[ALICE, "get", "b/one"]), denied);
    assert_eq!(refused(endpoint, &["get", "a/one"]), "Error: etcdserver: user name is empty");
    assert_eq!(
        refused(endpoint, &["--user=alice:wrong", "get", "a/one"]),
        "Error: etcdserver: authentication failed, invalid user ID or password"
    );
    assert_eq!(ctl(endpoint, &[ROOT, "get", "b/one"]), "b/one\n2\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_snapshot_with_auth_moves_its_users_passwords_and_permissions() {
    let mut cluster = Cluster::start(3).await;
    let etcd = start_etcd(cluster.dir()).await;
    write_auth(&etcd.endpoint);
    let etcd_auth = auth_status(&etcd.endpoint);
    assert!(etcd_auth.0, "etcd has auth on");
    let file = cluster.dir().join("etcd-auth.db");
    ctl(&etcd.endpoint, &[ROOT, "snapshot", "save", file.to_str().unwrap()]);
    drop(etcd);

    restore_members(&mut cluster, &file);
    // A cost below etcd's (10): etcd's hashes must verify at the cost they carry.
    let initial_cluster = cluster.initial_cluster_and_token().0.to_string();
    for i in 0..cluster.len() {
        cluster.spawn_args(i, &initial_cluster, "new", &["--bcrypt-cost", "4"]);
    }
    let first = cluster.members[0].endpoint();
    eventually(Duration::from_secs(30), "a leader that takes root's writes", || {
        std::future::ready(etcdctl(&first, &[ROOT, "put", "after-restore", "x"]).status.success().then_some(()))
    })
    .await;
    for (i, m) in cluster.members.iter().enumerate() {
        let endpoint = m.endpoint();
        assert_eq!(auth_status(&endpoint), etcd_auth, "auth status on member {i}");
        assert_alice_confined(&endpoint, &format!("m{i}"));
    }
    assert_eq!(ctl(&first, &[ROOT, "user", "list"]), "alice\nroot\n");
    assert_eq!(ctl(&first, &[ROOT, "user", "get", "alice"]), "User: alice\nRoles: dev\n");
}
