//! In-memory index of the live log: term, kind and on-disk location of every entry,
//! plus the payloads of the most recent ones up to a byte budget.
//!
//! Reads of recent entries never touch the disk; older payloads are re-read from their
//! segment by offset, so memory stays bounded by `cache_bytes_max` plus a small fixed
//! cost per entry.

use std::collections::VecDeque;

use bytes::Bytes;

#[derive(Clone, Debug)]
pub struct EntryMeta {
    pub term: u64,
    pub kind: u8,
    /// Segment sequence number holding the payload.
    pub seg: u64,
    /// Byte offset of the payload within that segment file.
    pub offset: u64,
    pub len: u32,
    pub crc: u32,
    /// Payload if still within the cache budget.
    pub data: Option<Bytes>,
}

#[derive(Debug)]
pub struct LogIndex {
    /// Index just before the first live entry (snapshot or compaction point).
    base_index: u64,
    base_term: u64,
    metas: VecDeque<EntryMeta>,
    /// Every meta at position >= `cached_from` has its payload in memory.
    cached_from: usize,
    cached_bytes: usize,
    cache_bytes_max: usize,
}

impl LogIndex {
    pub fn new(cache_bytes_max: usize) -> LogIndex {
        LogIndex {
            base_index: 0,
            base_term: 0,
            metas: VecDeque::new(),
            cached_from: 0,
            cached_bytes: 0,
            cache_bytes_max,
        }
    }

    pub fn first_index(&self) -> u64 {
        self.base_index + 1
    }

    pub fn last_index(&self) -> u64 {
        self.base_index + self.metas.len() as u64
    }

    pub fn base(&self) -> (u64, u64) {
        (self.base_index, self.base_term)
    }

    pub fn is_empty(&self) -> bool {
        self.metas.is_empty()
    }

    /// Term at `index`, including the base (snapshot) index; `None` outside the log.
    pub fn term(&self, index: u64) -> Option<u64> {
        if index == self.base_index {
            return Some(self.base_term);
        }
        self.get(index).map(|m| m.term)
    }

    pub fn get(&self, index: u64) -> Option<&EntryMeta> {
        let pos = index.checked_sub(self.first_index())?;
        self.metas.get(usize::try_from(pos).ok()?)
    }

    pub fn cached_bytes(&self) -> usize {
        self.cached_bytes
    }

    /// Appends the entry at `last_index() + 1`.
    pub fn push(&mut self, meta: EntryMeta) {
        debug_assert!(meta.data.as_ref().is_none_or(|d| d.len() == meta.len as usize));
        if let Some(d) = &meta.data {
            self.cached_bytes += d.len();
        } else {
            // An uncached entry after cached ones would break the `cached_from` invariant.
            self.drop_payloads(self.metas.len());
            self.cached_from = self.metas.len() + 1;
        }
        self.metas.push_back(meta);
        self.evict();
    }

    /// Removes entries at and after `index` (Raft suffix truncation).
    pub fn truncate_from(&mut self, index: u64) {
        assert!(index > self.base_index, "truncation below the log base");
        let keep = (index - self.first_index()).min(self.metas.len() as u64) as usize;
        while self.metas.len() > keep {
            let m = self.metas.pop_back().expect("len > keep");
            if let Some(d) = m.data {
                self.cached_bytes -= d.len();
            }
        }
        self.cached_from = self.cached_from.min(self.metas.len());
    }

    /// Drops entries at and below `index`; `term` is the term at `index`.
    pub fn compact_to(&mut self, index: u64, term: u64) {
        if index == self.base_index {
            // Replay may have inferred the base without its term; the marker knows it.
            self.base_term = term;
            return;
        }
        if index < self.base_index {
            return;
        }
        if index >= self.last_index() {
            self.reset(index, term);
            return;
        }
        let n = (index - self.base_index) as usize;
        for m in self.metas.drain(..n) {
            if let Some(d) = m.data {
                self.cached_bytes -= d.len();
            }
        }
        self.cached_from = self.cached_from.saturating_sub(n);
        self.base_index = index;
        self.base_term = term;
    }

    /// Empties the log so that the next entry is `index + 1`.
    pub fn reset(&mut self, index: u64, term: u64) {
        self.metas.clear();
        self.cached_from = 0;
        self.cached_bytes = 0;
        self.base_index = index;
        self.base_term = term;
    }

    fn drop_payloads(&mut self, upto: usize) {
        while self.cached_from < upto {
            if let Some(d) = self.metas[self.cached_from].data.take() {
                self.cached_bytes -= d.len();
            }
            self.cached_from += 1;
        }
    }

    fn evict(&mut self) {
        while self.cached_bytes > self.cache_bytes_max && self.cached_from < self.metas.len() {
            self.drop_payloads(self.cached_from + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(term: u64, len: usize) -> EntryMeta {
        EntryMeta { term, kind: 0, seg: 1, offset: 0, len: len as u32, crc: 0, data: Some(Bytes::from(vec![0u8; len])) }
    }

    #[test]
    fn cache_is_bounded_and_keeps_the_newest() {
        let mut log = LogIndex::new(100);
        for i in 0..10 {
            log.push(meta(i, 30));
        }
        assert!(log.cached_bytes() <= 100);
        assert!(log.get(10).unwrap().data.is_some());
        assert!(log.get(1).unwrap().data.is_none());
        log.truncate_from(9);
        assert_eq!(log.last_index(), 8);
        log.compact_to(5, 4);
        assert_eq!((log.first_index(), log.term(5)), (6, Some(4)));
        let cached: usize = (6..=8).filter_map(|i| log.get(i).unwrap().data.as_ref()).map(|d| d.len()).sum();
        assert_eq!(cached, log.cached_bytes());
    }
}
