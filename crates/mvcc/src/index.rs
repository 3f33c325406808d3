//! The store's index, key -> history. A B-tree search compares a dozen or more keys, each
//! behind its own pointer, so it is mostly cache misses; under put load one search per put was
//! ~7% of a server's CPU. Point lookups (every put, every single-key read) therefore go through
//! a hash map, and key order (ranges, snapshots) is kept in a B-tree set that only new and
//! removed keys touch. That set holds each key's first bytes inline (`OrderedKey`), so
//! inserting a new key compares without following pointers.
//!
//! A snapshot copies the map only (`histories_copy`), which is cheap: it is sharded behind
//! `Arc`s (`sharded`), and a write copies only the shard it changes. The snapshot sorts the
//! copy's keys itself, off the driver. Sharing the set behind an `Arc` instead made the first
//! new key after a snapshot copy it, 5-9 ms at 100k keys on the driver; a persistent B-tree
//! (`imbl::OrdSet`) would copy only the nodes it changes, but it made every put of a new key
//! about 1 µs slower (1.8 → 2.9 µs).

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

use crate::key_index::KeyHistory;
use crate::sharded::ShardedMap;

/// Histories are `Arc`s so that a copy of the index for a snapshot shares them; a write copies
/// only the history it changes, and only while a snapshot still holds it (`Arc::make_mut`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Index {
    histories: ShardedMap<Arc<[u8]>, Arc<KeyHistory>>,
    order: BTreeSet<OrderedKey>,
}

/// A key with its first 16 bytes inline, zero-padded, as a big-endian number. Two keys whose
/// heads differ are ordered by their heads exactly as by their bytes (a zero pad can only tie
/// with, or sort before, a real byte, and a key that ends there is a prefix of the other), so
/// the key itself is read only when the heads are equal. A B-tree insert compares a dozen or
/// more keys; each comparison through the pointer was a cache miss.
#[derive(Clone, Debug)]
struct OrderedKey {
    head: u128,
    key: Arc<[u8]>,
}

impl OrderedKey {
    fn new(key: Arc<[u8]>) -> Self {
        let mut head = [0u8; 16];
        let n = key.len().min(16);
        head[..n].copy_from_slice(&key[..n]);
        OrderedKey { head: u128::from_be_bytes(head), key }
    }
}

impl Ord for OrderedKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.head.cmp(&other.head).then_with(|| self.key.cmp(&other.key))
    }
}

impl PartialOrd for OrderedKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for OrderedKey {
    fn eq(&self, other: &Self) -> bool {
        self.head == other.head && self.key == other.key
    }
}

impl Eq for OrderedKey {}

/// Range bounds are plain byte strings; the order above agrees with theirs.
impl Borrow<[u8]> for OrderedKey {
    fn borrow(&self) -> &[u8] {
        &self.key
    }
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
        let (history, inserted) = self.histories.get_or_insert_with(key.clone(), Default::default);
        if inserted {
            self.order.insert(OrderedKey::new(key.clone()));
        }
        Arc::make_mut(history)
    }

    pub(crate) fn insert(&mut self, key: Arc<[u8]>, history: KeyHistory) {
        if self.histories.insert(key.clone(), Arc::new(history)).is_none() {
            self.order.insert(OrderedKey::new(key));
        }
    }

    /// The key histories without the key order, for a snapshot (see the module comment).
    pub(crate) fn histories_copy(&self) -> HistoriesCopy {
        HistoriesCopy(self.histories.clone())
    }

    /// Keys in `[from, to)` in order, with their histories.
    pub(crate) fn range<'s>(
        &'s self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> impl Iterator<Item = (&'s Arc<[u8]>, &'s KeyHistory)> + 's {
        self.order
            .range::<[u8], _>((from, to))
            .map(|k| (&k.key, &**self.histories.get(&k.key).expect("ordered keys are indexed")))
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
        self.histories.for_each_changing(
            |history| changes(history),
            |key, history| {
                let history = Arc::make_mut(history);
                f(key, history);
                if history.entries.is_empty() {
                    emptied.push(key.clone());
                }
            },
        );
        for key in emptied {
            self.histories.remove(&key);
            self.order.remove(&OrderedKey::new(key));
        }
    }
}

/// A copy of the index's key histories, shared with it shard by shard.
#[derive(Debug)]
pub(crate) struct HistoriesCopy(ShardedMap<Arc<[u8]>, Arc<KeyHistory>>);

impl HistoriesCopy {
    /// Every key with its history, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Arc<[u8]>, &KeyHistory)> {
        self.0.iter().map(|(k, h)| (k, &**h))
    }

    /// Every key with its history, in the index's order (byte order).
    pub(crate) fn sorted(&self) -> Vec<(&Arc<[u8]>, &KeyHistory)> {
        let mut keys: Vec<_> = self.iter().collect();
        keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Keys around the 16-byte head, made of few byte values, so that heads tie, zero bytes
    /// meet zero padding, and keys are prefixes of each other.
    fn key() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(0xff)], 0..20)
    }

    proptest! {
        #[test]
        fn ordered_keys_sort_as_their_bytes(a in key(), b in key()) {
            let (x, y) = (OrderedKey::new(a.clone().into()), OrderedKey::new(b.clone().into()));
            prop_assert_eq!(x.cmp(&y), a.cmp(&b));
            prop_assert_eq!(x == y, a == b);
        }

        #[test]
        fn range_returns_keys_in_byte_order(keys in proptest::collection::vec(key(), 0..40), a in key(), b in key()) {
            let (from, to) = if a <= b { (a, b) } else { (b, a) };
            let mut index = Index::default();
            for k in &keys {
                index.get_or_insert(&Arc::from(k.as_slice()));
            }
            let mut expected: Vec<Vec<u8>> = keys.iter().filter(|k| **k >= from && **k < to).cloned().collect();
            expected.sort();
            expected.dedup();
            let got: Vec<Vec<u8>> =
                index.range(Bound::Included(&from), Bound::Excluded(&to)).map(|(k, _)| k.to_vec()).collect();
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn a_histories_copy_sorts_as_the_index_orders(keys in proptest::collection::vec(key(), 0..40)) {
            let mut index = Index::default();
            for k in &keys {
                index.get_or_insert(&Arc::from(k.as_slice()));
            }
            let copy = index.histories_copy();
            // Changes after the copy are not in it.
            index.get_or_insert(&Arc::from(&b"added after the copy"[..]));
            let ordered: Vec<&[u8]> = index.iter().map(|(k, _)| &**k).filter(|k| *k != b"added after the copy").collect();
            let sorted: Vec<&[u8]> = copy.sorted().into_iter().map(|(k, _)| &**k).collect();
            prop_assert_eq!(sorted, ordered);
        }
    }
}
