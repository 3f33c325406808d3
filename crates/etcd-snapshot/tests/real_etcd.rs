//! Reads snapshots of a real etcd 3.5 member and compares them with what that member serves.
//!
//! Needs etcd and etcdctl as `scripts/etcd-ref 3.5` builds them (once, from the Go module proxy,
//! then cached under ~/.cache/tally); without them the test fails rather than skips.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use base64::prelude::*;
use serde_json::Value;
use tally_etcd_snapshot::{EtcdSnapshot, HashCheck, KeyValue, Permission, SnapshotError};

use support::etcd::Etcd;
use support::history::{self, Written, BIG_LEN, BULK_KEYS, BULK_PREFIX};

fn bytes(v: &Value) -> Vec<u8> {
    BASE64_STANDARD.decode(v.as_str().unwrap_or_default()).expect("base64 from etcdctl")
}

/// An integer field of etcdctl's JSON, which leaves out zeros.
fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn key_value(v: &Value) -> KeyValue {
    KeyValue {
        key: bytes(&v["key"]),
        create_revision: int(&v["create_revision"]),
        mod_revision: int(&v["mod_revision"]),
        version: int(&v["version"]),
        value: bytes(&v["value"]),
        lease: int(&v["lease"]),
    }
}

fn text(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

#[test]
fn snapshot_matches_what_etcd_serves() {
    let mut etcd = Etcd::start();
    let written = history::write(&etcd);
    let path = etcd.save_snapshot("snapshot.db");
    let snap = EtcdSnapshot::read_file(&path, HashCheck::Verify).expect("read the snapshot");

    check_live_keys(&etcd, &snap);
    check_compaction(&etcd, &snap, &written);
    check_history(&etcd, &snap, &written);
    check_changes_within_a_revision(&snap, &written);
    check_leases(&etcd, &snap);
    check_cluster(&etcd, &snap);
    check_big_and_bulk(&snap, &written);
    check_damaged_copy_is_refused(&path);

    // The member's own database file, without a trailer, holds the same once etcd is stopped.
    etcd.stop();
    let raw = EtcdSnapshot::read_file(etcd.member_db(), HashCheck::Skip).expect("read member/snap/db");
    assert_eq!(raw.revisions, snap.revisions);
    assert_eq!(raw.leases, snap.leases);
    assert!(matches!(
        EtcdSnapshot::read_file(etcd.member_db(), HashCheck::Verify),
        Err(SnapshotError::MissingTrailer { .. })
    ));
}

/// A range over the whole keyspace gives exactly the snapshot's live keys, and its header
/// revision is the snapshot's current revision.
fn check_live_keys(etcd: &Etcd, snap: &EtcdSnapshot) {
    let all = etcd.json(&["get", "", "--prefix"]);
    assert_eq!(snap.current_revision(), int(&all["header"]["revision"]));
    let served: Vec<KeyValue> = all["kvs"].as_array().expect("kvs").iter().map(key_value).collect();
    let live = snap.live();
    assert_eq!(live.len(), served.len(), "live keys in the snapshot vs served by etcd");
    for (got, want) in live.into_iter().zip(&served) {
        assert!(got == want, "key {}: snapshot has {got:?}, etcd serves {want:?}", text(&want.key));
    }
}

fn check_compaction(etcd: &Etcd, snap: &EtcdSnapshot, written: &Written) {
    let at = written.compacted_at;
    assert_eq!((snap.finished_compact_revision, snap.scheduled_compact_revision), (at, at));
    assert_eq!(snap.compact_revision(), at);
    // etcd agrees: it refuses reads below the compacted revision and serves reads at it.
    let below = etcd.run(&["get", "a", &format!("--rev={}", at - 1)], None);
    assert!(!below.status.success() && String::from_utf8_lossy(&below.stderr).contains("compacted"));
    etcd.ctl(&["get", "a", &format!("--rev={at}")]);

    // Up to the compacted revision only each key's latest change is left, and that is a put,
    // or a delete made at the compacted revision itself: etcd keeps such a tombstone so that
    // watchers from that revision see the delete (etcd-io/etcd#18274, in 3.5 since #18474;
    // 3.5.11 still dropped it).
    let old: Vec<_> = snap.revisions.iter().filter(|r| r.main <= at).collect();
    assert!(old.iter().all(|r| !r.tombstone || r.main == at), "a tombstone survived compaction: {old:?}");
    let keys: BTreeSet<_> = old.iter().map(|r| &r.kv.key).collect();
    assert_eq!(keys.len(), old.len(), "a key has two revisions at or below the compacted one");
    // Every revision after it is there.
    let mains: BTreeSet<i64> = snap.revisions.iter().map(|r| r.main).filter(|&m| m > at).collect();
    assert_eq!(mains, (at + 1..=snap.current_revision()).collect());
}

/// Each revision the snapshot holds (but the bulk ones) is what etcd serves at that revision:
/// the key's value then, or no key for a tombstone.
fn check_history(etcd: &Etcd, snap: &EtcdSnapshot, written: &Written) {
    let revisions = snap.revisions.iter().filter(|r| !r.kv.key.starts_with(BULK_PREFIX.as_bytes()));
    for r in revisions {
        let key = text(&r.kv.key);
        // A revision kept from before the compaction is read at the compacted revision.
        let at = r.main.max(written.compacted_at);
        let served = etcd.json(&["get", &key, &format!("--rev={at}")]);
        let kvs = served["kvs"].as_array().cloned().unwrap_or_default();
        if r.tombstone {
            assert!(kvs.is_empty(), "{key} is deleted at {at}, but etcd serves {kvs:?}");
        } else {
            assert_eq!(kvs.len(), 1, "{key} at {at}");
            assert_eq!(key_value(&kvs[0]), r.kv, "{key} at {at}");
        }
    }
}

/// Changes made by one request share its main revision and are numbered by sub revision.
fn check_changes_within_a_revision(snap: &EtcdSnapshot, written: &Written) {
    let at = |main: i64| -> Vec<(i64, String, bool)> {
        snap.revisions.iter().filter(|r| r.main == main).map(|r| (r.sub, text(&r.kv.key), r.tombstone)).collect()
    };
    // The history compacted at this very revision, so its delete stays.
    assert_eq!(at(written.txn_revision), vec![(0, "t1".into(), false), (1, "t2".into(), false), (2, "a".into(), true)]);
    // Revoking a lease deletes its keys in one revision, in key order.
    assert_eq!(at(written.revoke_revision), vec![(0, "doomed/1".into(), true), (1, "doomed/2".into(), true)]);
    let tombstone = snap.revisions.iter().find(|r| r.tombstone).expect("a tombstone");
    assert_eq!(
        tombstone.kv,
        KeyValue { key: tombstone.kv.key.clone(), ..Default::default() },
        "a tombstone holds only its key"
    );
}

/// The snapshot has the leases `lease list` shows, with their granted TTLs and keys.
fn check_leases(etcd: &Etcd, snap: &EtcdSnapshot) {
    let listed = etcd.json(&["lease", "list"]);
    let served: BTreeSet<i64> = listed["leases"].as_array().expect("leases").iter().map(|l| int(&l["id"])).collect();
    let ids: BTreeSet<i64> = snap.leases.iter().map(|l| l.id).collect();
    assert_eq!(ids, served);
    assert_eq!(ids.len(), 2, "the lease with keys and the one without; the revoked one is gone");
    for lease in &snap.leases {
        let ttl = etcd.json(&["lease", "timetolive", &format!("{:x}", lease.id), "--keys"]);
        assert_eq!(lease.ttl, int(&ttl["granted-ttl"]), "lease {:x}", lease.id);
        // etcd persists a remaining TTL only with lease checkpointing, which is off by default.
        assert_eq!(lease.remaining_ttl, 0);
        let keys: BTreeSet<Vec<u8>> = ttl["keys"].as_array().map(|k| k.iter().map(bytes).collect()).unwrap_or_default();
        let attached: BTreeSet<Vec<u8>> =
            snap.live().into_iter().filter(|kv| kv.lease == lease.id).map(|kv| kv.key.clone()).collect();
        assert_eq!(attached, keys, "keys of lease {:x}", lease.id);
    }
}

/// Membership, raft position and versions match what the member reports.
fn check_cluster(etcd: &Etcd, snap: &EtcdSnapshot) {
    let listed = etcd.json(&["member", "list"]);
    let members = listed["members"].as_array().expect("members");
    assert_eq!(snap.members.len(), members.len());
    for (got, want) in snap.members.iter().zip(members) {
        assert_eq!(got.id, want["ID"].as_u64().expect("member ID"));
        assert_eq!(got.name, want["name"].as_str().unwrap_or_default());
        let urls = |v: &Value| -> Vec<String> {
            v.as_array().map(|a| a.iter().filter_map(|u| u.as_str().map(String::from)).collect()).unwrap_or_default()
        };
        assert_eq!(got.peer_urls, urls(&want["peerURLs"]));
        assert_eq!(got.client_urls, urls(&want["clientURLs"]));
        assert!(!got.is_learner);
    }
    assert!(snap.removed_members.is_empty());
    assert_eq!(snap.conf_state.as_ref().expect("confState").voters, vec![snap.members[0].id]);

    let status = &etcd.json(&["endpoint", "status"])[0]["Status"];
    assert_eq!(snap.consistent_index, status["raftAppliedIndex"].as_u64().expect("raftAppliedIndex"));
    assert_eq!(snap.term, status["raftTerm"].as_u64().expect("raftTerm"));
    assert_eq!(snap.cluster_version.as_deref(), Some("3.5.0"));
    assert_eq!(snap.storage_version, None, "etcd 3.5 writes no storage version");
    assert!(!snap.auth.enabled);
    assert_eq!(snap.auth.revision, 1, "etcd writes revision 1 when it first opens its auth store");
}

/// The big value cannot fit one 4 KiB page, so its leaf has overflow pages; the bulk
/// revisions fill dozens of leaves, so the key bucket has branch pages. Both read back whole.
fn check_big_and_bulk(snap: &EtcdSnapshot, written: &Written) {
    let live = snap.live();
    let big = live.iter().find(|kv| kv.key == b"big").expect("big");
    assert_eq!(big.value.len(), BIG_LEN);
    assert_eq!(big.value, written.big_value.as_bytes());
    let bulk: Vec<_> = live.iter().filter(|kv| kv.key.starts_with(BULK_PREFIX.as_bytes())).collect();
    assert_eq!(bulk.len(), BULK_KEYS);
    for (i, kv) in bulk.iter().enumerate() {
        assert_eq!(kv.key, format!("{BULK_PREFIX}{i:04}").as_bytes());
        assert_eq!(kv.value, format!("value-{i}").as_bytes());
    }
}

fn check_damaged_copy_is_refused(path: &Path) {
    let mut file = std::fs::read(path).expect("read snapshot");
    let middle = file.len() / 2;
    file[middle] ^= 0x01;
    let err = EtcdSnapshot::from_bytes(&file, HashCheck::Verify).unwrap_err();
    assert!(matches!(err, SnapshotError::HashMismatch { .. }), "{err}");
}

/// Compacting at a delete keeps the delete's tombstone but not the put before it, so the
/// tombstone is all that is left of the key; the store's revision is the delete's.
#[test]
fn compaction_at_a_delete_keeps_its_tombstone() {
    let etcd = Etcd::start();
    etcd.ctl(&["put", "z", "1"]);
    etcd.ctl(&["del", "z"]);
    let deleted_at = history::revision(&etcd);
    etcd.ctl(&["compact", &deleted_at.to_string()]);
    let snap = EtcdSnapshot::read_file(etcd.save_snapshot("compacted.db"), HashCheck::Verify).expect("read");
    let left: Vec<_> = snap.revisions.iter().map(|r| (r.main, text(&r.kv.key), r.tombstone)).collect();
    assert_eq!(left, vec![(deleted_at, "z".to_string(), true)]);
    assert_eq!(snap.compact_revision(), deleted_at);
    assert_eq!(snap.current_revision(), deleted_at);
    assert_eq!(snap.current_revision(), history::revision(&etcd));
    assert!(snap.live().is_empty());
}

const ROOT: &str = "--user=root:root-pw";

/// Users (one without a password, one with two roles granted out of order), roles with
/// permissions, auth enabled: the snapshot holds what etcd reports, hashes as etcd made them.
#[test]
fn auth_users_roles_and_revision_match_what_etcd_serves() {
    let etcd = Etcd::start();
    for args in [
        &["user", "add", "root:root-pw"][..],
        &["user", "add", "alice:alice-pw"],
        &["user", "add", "bob", "--no-password"],
        &["role", "add", "ops"],
        &["role", "add", "dev"],
        &["role", "grant-permission", "dev", "--prefix", "readwrite", "a/"],
        &["role", "grant-permission", "dev", "read", "k"],
        &["role", "grant-permission", "ops", "write", "m", "p"],
        &["user", "grant-role", "alice", "ops"],
        &["user", "grant-role", "alice", "dev"],
        &["user", "grant-role", "root", "root"],
        &["auth", "enable"],
    ] {
        etcd.ctl(args);
    }
    let path = etcd.dir.path().join("auth.db");
    etcd.ctl(&[ROOT, "snapshot", "save", path.to_str().expect("utf-8 temp path")]);
    let auth = EtcdSnapshot::read_file(&path, HashCheck::Verify).expect("read the snapshot").auth;

    assert!(auth.enabled);
    let status = etcd.json(&[ROOT, "auth", "status"]);
    assert_eq!(auth.revision, status["authRevision"].as_u64().expect("authRevision"));
    let names: Vec<String> = auth.users.iter().map(|u| text(&u.name)).collect();
    assert_eq!(names.join("\n") + "\n", etcd.ctl(&[ROOT, "user", "list"]));
    for user in &auth.users {
        let served = etcd.json(&[ROOT, "user", "get", &text(&user.name)]);
        // etcdctl's JSON leaves out an empty list.
        let roles: Vec<&str> = served["roles"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        assert_eq!(user.roles, roles, "roles of {}", text(&user.name));
    }
    let alice = &auth.users[0];
    assert_eq!(alice.roles, ["dev", "ops"], "etcd keeps a user's roles sorted");
    assert!(alice.password.starts_with(b"$2a$10$") && alice.password.len() == 60, "a bcrypt hash of cost 10");
    let bob = &auth.users[1];
    assert!(bob.password.is_empty() && bob.options.is_some_and(|o| o.no_password));

    let role_names: Vec<String> = auth.roles.iter().map(|r| text(&r.name)).collect();
    assert_eq!(role_names.join("\n") + "\n", etcd.ctl(&[ROOT, "role", "list"]));
    for role in &auth.roles {
        let served = etcd.json(&[ROOT, "role", "get", &text(&role.name)]);
        let perms: Vec<Permission> =
            served["perm"].as_array().map(|p| p.iter().map(permission).collect()).unwrap_or_default();
        assert_eq!(role.key_permission, perms, "permissions of {}", text(&role.name));
    }
    assert_eq!(auth.roles[0].key_permission.len(), 2, "dev's two permissions");
}

/// A permission as etcdctl prints it in JSON (zero fields left out).
fn permission(v: &Value) -> Permission {
    Permission { perm_type: int(&v["permType"]) as i32, key: bytes(&v["key"]), range_end: bytes(&v["range_end"]) }
}
