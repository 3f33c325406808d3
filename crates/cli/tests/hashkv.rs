//! HashKV, asked of etcd 3.5.35 and of every member of a Tally cluster after the same writes:
//! the same hash at every revision after the compaction. The hash covers every revision a
//! store holds, so it also checks that a compaction keeps what etcd keeps.
//!
//! At exactly the compacted revision etcd answers a hash it computed during the compaction, over
//! the revisions it then dropped; Tally keeps no such hash, so there the members agree with
//! each other but not with etcd (CONFORMANCE.md).

mod support;

use support::reference_etcd::{ctl, start_etcd};
use support::Cluster;

/// Writes without leases (lease ids are each server's own), then a compaction at the revision
/// of a delete, then more writes. Returns (compacted revision, current revision).
fn write(endpoint: &str) -> (i64, i64) {
    for i in 0..8 {
        ctl(endpoint, &["put", &format!("k{i}"), &format!("v{i}")]);
    }
    ctl(endpoint, &["put", "k1", "again"]);
    ctl(endpoint, &["del", "k2"]);
    ctl(endpoint, &["del", "k5", "k7"]);
    let compacted = revision(endpoint);
    ctl(endpoint, &["compaction", &compacted.to_string()]);
    ctl(endpoint, &["put", "k9", "after"]);
    ctl(endpoint, &["del", "k", "--prefix"]);
    ctl(endpoint, &["put", "k1", "reborn"]);
    (compacted, revision(endpoint))
}

fn revision(endpoint: &str) -> i64 {
    let out = ctl(endpoint, &["get", "nothing", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["header"]["revision"].as_i64().unwrap()
}

/// `etcdctl endpoint hashkv --rev`'s hash for one endpoint.
fn hashkv(endpoint: &str, rev: i64) -> String {
    let out = ctl(endpoint, &["endpoint", "hashkv", &format!("--rev={rev}")]);
    out.trim().rsplit(", ").next().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_and_etcd_agree_on_hashkv_at_every_revision() {
    let cluster = Cluster::start(3).await;
    let etcd = start_etcd(cluster.dir()).await;
    let tally = cluster.members[0].endpoint();
    let etcd_revs = write(&etcd.endpoint);
    assert_eq!(write(&tally), etcd_revs, "both make the same revisions");
    let (compacted, current) = etcd_revs;
    let at_compaction = hashkv(&tally, compacted);
    for m in &cluster.members {
        assert_eq!(hashkv(&m.endpoint(), compacted), at_compaction, "{} at the compacted revision", m.name);
    }
    for rev in compacted + 1..=current {
        let want = hashkv(&etcd.endpoint, rev);
        for m in &cluster.members {
            assert_eq!(hashkv(&m.endpoint(), rev), want, "{} at revision {rev}", m.name);
        }
    }
    assert_ne!(at_compaction, hashkv(&tally, current));

    // A watch from the compacted revision still gets the delete made at that revision.
    let want = watch_from(&etcd.endpoint, compacted);
    assert!(want.starts_with("DELETE\nk5\n"), "etcd: {want:?}");
    assert_eq!(watch_from(&tally, compacted), want);
}

/// What `etcdctl watch --prefix k --rev REV` prints within two seconds.
fn watch_from(endpoint: &str, rev: i64) -> String {
    let etcdctl = support::reference_etcd::etcd_bin_dir().join("etcdctl");
    let out = std::process::Command::new("timeout")
        .arg("2")
        .arg(etcdctl)
        .args([&format!("--endpoints={endpoint}"), "watch", "--prefix", "k", &format!("--rev={rev}")])
        .output()
        .expect("run etcdctl watch");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
