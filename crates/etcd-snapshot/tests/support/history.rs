//! The history the test writes through etcdctl: every kind of change etcd records.

use super::etcd::Etcd;

/// Keys written in bulk (in transactions) so that the key bucket needs branch pages.
pub const BULK_KEYS: usize = 2000;
pub const BULK_PREFIX: &str = "bulk/";
/// etcd's default --max-txn-ops is 128.
const BULK_PER_TXN: usize = 125;
/// Over a 4 KiB page, so its leaf needs overflow pages.
pub const BIG_LEN: usize = 10_000;

/// What the test needs to know about the history it wrote.
pub struct Written {
    pub compacted_at: i64,
    /// The revision of the transaction `put t1; put t2; del a`.
    pub txn_revision: i64,
    /// The revision at which lease `revoked` was revoked, deleting `doomed/1` and `doomed/2`.
    pub revoke_revision: i64,
    pub big_value: String,
}

/// The store's revision now.
pub fn revision(etcd: &Etcd) -> i64 {
    etcd.json(&["get", "no-such-key"])["header"]["revision"].as_i64().expect("header revision")
}

/// Grants a lease and returns its id in etcdctl's hex form.
fn grant(etcd: &Etcd, ttl: u32) -> String {
    let id = etcd.json(&["lease", "grant", &ttl.to_string()])["ID"].as_i64().expect("lease ID");
    format!("{id:x}")
}

/// Runs a transaction; `txn` is etcdctl's text form (compares, blank, success ops, blank,
/// failure ops, blank). Returns its revision.
fn txn(etcd: &Etcd, txn: &str) -> i64 {
    let out = etcd.ctl_with(&["txn", "-w", "json"], Some(txn));
    let v: serde_json::Value = serde_json::from_str(&out).expect("txn JSON");
    v["header"]["revision"].as_i64().expect("txn revision")
}

pub fn write(etcd: &Etcd) -> Written {
    // Overwrites, a delete and a re-creation, all to be compacted.
    let early: [&[&str]; 5] =
        [&["put", "a", "1"], &["put", "a", "2"], &["put", "b", "x"], &["del", "b"], &["put", "b", "y"]];
    for args in early {
        etcd.ctl(args);
    }
    for i in 1..=3 {
        etcd.ctl(&["put", &format!("p/{i}"), "gone"]);
    }
    etcd.ctl(&["del", "p/", "--prefix"]);
    let txn_revision = txn(etcd, "mod(\"a\") > \"0\"\n\nput t1 one\nput t2 two\ndel a\n\nput never x\n\n");
    etcd.ctl(&["put", "a", "3"]);

    let compacted_at = revision(etcd) - 1;
    etcd.ctl(&["compact", &compacted_at.to_string()]);

    // After the compaction: leases (one with keys, one without, one revoked), deletes, a big
    // value, and many keys.
    let kept = grant(etcd, 300);
    grant(etcd, 600);
    let revoked = grant(etcd, 900);
    etcd.ctl(&["put", "leased/1", "l1", "--lease", &kept]);
    etcd.ctl(&["put", "leased/2", "l2", "--lease", &kept]);
    etcd.ctl(&["put", "doomed/1", "d1", "--lease", &revoked]);
    etcd.ctl(&["put", "doomed/2", "d2", "--lease", &revoked]);
    etcd.ctl(&["lease", "revoke", &revoked]);
    let revoke_revision = revision(etcd);
    etcd.ctl(&["del", "t2"]);
    etcd.ctl(&["put", "a", "4"]);
    etcd.ctl(&["put", "leased/1", "l1b", "--lease", &kept]);
    let big_value: String = "0123456789".repeat(BIG_LEN / 10);
    etcd.ctl_with(&["put", "big"], Some(&big_value));
    for chunk in (0..BULK_KEYS).collect::<Vec<_>>().chunks(BULK_PER_TXN) {
        let puts: String = chunk.iter().map(|i| format!("put {BULK_PREFIX}{i:04} value-{i}\n")).collect();
        txn(etcd, &format!("\n{puts}\n\n"));
    }
    etcd.ctl(&["put", "last", "z"]);
    Written { compacted_at, txn_revision, revoke_revision, big_value }
}
