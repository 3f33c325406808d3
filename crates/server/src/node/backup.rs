//! Backups. A backup file is the state machine's snapshot, framed and padded so that, as an
//! etcd snapshot, it is 32 bytes past a multiple of 512 and ends with the SHA-256 of the rest:
//! `etcdctl snapshot save` checks exactly that (its `hasChecksum`). `Maintenance.Snapshot`
//! streams it, so `etcdctl snapshot save` and `tally snapshot save` write it.
//!
//! Layout: magic `TALLYBAK`, the snapshot's length (u64, little-endian), the snapshot (the mvcc
//! crate's format), zero padding, SHA-256 of everything before it. `tally snapshot restore` builds the data directory
//! of one member of a new cluster from such a file, or from an etcd snapshot (a move from etcd:
//! every key keeps its revisions, version and lease; users, roles and auth carry over).

use std::path::Path;

use sha2::{Digest, Sha256};
use tally_etcd_snapshot::{EtcdAuth, EtcdSnapshot, HashCheck};
use tally_mvcc::{ImportedAuth, ImportedChange, ImportedHistory, SnapshotCopy, StateMachine};
use tally_proto::authpb;
use tally_raft::{ConfState, HardState, Persisted, Snapshot, SnapshotMeta};

use tally_node::cluster::ClusterSpec;
use tally_node::encode_snapshot;
use tally_node::members::Members;
use tally_node::persist::{Disk, DiskError};

const TRAILER_LEN: usize = 32;
const MAGIC: &[u8; 8] = b"TALLYBAK";
/// etcd's snapshot files are this many bytes, plus the trailer, times a whole number.
const SECTOR: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("snapshot file is too short to hold a SHA-256 trailer")]
    Short,
    #[error("snapshot file is truncated: it says it holds {0} bytes of state")]
    Truncated(u64),
    #[error("snapshot file is corrupt: its SHA-256 does not match its contents")]
    HashMismatch,
    #[error("not a Tally snapshot: {0}")]
    BadTally(#[from] tally_mvcc::SnapshotError),
    #[error("not a readable etcd snapshot either: {0}")]
    BadEtcd(#[from] tally_etcd_snapshot::SnapshotError),
    #[error("data directory {0} exists and is not empty")]
    DataDirInUse(String),
    #[error("{0}")]
    Disk(#[from] DiskError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Where a loaded snapshot came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Tally,
    Etcd,
}

/// The backup file of a state machine (see the layout above).
pub fn encode(copy: &SnapshotCopy) -> Vec<u8> {
    let mut file = MAGIC.to_vec();
    file.extend_from_slice(&[0; 8]);
    copy.snapshot_into(&mut file);
    let state_len = (file.len() - MAGIC.len() - 8) as u64;
    file[MAGIC.len()..MAGIC.len() + 8].copy_from_slice(&state_len.to_le_bytes());
    file.resize(file.len().div_ceil(SECTOR) * SECTOR, 0);
    let digest = Sha256::digest(&file);
    file.extend_from_slice(&digest);
    file
}

/// Reads a backup file: Tally's (checked against its SHA-256 unless `skip_hash_check`), or else
/// an etcd snapshot (`etcdctl snapshot save` output, or with `skip_hash_check` a member's
/// `member/snap/db`), whose history becomes a Tally state machine.
pub fn load(file: &[u8], skip_hash_check: bool) -> Result<(StateMachine, Origin), BackupError> {
    if file.starts_with(MAGIC) {
        let state = tally_state(file, skip_hash_check)?;
        return Ok((StateMachine::restore(state)?, Origin::Tally));
    }
    let check = if skip_hash_check { HashCheck::Skip } else { HashCheck::Verify };
    let etcd = EtcdSnapshot::from_bytes(file, check)?;
    Ok((from_etcd(etcd)?, Origin::Etcd))
}

/// The state machine snapshot inside a Tally backup file, its trailer checked.
fn tally_state(file: &[u8], skip_hash_check: bool) -> Result<&[u8], BackupError> {
    let split = file.len().checked_sub(TRAILER_LEN).ok_or(BackupError::Short)?;
    let (body, trailer) = file.split_at(split);
    if !skip_hash_check && Sha256::digest(body).as_slice() != trailer {
        return Err(BackupError::HashMismatch);
    }
    let len_bytes = body.get(MAGIC.len()..MAGIC.len() + 8).ok_or(BackupError::Short)?;
    let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes"));
    let start = MAGIC.len() + 8;
    let end = usize::try_from(len).ok().and_then(|n| start.checked_add(n)).filter(|&end| end <= body.len());
    end.map(|end| &body[start..end]).ok_or(BackupError::Truncated(len))
}

/// etcd's history, revision for revision, and its users and roles, as a state machine that has
/// applied entry 1.
fn from_etcd(etcd: EtcdSnapshot) -> Result<StateMachine, BackupError> {
    let current_revision = etcd.current_revision();
    let compact_revision = etcd.compact_revision();
    let changes = etcd
        .revisions
        .into_iter()
        .map(|r| ImportedChange {
            key: r.kv.key,
            main: r.main,
            sub: r.sub,
            create_revision: r.kv.create_revision,
            version: r.kv.version,
            lease: r.kv.lease,
            value: (!r.tombstone).then_some(r.kv.value),
        })
        .collect();
    let leases = etcd.leases.iter().map(|l| (l.id, l.ttl)).collect();
    let auth = imported_auth(etcd.auth);
    let history = ImportedHistory { changes, leases, current_revision, compact_revision, auth };
    Ok(StateMachine::import(history, 1)?)
}

/// etcd's auth store as Tally's: the same messages (authpb), read by the snapshot reader's own
/// copies of them. Passwords stay etcd's bcrypt hashes, which verify at the cost they were made.
fn imported_auth(auth: EtcdAuth) -> ImportedAuth {
    ImportedAuth {
        enabled: auth.enabled,
        revision: auth.revision,
        users: auth.users.into_iter().map(user).collect(),
        roles: auth.roles.into_iter().map(role).collect(),
    }
}

fn user(u: tally_etcd_snapshot::User) -> authpb::User {
    let options = u.options.map(|o| authpb::UserAddOptions { no_password: o.no_password });
    authpb::User { name: u.name, password: u.password, roles: u.roles, options }
}

fn role(r: tally_etcd_snapshot::Role) -> authpb::Role {
    let perm = |p: tally_etcd_snapshot::Permission| authpb::Permission {
        perm_type: p.perm_type,
        key: p.key,
        range_end: p.range_end,
    };
    authpb::Role { name: r.name, key_permission: r.key_permission.into_iter().map(perm).collect() }
}

/// Writes the data directory of member `name` of the new cluster `spec`: a snapshot of `sm`
/// carrying the new member table, as if every founder had applied it. Each member of the new
/// cluster is restored from the same file with its own `name`.
pub fn restore_member(sm: &StateMachine, spec: &ClusterSpec, data_dir: &Path) -> Result<(), BackupError> {
    if std::fs::read_dir(data_dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(BackupError::DataDirInUse(data_dir.display().to_string()));
    }
    let members = Members::from_spec(spec);
    let conf = ConfState { voters: spec.members.keys().copied().collect(), ..Default::default() };
    // The restored state counts as applied at its own index (at least 1): entries after it are new.
    let index = sm.applied_index().max(1);
    let meta = SnapshotMeta { index, term: 1, conf };
    let snapshot = Snapshot { meta, data: encode_snapshot(&members, &sm.copy_for_snapshot()) };
    let hard_state = HardState { term: 1, vote: 0, commit: index };
    Disk::restore(data_dir, &Persisted { hard_state, snapshot, entries: Vec::new() })?;
    Ok(())
}

/// What `tally snapshot status` prints.
#[derive(Debug)]
pub struct Status {
    pub origin: &'static str,
    pub revision: i64,
    pub compact_revision: i64,
    pub total_keys: u64,
    pub total_size: usize,
}

pub fn status(file: &[u8], skip_hash_check: bool) -> Result<Status, BackupError> {
    let (sm, origin) = load(file, skip_hash_check)?;
    Ok(Status {
        origin: match origin {
            Origin::Tally => "tally",
            Origin::Etcd => "etcd",
        },
        revision: sm.store.revision(),
        compact_revision: sm.store.compact_revision(),
        total_keys: sm.store.live_keys(),
        total_size: file.len(),
    })
}

#[cfg(test)]
mod tests {
    use tally_proto::etcdserverpb::PutRequest;

    use super::*;

    fn state() -> StateMachine {
        let mut sm = StateMachine::default();
        for i in 0..100 {
            let req = PutRequest { key: format!("k{i}").into(), value: vec![b'v'; i], ..Default::default() };
            sm.store.put(&req).unwrap();
        }
        sm
    }

    #[test]
    fn a_backup_has_the_shape_etcdctl_checks_and_loads_back() {
        let sm = state();
        let file = encode(&sm.copy_for_snapshot());
        assert_eq!(file.len() % SECTOR, TRAILER_LEN, "etcdctl's hasChecksum");
        let (back, origin) = load(&file, false).unwrap();
        assert_eq!(origin, Origin::Tally);
        assert_eq!(back.snapshot(), sm.snapshot());
    }

    #[test]
    fn damaged_backups_are_refused_with_a_reason() {
        let file = encode(&state().copy_for_snapshot());
        let mut flipped = file.clone();
        flipped[100] ^= 1;
        assert!(matches!(load(&flipped, false), Err(BackupError::HashMismatch)));
        assert!(load(&flipped, true).is_err(), "the state's own checksum still catches it");
        assert!(load(&file[..file.len() - 1], false).is_err());
        assert!(matches!(load(&file[..20], false), Err(BackupError::Short)));
        let mut long = file[..file.len() - TRAILER_LEN].to_vec();
        long[MAGIC.len()..MAGIC.len() + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        let digest = Sha256::digest(&long);
        long.extend_from_slice(&digest);
        assert!(matches!(load(&long, false), Err(BackupError::Truncated(u64::MAX))));
    }

    #[test]
    fn etcd_users_and_roles_carry_over_field_for_field() {
        use prost::Message;
        let user = tally_etcd_snapshot::User {
            name: b"alice".to_vec(),
            password: b"$2a$10$hash".to_vec(),
            roles: vec!["dev".into()],
            options: Some(tally_etcd_snapshot::UserAddOptions { no_password: true }),
        };
        let perm = tally_etcd_snapshot::Permission { perm_type: 2, key: b"a/".to_vec(), range_end: b"a0".to_vec() };
        let role = tally_etcd_snapshot::Role { name: b"dev".to_vec(), key_permission: vec![perm] };
        let etcd = EtcdAuth { enabled: true, revision: 9, users: vec![user.clone()], roles: vec![role.clone()] };
        let ours = imported_auth(etcd);
        assert!(ours.enabled);
        assert_eq!(ours.revision, 9);
        // Both are authpb on the wire: the same bytes mean no field was dropped or moved.
        assert_eq!(ours.users[0].encode_to_vec(), user.encode_to_vec());
        assert_eq!(ours.roles[0].encode_to_vec(), role.encode_to_vec());
    }

    #[test]
    fn an_etcd_snapshot_becomes_the_same_keys_and_revisions() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../etcd-snapshot/tests/fixtures/etcd-3.5.35.snapshot");
        let file = std::fs::read(path).unwrap();
        let etcd = EtcdSnapshot::from_bytes(&file, HashCheck::Verify).unwrap();
        let (sm, origin) = load(&file, false).unwrap();
        assert_eq!(origin, Origin::Etcd);
        assert_eq!(sm.store.revision(), etcd.current_revision());
        let every_key =
            tally_proto::etcdserverpb::RangeRequest { key: vec![0], range_end: vec![0], ..Default::default() };
        let ours = sm.store.range(&every_key).unwrap().kvs;
        let theirs = etcd.live();
        assert_eq!(ours.len(), theirs.len());
        for (a, b) in ours.iter().zip(theirs) {
            let a = (&a.key, a.create_revision, a.mod_revision, a.version, &a.value, a.lease);
            assert_eq!(a, (&b.key, b.create_revision, b.mod_revision, b.version, &b.value, b.lease));
        }
    }
}
