//! The whole of an etcd snapshot that a state machine needs, read from its buckets.

use std::collections::BTreeMap;
use std::path::Path;

use crate::auth::{read_auth, EtcdAuth};
use crate::bolt::Db;
use crate::buckets::{lookup, pairs, required_pairs};
use crate::error::SnapshotError;
use crate::keys::{read_revisions, Revisioned};
use crate::leases::read_leases;
use crate::members::{read_members, read_removed, ConfState, Member};
use crate::meta::read_meta;
use crate::records::{KeyValue, Lease};
use crate::trailer::{strip_trailer, HashCheck};

/// An etcd v3 backend's contents.
///
/// To rebuild etcd's store: replay `revisions` in order, attach each live key to its lease,
/// compact at [`compact_revision`](Self::compact_revision), and continue from
/// [`current_revision`](Self::current_revision); that is what etcd does when it restores one.
/// Take each put's `create_revision` and `version` as stored rather than counting them: a
/// key's first revision held is often mid-way through its life, the earlier ones compacted
/// away. It can even be a tombstone, which etcd keeps in its index so that watchers from that
/// revision still see the delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdSnapshot {
    /// Every revision the backend still holds, in (main, sub) order. Compaction at revision R
    /// leaves, of the changes up to R, only each live key's latest put.
    pub revisions: Vec<Revisioned>,
    /// Every lease, in id order (ids compare as big-endian bytes, so negative ids come last).
    pub leases: Vec<Lease>,
    /// The revision of the last finished compaction; 0 if none.
    pub finished_compact_revision: i64,
    /// The revision of the last compaction requested; above the finished one when the snapshot
    /// was taken mid-compaction (etcd finishes it on restore). 0 if none.
    pub scheduled_compact_revision: i64,
    /// The index of the last raft entry applied to this backend.
    pub consistent_index: u64,
    /// The raft term of that entry (0 from backends older than etcd 3.5).
    pub term: u64,
    /// The raft configuration (etcd 3.5 and later).
    pub conf_state: Option<ConfState>,
    pub members: Vec<Member>,
    pub removed_members: Vec<u64>,
    /// The cluster version etcd last agreed on, e.g. "3.5.0".
    pub cluster_version: Option<String>,
    /// The backend's schema version (etcd 3.6 and later).
    pub storage_version: Option<String>,
    /// Authentication: whether it is on, its revision, users and roles.
    pub auth: EtcdAuth,
}

impl EtcdSnapshot {
    /// Reads the snapshot file at `path`.
    pub fn read_file(path: impl AsRef<Path>, check: HashCheck) -> Result<EtcdSnapshot, SnapshotError> {
        let path = path.as_ref();
        let file = std::fs::read(path).map_err(|source| SnapshotError::Io { path: path.to_owned(), source })?;
        EtcdSnapshot::from_bytes(&file, check)
    }

    /// Reads a snapshot from the bytes of its file.
    pub fn from_bytes(file: &[u8], check: HashCheck) -> Result<EtcdSnapshot, SnapshotError> {
        let db = Db::open(strip_trailer(file, check)?)?;
        let meta = read_meta(&required_pairs(&db, "meta")?)?;
        let cluster = pairs(&db, "cluster")?.unwrap_or_default();
        let bucket = |name| pairs(&db, name).map(Option::unwrap_or_default);
        let auth = read_auth(&bucket("auth")?, &bucket("authUsers")?, &bucket("authRoles")?)?;
        Ok(EtcdSnapshot {
            revisions: read_revisions(&required_pairs(&db, "key")?)?,
            leases: read_leases(&required_pairs(&db, "lease")?)?,
            finished_compact_revision: meta.finished_compact_revision,
            scheduled_compact_revision: meta.scheduled_compact_revision,
            consistent_index: meta.consistent_index,
            term: meta.term,
            conf_state: meta.conf_state,
            members: read_members(&pairs(&db, "members")?.unwrap_or_default())?,
            removed_members: read_removed(&pairs(&db, "members_removed")?.unwrap_or_default())?,
            cluster_version: lookup(&cluster, "clusterVersion").map(|v| String::from_utf8_lossy(v).into_owned()),
            storage_version: meta.storage_version,
            auth,
        })
    }

    /// The revision the store is compacted at once restored: the scheduled compaction, which
    /// etcd completes on restore, if it is ahead of the finished one.
    pub fn compact_revision(&self) -> i64 {
        self.finished_compact_revision.max(self.scheduled_compact_revision)
    }

    /// The store's revision, as etcd computes it on restore: the highest main revision held,
    /// or the compaction revision if that is higher, which happens when compaction removed the
    /// latest changes (older etcd dropped a tombstone at the compacted revision; a compaction
    /// interrupted before it recorded its finish can drop one too, etcd-io/etcd#17780).
    pub fn current_revision(&self) -> i64 {
        let highest = self.revisions.last().map_or(0, |r| r.main);
        highest.max(self.compact_revision())
    }

    /// Each key's latest value, in key order, leaving out deleted keys: what a range over the
    /// whole keyspace at the current revision returns.
    pub fn live(&self) -> Vec<&KeyValue> {
        let mut latest = BTreeMap::new();
        for rev in &self.revisions {
            latest.insert(&rev.kv.key[..], rev);
        }
        latest.into_values().filter(|rev| !rev.tombstone).map(|rev| &rev.kv).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(mains: &[i64], finished: i64, scheduled: i64) -> EtcdSnapshot {
        let put = |&main: &i64| Revisioned {
            main,
            sub: 0,
            tombstone: false,
            kv: KeyValue { key: b"k".to_vec(), mod_revision: main, ..Default::default() },
        };
        EtcdSnapshot {
            revisions: mains.iter().map(put).collect(),
            leases: Vec::new(),
            finished_compact_revision: finished,
            scheduled_compact_revision: scheduled,
            consistent_index: 0,
            term: 0,
            conf_state: None,
            members: Vec::new(),
            removed_members: Vec::new(),
            cluster_version: None,
            storage_version: None,
            auth: EtcdAuth::default(),
        }
    }

    #[test]
    fn current_revision_is_the_highest_held_or_compacted() {
        assert_eq!(snapshot(&[], 0, 0).current_revision(), 0);
        assert_eq!(snapshot(&[3, 7], 5, 5).current_revision(), 7);
        // Older etcd (3.5.11, say; before etcd-io/etcd#18274) compacted a tombstone at the
        // compacted revision away, so the store's revision can be above every revision left.
        assert_eq!(snapshot(&[3], 9, 9).current_revision(), 9);
        // A compaction scheduled but not finished when the snapshot was taken (etcd-io/etcd#17780).
        assert_eq!(snapshot(&[3], 2, 9).current_revision(), 9);
        assert_eq!(snapshot(&[3], 2, 9).compact_revision(), 9);
    }
}
