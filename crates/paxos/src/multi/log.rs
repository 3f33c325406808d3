//! An acceptor's slots: every value it accepted, contiguous from its snapshot on, with how much
//! of it is durable, chosen and applied.
//!
//! Unlike Raft's log, writing slots never drops the slots after them: an acceptor must not
//! forget a value it accepted (it may be chosen, and only this acceptor may remember it), so
//! values accepted in an older round stay until this round's leader overwrites them. The
//! driver's durable log replaces everything from its first written entry on, so a write
//! hands back the whole suffix from the first changed slot.

use tally_consensus::{Entry, Index, Term};

pub(crate) struct SlotLog {
    snapshot_index: Index,
    snapshot_term: Term,
    /// Slots `snapshot_index + 1 ..`.
    entries: Vec<Entry>,
    pub committed: Index,
    pub applied: Index,
    /// Durable through this slot.
    pub persisted: Index,
    /// The first slot written since the last `take_unstable`.
    unstable_from: Index,
}

impl SlotLog {
    pub fn restore(snapshot_index: Index, snapshot_term: Term, entries: Vec<Entry>, committed: Index) -> Self {
        let last = snapshot_index + entries.len() as Index;
        Self {
            snapshot_index,
            snapshot_term,
            entries,
            committed,
            applied: snapshot_index,
            persisted: last,
            unstable_from: last + 1,
        }
    }

    pub fn first_index(&self) -> Index {
        self.snapshot_index + 1
    }

    pub fn snapshot_index(&self) -> Index {
        self.snapshot_index
    }

    pub fn last_index(&self) -> Index {
        self.snapshot_index + self.entries.len() as Index
    }

    pub fn term(&self, index: Index) -> Option<Term> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        self.entry(index).map(|e| e.term)
    }

    pub fn entry(&self, index: Index) -> Option<&Entry> {
        let offset = index.checked_sub(self.first_index())?;
        self.entries.get(usize::try_from(offset).ok()?)
    }

    /// Slots `lo..=hi`, at most `count_max` of them and about `bytes_max` bytes (at least one);
    /// `None` if `lo` is compacted.
    pub fn slice(&self, lo: Index, hi: Index, count_max: usize, bytes_max: u64) -> Option<Vec<Entry>> {
        if lo <= self.snapshot_index {
            return None;
        }
        let mut out = Vec::new();
        let mut bytes = 0;
        for index in lo..=hi.min(self.last_index()) {
            let e = self.entry(index)?;
            bytes += e.size();
            if !out.is_empty() && (out.len() >= count_max || bytes > bytes_max) {
                break;
            }
            out.push(e.clone());
        }
        Some(out)
    }

    /// Every slot after `after`, for a promise.
    pub fn after(&self, after: Index) -> Vec<Entry> {
        let from = (after.max(self.snapshot_index) + 1 - self.first_index()) as usize;
        self.entries.get(from..).map_or_else(Vec::new, <[Entry]>::to_vec)
    }

    /// Overwrites the slots `entries` name (contiguous, starting at most one past the last),
    /// keeping every slot after them.
    pub fn write(&mut self, entries: Vec<Entry>) {
        let Some(first) = entries.first().map(|e| e.index) else { return };
        assert!(first > self.snapshot_index && first <= self.last_index() + 1, "write at {first} leaves a gap");
        for e in entries {
            let offset = (e.index - self.first_index()) as usize;
            if offset < self.entries.len() {
                self.entries[offset] = e;
            } else {
                self.entries.push(e);
            }
        }
        self.unstable_from = self.unstable_from.min(first);
        self.persisted = self.persisted.min(first - 1);
    }

    pub fn append(&mut self, entry: Entry) {
        debug_assert_eq!(entry.index, self.last_index() + 1);
        self.write(vec![entry]);
    }

    /// What must be made durable: every slot from the first one written, to the end.
    pub fn take_unstable(&mut self) -> Vec<Entry> {
        let from = self.unstable_from;
        self.unstable_from = self.last_index() + 1;
        if from > self.last_index() {
            return Vec::new();
        }
        self.entries[(from - self.first_index()) as usize..].to_vec()
    }

    pub fn has_unstable(&self) -> bool {
        self.unstable_from <= self.last_index()
    }

    pub fn commit_to(&mut self, index: Index) {
        let index = index.min(self.last_index());
        if index > self.committed {
            self.committed = index;
        }
    }

    /// Chosen slots not yet applied, up to about `bytes_max` bytes (at least one).
    pub fn next_committed(&self, bytes_max: u64) -> Vec<Entry> {
        if self.committed <= self.applied {
            return Vec::new();
        }
        self.slice(self.applied + 1, self.committed, usize::MAX, bytes_max).unwrap_or_default()
    }

    /// Drops the slots up to `index` (all chosen and applied).
    pub fn compact(&mut self, index: Index) -> Vec<Entry> {
        if index <= self.snapshot_index {
            return Vec::new();
        }
        let term = self.term(index).expect("compacting a slot the log holds");
        let kept = self.entries.split_off((index - self.snapshot_index) as usize);
        self.snapshot_index = index;
        self.snapshot_term = term;
        std::mem::replace(&mut self.entries, kept)
    }

    /// Starts over from a snapshot's state, keeping the values accepted after it: a snapshot
    /// says what is chosen up to its index, nothing about later slots. The kept slots are
    /// handed back for writing again, after the snapshot.
    pub fn restore_snapshot(&mut self, index: Index, term: Term) {
        let kept = if index < self.last_index() { self.after(index) } else { Vec::new() };
        *self = Self::restore(index, term, Vec::new(), index);
        self.persisted = index;
        self.write(kept);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use tally_consensus::EntryKind;

    use super::*;

    fn ent(index: Index, term: Term) -> Entry {
        Entry { term, index, kind: EntryKind::Normal, data: Bytes::from(format!("{index}@{term}")) }
    }

    #[test]
    fn writing_a_slot_keeps_the_slots_after_it_and_hands_back_the_whole_suffix() {
        let mut log = SlotLog::restore(0, 0, vec![ent(1, 1), ent(2, 1), ent(3, 1)], 0);
        log.write(vec![ent(2, 2)]);
        assert_eq!(log.last_index(), 3);
        assert_eq!(log.term(3), Some(1), "the older round's value at 3 is not forgotten");
        assert_eq!(log.persisted, 1);
        let unstable = log.take_unstable();
        assert_eq!(unstable.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(), vec![(2, 2), (3, 1)]);
        assert!(!log.has_unstable());
    }

    #[test]
    fn a_snapshot_keeps_the_values_accepted_after_it() {
        let mut log = SlotLog::restore(0, 0, vec![ent(1, 1), ent(2, 1), ent(3, 2)], 1);
        log.restore_snapshot(2, 1);
        assert_eq!((log.first_index(), log.last_index(), log.committed), (3, 3, 2));
        assert_eq!(log.take_unstable().iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(), vec![(3, 2)]);
        log.restore_snapshot(5, 4);
        assert_eq!((log.first_index(), log.last_index()), (6, 5));
    }

    #[test]
    fn compaction_keeps_the_round_of_the_snapshot_slot() {
        let mut log = SlotLog::restore(0, 0, vec![ent(1, 1), ent(2, 3), ent(3, 3)], 3);
        log.applied = 3;
        log.compact(2);
        assert_eq!(log.first_index(), 3);
        assert_eq!(log.term(2), Some(3));
        assert_eq!(log.slice(2, 3, 10, 1 << 20), None);
        assert_eq!(log.after(0).len(), 1);
    }
}
