//! A hash map split into shards behind `Arc`s, so that a copy of it for a snapshot costs one
//! pointer per shard instead of a copy of every entry. A write then copies the shard it changes,
//! and only while a snapshot still shares that shard: the copying a snapshot used to do at once
//! on the driver thread (tens of milliseconds for 100k keys and 100k client sessions, a stall
//! of every write) is spread over the writes that follow, one small shard at a time.

use std::borrow::Borrow;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use rustc_hash::FxBuildHasher;

/// Shards per map: at 100k entries a shard holds about a hundred, a few microseconds to copy.
const SHARDS: usize = 1024;

#[derive(Clone, Debug)]
pub(crate) struct ShardedMap<K, V> {
    shards: Vec<Arc<HashMap<K, V>>>,
    len: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> Default for ShardedMap<K, V> {
    fn default() -> Self {
        // Every shard starts as the same empty map; the first write to a shard gives it its own.
        let empty = Arc::new(HashMap::new());
        ShardedMap { shards: vec![empty; SHARDS], len: 0 }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> ShardedMap<K, V> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Picks the shard by a fast hash: the shards' own keyed hasher still protects them from
    /// crafted keys. Not by that hasher: its bits within a shard would then be correlated.
    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        (FxBuildHasher.hash_one(key) % SHARDS as u64) as usize
    }

    /// The shard of `key`, for writing: copied first if a snapshot shares it.
    fn shard_mut<Q: Hash + ?Sized>(&mut self, key: &Q) -> &mut HashMap<K, V> {
        let shard = self.shard(key);
        Arc::make_mut(&mut self.shards[shard])
    }

    pub(crate) fn get<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.shards[self.shard(key)].get(key)
    }

    pub(crate) fn get_key_value<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
    {
        self.shards[self.shard(key)].get_key_value(key)
    }

    /// The shard of `key` for writing, if it may hold the key: a shard a snapshot shares is
    /// copied only when it does.
    fn shard_holding<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<&mut HashMap<K, V>>
    where
        K: Borrow<Q>,
    {
        let shard = self.shard(key);
        let shard = &mut self.shards[shard];
        if Arc::get_mut(shard).is_none() && !shard.contains_key(key) {
            return None;
        }
        Some(Arc::make_mut(shard))
    }

    pub(crate) fn get_mut<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.shard_holding(key)?.get_mut(key)
    }

    /// The value of `key`, inserted by `make` if absent; whether it was inserted.
    pub(crate) fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> (&mut V, bool) {
        let shard = self.shard(&key);
        match Arc::make_mut(&mut self.shards[shard]).entry(key) {
            Entry::Occupied(e) => (e.into_mut(), false),
            Entry::Vacant(e) => {
                self.len += 1;
                (e.insert(make()), true)
            }
        }
    }

    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let old = self.shard_mut(&key).insert(key, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub(crate) fn remove<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        let removed = self.shard_holding(key)?.remove(key);
        self.len -= usize::from(removed.is_some());
        removed
    }

    /// Every entry, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(|shard| shard.iter())
    }

    /// Calls `f` on every value for which `changes` is true, copying only the shards that hold
    /// one (if a snapshot shares them).
    pub(crate) fn for_each_changing(&mut self, mut changes: impl FnMut(&V) -> bool, mut f: impl FnMut(&K, &mut V)) {
        for shard in &mut self.shards {
            if !shard.values().any(&mut changes) {
                continue;
            }
            for (key, value) in Arc::make_mut(shard).iter_mut() {
                if changes(value) {
                    f(key, value);
                }
            }
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone + PartialEq> PartialEq for ShardedMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u8, u32),
        Remove(u8),
        Bump(u8),
        Snapshot,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (any::<u8>(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            any::<u8>().prop_map(Op::Remove),
            any::<u8>().prop_map(Op::Bump),
            Just(Op::Snapshot),
        ]
    }

    proptest! {
        /// Behaves as one `HashMap`, and a copy never sees a write made after it was taken.
        #[test]
        fn behaves_as_a_hash_map_and_copies_stay_frozen(ops in proptest::collection::vec(op(), 0..200)) {
            let mut map = ShardedMap::default();
            let mut model: HashMap<u8, u32> = HashMap::new();
            let mut copies = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => prop_assert_eq!(map.insert(k, v), model.insert(k, v)),
                    Op::Remove(k) => prop_assert_eq!(map.remove(&k), model.remove(&k)),
                    Op::Bump(k) => {
                        if let Some(v) = map.get_mut(&k) {
                            *v = v.wrapping_add(1);
                        }
                        if let Some(v) = model.get_mut(&k) {
                            *v = v.wrapping_add(1);
                        }
                    }
                    Op::Snapshot => copies.push((map.clone(), model.clone())),
                }
                prop_assert_eq!(map.len(), model.len());
            }
            let entries: HashMap<u8, u32> = map.iter().map(|(k, v)| (*k, *v)).collect();
            prop_assert_eq!(&entries, &model);
            for (copy, then) in copies {
                let entries: HashMap<u8, u32> = copy.iter().map(|(k, v)| (*k, *v)).collect();
                prop_assert_eq!(entries, then);
            }
        }
    }

    #[test]
    fn a_write_copies_only_the_shard_it_changes() {
        let mut map = ShardedMap::default();
        for k in 0..10_000u32 {
            map.insert(k, k);
        }
        let copy = map.clone();
        *map.get_mut(&7).unwrap() = 0;
        let shared = map.shards.iter().zip(&copy.shards).filter(|(a, b)| Arc::ptr_eq(a, b)).count();
        assert_eq!(shared, SHARDS - 1);
        assert_eq!(copy.get(&7), Some(&7));
        let (value, inserted) = map.get_or_insert_with(10_000, || 1);
        assert!(inserted && *value == 1);
        map.for_each_changing(|v| *v == 1, |_, v| *v = 2);
        assert_eq!((map.get(&1), map.get(&10_000)), (Some(&2), Some(&2)));
        assert_eq!(copy.get(&1), Some(&1));
    }
}
