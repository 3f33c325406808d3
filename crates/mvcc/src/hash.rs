//! etcd's HashKV: a CRC-32C over every revision the store holds up to a revision, each written
//! as etcd's backend stores it (the revision as its key: main, '_', sub, big-endian, 't' for a
//! deletion; the marshaled KeyValue as its value), in revision order, after the bucket's name.
//! Members with the same history at the same revision get the same hash, and so does etcd 3.5
//! for the same writes (`tests/hashkv.rs` asks both).

use std::sync::Arc;

use prost::Message;
use tally_proto::mvccpb::KeyValue;

use crate::apply::StateMachine;
use crate::error::MvccError;
use crate::key_index::{Entry, KeyHistory};
use crate::snapshot::SnapshotCopy;

/// What HashKV answers: the hash, the compacted revision, and the revision hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvHash {
    pub hash: u32,
    pub compact_revision: i64,
    pub revision: i64,
}

impl SnapshotCopy {
    /// The hash of the store up to `revision` (0: the current one), as etcd's `HashByRev`.
    pub fn hash_kv(&self, revision: i64) -> Result<KvHash, MvccError> {
        let store = &self.rest.store;
        hash_histories(self.histories.iter(), store.current_rev, store.compact_rev, revision)
    }
}

impl StateMachine {
    /// [`SnapshotCopy::hash_kv`] of the state as it is, without copying it.
    pub fn hash_kv(&self, revision: i64) -> Result<KvHash, MvccError> {
        let store = &self.store;
        hash_histories(store.index.iter(), store.current_rev, store.compact_rev, revision)
    }
}

/// The hash of `histories` (every key's, in any order) up to `revision`.
fn hash_histories<'a>(
    histories: impl IntoIterator<Item = (&'a Arc<[u8]>, &'a KeyHistory)>,
    current: i64,
    compacted: i64,
    revision: i64,
) -> Result<KvHash, MvccError> {
    if revision > 0 && revision < compacted {
        return Err(MvccError::Compacted);
    }
    if revision > current {
        return Err(MvccError::FutureRev);
    }
    let revision = if revision == 0 { current } else { revision };
    // etcd's `kvindex.Keep(revision)`: each key's entry visible at `revision`, if a put.
    let mut keep = std::collections::HashSet::new();
    let mut held: Vec<(&Arc<[u8]>, &Entry)> = Vec::new();
    for (key, history) in histories {
        let upto = history.entries.partition_point(|e| e.rev.main <= revision);
        if let Some(visible) = history.entries[..upto].last().filter(|e| !e.is_tombstone()) {
            keep.insert(visible.rev);
        }
        held.extend(history.entries[..upto].iter().map(|e| (key, e)));
    }
    // What lies at or below the compaction counts only if kept (all of it if nothing is); a
    // delete at exactly the compacted revision never counts, as etcd 3.5.16+ still stores it
    // where older releases dropped it, and both must hash alike.
    held.retain(|(_, e)| {
        let dropped_by_compaction = e.rev.main <= compacted && !keep.is_empty() && !keep.contains(&e.rev);
        let delete_at_compaction = e.rev.main == compacted && e.is_tombstone();
        !dropped_by_compaction && !delete_at_compaction
    });
    held.sort_unstable_by_key(|(_, e)| e.rev);
    let mut crc = crc32c::crc32c(b"key");
    for (key, e) in held {
        let mut rev_key = Vec::with_capacity(18);
        rev_key.extend_from_slice(&e.rev.main.to_be_bytes());
        rev_key.push(b'_');
        rev_key.extend_from_slice(&e.rev.sub.to_be_bytes());
        let kv = match &e.value {
            Some(value) => KeyValue {
                key: key.to_vec(),
                create_revision: e.create,
                mod_revision: e.rev.main,
                version: e.version,
                value: value.to_vec(),
                lease: e.lease,
            },
            None => {
                rev_key.push(b't');
                KeyValue { key: key.to_vec(), ..Default::default() }
            }
        };
        crc = crc32c::crc32c_append(crc, &rev_key);
        crc = crc32c::crc32c_append(crc, &kv.encode_to_vec());
    }
    Ok(KvHash { hash: crc, compact_revision: compacted, revision })
}

#[cfg(test)]
mod tests {
    use tally_proto::etcdserverpb::{DeleteRangeRequest, PutRequest};

    use crate::StateMachine;

    fn put(sm: &mut StateMachine, k: &str, v: &str) {
        sm.store.put(&PutRequest { key: k.into(), value: v.into(), ..Default::default() }).unwrap();
    }

    #[test]
    fn same_history_same_hash_and_each_revision_its_own() {
        let (mut a, mut b) = (StateMachine::default(), StateMachine::default());
        for sm in [&mut a, &mut b] {
            put(sm, "x", "1");
            put(sm, "y", "2");
            sm.store.delete_range(&DeleteRangeRequest { key: b"x".to_vec(), ..Default::default() }).unwrap();
        }
        let (ha, hb) = (a.copy_for_snapshot().hash_kv(0).unwrap(), b.copy_for_snapshot().hash_kv(0).unwrap());
        assert_eq!(ha, hb);
        assert_eq!(ha.revision, 4);
        let at3 = a.copy_for_snapshot().hash_kv(3).unwrap();
        assert_ne!(at3.hash, ha.hash);
        put(&mut b, "y", "3");
        assert_eq!(
            b.copy_for_snapshot().hash_kv(4).unwrap(),
            ha,
            "later writes do not change an earlier revision's hash"
        );
        assert_ne!(b.copy_for_snapshot().hash_kv(0).unwrap().hash, ha.hash);
        assert_eq!(a.copy_for_snapshot().hash_kv(9), Err(crate::MvccError::FutureRev));
        a.store.compact(3).unwrap();
        assert_eq!(a.copy_for_snapshot().hash_kv(2), Err(crate::MvccError::Compacted));
    }

    #[test]
    fn the_live_state_hashes_as_its_copy() {
        let mut sm = StateMachine::default();
        for (k, v) in [("b", "1"), ("a", "2"), ("c", "3"), ("a", "4")] {
            put(&mut sm, k, v);
        }
        sm.store.compact(2).unwrap();
        for revision in [0, 2, 3, 5, 6, 1] {
            assert_eq!(sm.hash_kv(revision), sm.copy_for_snapshot().hash_kv(revision), "at {revision}");
        }
    }
}
