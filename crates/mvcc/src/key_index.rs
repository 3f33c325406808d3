//! One key's history: every revision at which it was put or deleted since the last compaction.

use crate::revision::Revision;

/// One change to a key: a put (with its value) or a tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// When the change happened.
    pub(crate) rev: Revision,
    /// The generation's create revision (0 for a tombstone).
    pub(crate) create: i64,
    /// Number of puts in this generation up to and including this one (0 for a tombstone).
    pub(crate) version: i64,
    /// Attached lease (0 = none).
    pub(crate) lease: i64,
    /// The value, or `None` for a tombstone.
    pub(crate) value: Option<Box<[u8]>>,
}

impl Entry {
    pub(crate) fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// Approximate bytes this entry occupies (for the db size estimate).
    pub(crate) fn cost(&self, key_len: usize) -> u64 {
        (key_len + self.value.as_ref().map_or(0, |v| v.len()) + 48) as u64
    }
}

/// A key's history, oldest first. Never empty while stored in the index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct KeyHistory {
    pub(crate) entries: Vec<Entry>,
}

impl KeyHistory {
    /// The entry visible at main revision `at` (latest change with `main <= at`), if it is a live value.
    pub(crate) fn get(&self, at: i64) -> Option<&Entry> {
        let idx = self.entries.partition_point(|e| e.rev.main <= at);
        if idx == 0 {
            return None;
        }
        let e = &self.entries[idx - 1];
        (!e.is_tombstone()).then_some(e)
    }

    /// The `prev_kv` a watch event for the change at main revision `rev` carries, as etcd's
    /// watch computes it: the key as it was before that revision's txn (not an earlier write of
    /// the same txn), and none for a put that creates the key (`create == rev`).
    pub(crate) fn watch_prev(&self, rev: i64, created: bool) -> Option<&Entry> {
        if created {
            return None;
        }
        match self.entries.last() {
            // The common case, a key this txn has not written yet: no search.
            Some(last) if last.rev.main < rev => (!last.is_tombstone()).then_some(last),
            _ => self.get(rev - 1),
        }
    }

    /// The latest entry if it is live.
    pub(crate) fn current(&self) -> Option<&Entry> {
        self.entries.last().filter(|e| !e.is_tombstone())
    }

    /// Drops history older than `at`, keeping the entry visible at `at` unless it is a tombstone.
    /// Returns the cost of the removed entries. The history may become empty.
    pub(crate) fn compact(&mut self, at: i64, key_len: usize) -> u64 {
        let keep_from = self.compaction_point(at);
        if keep_from == 0 {
            return 0;
        }
        let removed: u64 = self.entries[..keep_from].iter().map(|e| e.cost(key_len)).sum();
        self.entries.drain(..keep_from);
        removed
    }

    /// How many of the oldest entries a compaction at `at` drops: all before the entry
    /// visible at `at`, and that one too if it is a tombstone older than `at`. A tombstone at
    /// exactly `at` stays, as in etcd 3.5.13+ (etcd-io/etcd#18274): a watch resuming from the
    /// compacted revision still gets that delete.
    pub(crate) fn compaction_point(&self, at: i64) -> usize {
        match self.entries.partition_point(|e| e.rev.main <= at) {
            0 => 0,
            idx if self.entries[idx - 1].is_tombstone() && self.entries[idx - 1].rev.main < at => idx,
            idx => idx - 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(main: i64, create: i64, version: i64) -> Entry {
        Entry { rev: Revision::new(main, 0), create, version, lease: 0, value: Some(vec![main as u8].into()) }
    }
    fn del(main: i64) -> Entry {
        Entry { rev: Revision::new(main, 0), create: 0, version: 0, lease: 0, value: None }
    }

    #[test]
    fn get_and_compact() {
        let mut h = KeyHistory { entries: vec![put(2, 2, 1), put(3, 2, 2), del(4), put(6, 6, 1)] };
        assert!(h.get(1).is_none());
        assert_eq!(h.get(2).unwrap().version, 1);
        assert_eq!(h.get(3).unwrap().version, 2);
        assert!(h.get(4).is_none());
        assert!(h.get(5).is_none());
        assert_eq!(h.get(9).unwrap().create, 6);
        h.compact(3, 1);
        assert_eq!(h.entries.len(), 3);
        assert_eq!(h.get(3).unwrap().version, 2);
        h.compact(5, 1);
        assert_eq!(h.entries.len(), 1);
        assert!(h.get(5).is_none());
        let mut t = KeyHistory { entries: vec![put(2, 2, 1), del(3)] };
        t.compact(3, 1);
        assert_eq!(t.entries.len(), 1, "a tombstone at the compaction revision stays");
        assert!(t.entries[0].is_tombstone());
        t.compact(4, 1);
        assert!(t.entries.is_empty(), "and goes with the next compaction");
    }
}
