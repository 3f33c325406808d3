//! The core's in-memory view of the replicated log: everything after the last snapshot, with
//! marks for what is durable, committed and applied.
//!
//! Invariants: `snapshot_index <= applied <= committed`; entries are contiguous from
//! `snapshot_index + 1`; entries below `unstable_from` have been handed to the driver for
//! persistence.

use std::collections::VecDeque;

use tally_consensus::{Entry, Index, Term};

#[derive(Debug)]
pub struct RaftLog {
    snapshot_index: Index,
    snapshot_term: Term,
    entries: VecDeque<Entry>,
    pub committed: Index,
    pub applied: Index,
    /// First index not yet handed out in a `Ready` for persistence.
    unstable_from: Index,
    /// Last index the driver has confirmed durable.
    pub persisted: Index,
}

/// The entry at an index is gone because the log was compacted into a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compacted;

impl RaftLog {
    /// A log recovered from disk: everything passed in is already durable.
    pub fn restore(snapshot_index: Index, snapshot_term: Term, entries: Vec<Entry>, committed: Index) -> Self {
        let last = snapshot_index + entries.len() as u64;
        Self {
            snapshot_index,
            snapshot_term,
            entries: entries.into(),
            committed: committed.max(snapshot_index),
            applied: snapshot_index,
            unstable_from: last + 1,
            persisted: last,
        }
    }

    pub fn first_index(&self) -> Index {
        self.snapshot_index + 1
    }

    pub fn last_index(&self) -> Index {
        self.snapshot_index + self.entries.len() as u64
    }

    pub fn last_term(&self) -> Term {
        self.entries.back().map_or(self.snapshot_term, |e| e.term)
    }

    /// Term of the entry at `index`: `Ok(None)` past the end, `Err` below the snapshot.
    pub fn term(&self, index: Index) -> Result<Option<Term>, Compacted> {
        if index < self.snapshot_index {
            return Err(Compacted);
        }
        if index == self.snapshot_index {
            return Ok(Some(self.snapshot_term));
        }
        Ok(self.entry(index).map(|e| e.term))
    }

    fn entry(&self, index: Index) -> Option<&Entry> {
        if index <= self.snapshot_index {
            return None;
        }
        self.entries.get((index - self.snapshot_index - 1) as usize)
    }

    pub fn matches(&self, index: Index, term: Term) -> bool {
        self.term(index) == Ok(Some(term))
    }

    /// Raft's election restriction (section 5.4.1): is a log ending at (last_term, last_index)
    /// at least as up to date as ours?
    pub fn is_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        last_term > self.last_term() || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// Entries in `[lo, hi]` limited to `count_max` entries and about `bytes_max` bytes (at least
    /// one entry if any). `Err` if `lo` was compacted.
    pub fn entries(&self, lo: Index, hi: Index, count_max: usize, bytes_max: u64) -> Result<Vec<Entry>, Compacted> {
        if lo <= self.snapshot_index {
            return Err(Compacted);
        }
        let hi = hi.min(self.last_index());
        let mut out = Vec::new();
        let mut bytes = 0;
        for index in lo..=hi {
            let entry = self.entry(index).expect("index within the log");
            bytes += entry.size();
            if !out.is_empty() && (out.len() >= count_max || bytes > bytes_max) {
                break;
            }
            out.push(entry.clone());
        }
        Ok(out)
    }

    /// Appends entries that follow our last entry directly (the leader's own proposals).
    pub fn append(&mut self, entry: Entry) {
        assert_eq!(entry.index, self.last_index() + 1, "leader log must grow contiguously");
        assert!(entry.term >= self.last_term(), "terms in the log never decrease");
        self.entries.push_back(entry);
    }

    /// Follower side of AppendEntries once `prev_index`/`prev_term` matched: skips entries we
    /// already have, truncates our log at the first conflict and appends the rest. Returns the
    /// index of the last entry the message covered.
    pub fn append_after_match(&mut self, prev_index: Index, entries: Vec<Entry>) -> Index {
        let last_new = prev_index + entries.len() as u64;
        for entry in entries {
            match self.term(entry.index) {
                Ok(Some(term)) if term == entry.term => continue,
                Ok(Some(_)) => {
                    assert!(
                        entry.index > self.committed,
                        "leader sent an entry conflicting with committed index {} at {}: \
                         was the log corrupted, truncated or lost?",
                        self.committed,
                        entry.index
                    );
                    self.truncate_from(entry.index);
                    self.entries.push_back(entry);
                }
                Ok(None) => self.entries.push_back(entry),
                Err(Compacted) => continue,
            }
        }
        last_new
    }

    fn truncate_from(&mut self, index: Index) {
        assert!(index > self.snapshot_index);
        self.entries.truncate((index - self.snapshot_index - 1) as usize);
        self.unstable_from = self.unstable_from.min(index);
        self.persisted = self.persisted.min(index - 1);
    }

    /// Where a follower's log diverges from a leader's at `prev_index`: the term we hold there and
    /// the first index of that term (not below `committed + 1`, which always matches the leader).
    pub fn conflict_hint(&self, prev_index: Index) -> (Option<Term>, Index) {
        let last = self.last_index();
        if prev_index > last {
            return (None, last + 1);
        }
        let term = self.term(prev_index).ok().flatten();
        let floor = (self.committed + 1).max(self.first_index());
        let mut first = prev_index;
        while first > floor && self.term(first - 1).ok().flatten() == term {
            first -= 1;
        }
        (term, first)
    }

    /// Leader side of a conflict hint: the index just past our last entry of `term` at or
    /// below `at_most`, if we have any entry of that term.
    pub fn next_after_term(&self, term: Term, at_most: Index) -> Option<Index> {
        let mut index = at_most.min(self.last_index());
        while index > self.snapshot_index {
            let t = self.entry(index).expect("within log").term;
            if t == term {
                return Some(index + 1);
            }
            if t < term {
                return None;
            }
            index -= 1;
        }
        None
    }

    pub fn commit_to(&mut self, index: Index) {
        if index > self.committed {
            assert!(index <= self.last_index(), "commit {index} past last index {}", self.last_index());
            self.committed = index;
        }
    }

    /// Entries handed to the driver for persistence, marking them as in progress.
    pub fn take_unstable(&mut self) -> Vec<Entry> {
        let from = self.unstable_from;
        self.unstable_from = self.last_index() + 1;
        if from > self.last_index() {
            return Vec::new();
        }
        self.entries.range((from - self.snapshot_index - 1) as usize..).cloned().collect()
    }

    pub fn has_unstable(&self) -> bool {
        self.unstable_from <= self.last_index()
    }

    /// Committed entries not yet handed out for application, up to `bytes_max` (at least one).
    pub fn next_committed(&self, bytes_max: u64) -> Vec<Entry> {
        if self.applied >= self.committed {
            return Vec::new();
        }
        self.entries(self.applied + 1, self.committed, usize::MAX, bytes_max).expect("applied >= snapshot index")
    }

    /// Replaces the whole log with a snapshot received from the leader.
    pub fn restore_snapshot(&mut self, index: Index, term: Term) {
        self.snapshot_index = index;
        self.snapshot_term = term;
        self.entries.clear();
        self.committed = index;
        self.applied = index;
        self.unstable_from = index + 1;
        self.persisted = index;
    }

    /// Takes out the entries up to `index`, now covered by a local snapshot.
    pub fn compact(&mut self, index: Index) -> Vec<Entry> {
        assert!(index <= self.applied, "compacting {index} beyond applied {}", self.applied);
        if index <= self.snapshot_index {
            return Vec::new();
        }
        let term = self.term(index).expect("above snapshot").expect("at most applied");
        let kept = self.entries.split_off((index - self.snapshot_index) as usize);
        self.snapshot_index = index;
        self.snapshot_term = term;
        std::mem::replace(&mut self.entries, kept).into()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use tally_consensus::EntryKind;

    fn ent(index: Index, term: Term) -> Entry {
        Entry { index, term, kind: EntryKind::Normal, data: Bytes::new() }
    }

    fn log_with_terms(terms: &[Term]) -> RaftLog {
        let entries = terms.iter().enumerate().map(|(i, &t)| ent(i as u64 + 1, t)).collect();
        RaftLog::restore(0, 0, entries, 0)
    }

    #[test]
    fn conflicting_suffix_is_truncated() {
        let mut log = log_with_terms(&[1, 1, 2, 2]);
        let last = log.append_after_match(2, vec![ent(3, 3)]);
        assert_eq!(last, 3);
        assert_eq!(log.last_index(), 3);
        assert_eq!(log.term(3), Ok(Some(3)));
        assert_eq!(log.persisted, 2, "truncated entries are no longer durable");
        assert_eq!(log.take_unstable(), vec![ent(3, 3)]);
    }

    #[test]
    fn duplicate_append_changes_nothing() {
        let mut log = log_with_terms(&[1, 1, 2]);
        assert_eq!(log.append_after_match(0, vec![ent(1, 1), ent(2, 1)]), 2);
        assert_eq!(log.last_index(), 3, "a stale shorter append must not truncate");
        assert!(!log.has_unstable());
    }

    #[test]
    fn conflict_hint_names_term_and_its_first_index() {
        let log = log_with_terms(&[1, 2, 2, 2, 3]);
        assert_eq!(log.conflict_hint(4), (Some(2), 2));
        assert_eq!(log.conflict_hint(9), (None, 6));
        let leader = log_with_terms(&[1, 2, 2, 4, 4, 4]);
        assert_eq!(leader.next_after_term(2, 5), Some(4));
        assert_eq!(leader.next_after_term(3, 5), None);
    }

    #[test]
    fn up_to_date_compares_last_term_then_length() {
        let log = log_with_terms(&[1, 2, 2]);
        assert!(log.is_up_to_date(1, 3));
        assert!(log.is_up_to_date(3, 2));
        assert!(!log.is_up_to_date(2, 2));
        assert!(!log.is_up_to_date(9, 1));
    }

    #[test]
    fn compaction_keeps_term_of_snapshot_point() {
        let mut log = log_with_terms(&[1, 1, 2, 3]);
        log.commit_to(3);
        log.applied = 3;
        log.compact(2);
        assert_eq!(log.term(2), Ok(Some(1)));
        assert_eq!(log.term(1), Err(Compacted));
        assert_eq!(log.entries(2, 4, 10, 100), Err(Compacted));
        assert_eq!(log.entries(3, 4, 10, 1000).unwrap().len(), 2);
    }
}
