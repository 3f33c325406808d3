//! The store's index, key -> history. A B-tree search compares a dozen or more keys, each
//! behind its own pointer, so it is mostly cache misses; under put load one search per put was
//! ~7% of a server's CPU. Point lookups (every put, every single-key read) therefore go through
//! a hash map, and key order (ranges, snapshots) is kept in a B-tree set that only new and
//! removed keys touch.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use crate::key_index::KeyHistory;

/// Histories are `Arc`s so that a copy of the index for a snapshot shares them; a write copies
/// only the history it changes, and only while a snapshot still holds it (`Arc::make_mut`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Index {
    histories: HashMap<Arc<[u8]>, Arc<KeyHistory>>,
    order: BTreeSet<Arc<[u8]>>,
}

impl PartialEq for Index {
    fn eq(&self, other: &Self) -> bool {
        // The order holds exactly the keys of the map.
        self.histories == other.histories
    }
}

impl Eq for Index {}

impl Index {
    pub(crate) fn len(&self) -> usize {
        self.histories.len()
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<&KeyHistory> {
        self.histories.get(key).map(|h| &**h)
    }

    pub(crate) fn get_key_value(&self, key: &[u8]) -> Option<(&Arc<[u8]>, &KeyHistory)> {
        self.histories.get_key_value(key).map(|(k, h)| (k, &**h))
    }

    pub(crate) fn get_mut(&mut self, key: &[u8]) -> Option<&mut KeyHistory> {
        self.histories.get_mut(key).map(Arc::make_mut)
    }

    /// The history of `key`, created empty if the key is new.
    pub(crate) fn get_or_insert(&mut self, key: &Arc<[u8]>) -> &mut KeyHistory {
        if !self.histories.contains_key(key) {
            self.order.insert(key.clone());
        }
        Arc::make_mut(self.histories.entry(key.clone()).or_default())
    }

    pub(crate) fn insert(&mut self, key: Arc<[u8]>, history: KeyHistory) {
        if self.histories.insert(key.clone(), Arc::new(history)).is_none() {
            self.order.insert(key);
        }
    }

    /// Keys in `[from, to)` in order, with their histories.
    pub(crate) fn range<'s>(
        &'s self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> impl Iterator<Item = (&'s Arc<[u8]>, &'s KeyHistory)> + 's {
        self.order.range::<[u8], _>((from, to)).map(|k| (k, &*self.histories[k]))
    }

    /// Every key in order, with its history.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Arc<[u8]>, &KeyHistory)> {
        self.range(Bound::Unbounded, Bound::Unbounded)
    }

    /// Keeps the keys for which `f` returns true; `f` may change the history (it is copied
    /// first if a snapshot shares it, so `f` should change only what it must: see `changes`).
    pub(crate) fn retain(
        &mut self,
        mut changes: impl FnMut(&KeyHistory) -> bool,
        mut f: impl FnMut(&Arc<[u8]>, &mut KeyHistory),
    ) {
        let mut emptied = Vec::new();
        for (key, history) in self.histories.iter_mut() {
            if changes(history) {
                let history = Arc::make_mut(history);
                f(key, history);
                if history.entries.is_empty() {
                    emptied.push(key.clone());
                }
            }
        }
        for key in emptied {
            self.histories.remove(&key);
            self.order.remove(&key);
        }
    }
}
