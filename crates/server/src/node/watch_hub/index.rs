//! Which watchers want a key: single-key watchers in a hash map, range and prefix watchers in an
//! interval tree, so finding them costs O(1) plus O(log n) per range watcher found, however many
//! watchers are registered (etcd's watcher group: a map and an interval tree).

use std::collections::HashMap;

use super::intervals::{End, Intervals};

#[derive(Default)]
pub struct WatchIndex {
    keys: HashMap<Vec<u8>, Vec<u64>>,
    ranges: Intervals,
}

/// How etcd reads a watch's range end: empty is the key alone, "\0" is every key from `key` on.
fn range_end(range_end: &[u8]) -> Option<End> {
    match range_end {
        [] => None,
        [0] => Some(End::Unbounded),
        end => Some(End::Key(end.to_vec())),
    }
}

impl WatchIndex {
    pub fn insert(&mut self, key: &[u8], end: &[u8], id: u64) {
        match range_end(end) {
            None => self.keys.entry(key.to_vec()).or_default().push(id),
            Some(end) => self.ranges.insert(key, end, id),
        }
    }

    pub fn remove(&mut self, key: &[u8], end: &[u8], id: u64) {
        match range_end(end) {
            None => {
                if let Some(ids) = self.keys.get_mut(key) {
                    ids.retain(|&i| i != id);
                    if ids.is_empty() {
                        self.keys.remove(key);
                    }
                }
            }
            Some(end) => {
                self.ranges.remove(key, &end, id);
            }
        }
    }

    /// Adds to `out` every watcher whose range contains `key`.
    pub fn watching(&self, key: &[u8], out: &mut Vec<u64>) {
        if let Some(ids) = self.keys.get(key) {
            out.extend_from_slice(ids);
        }
        self.ranges.containing(key, out);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The plain scan the index replaces: a watcher wants a key its range contains.
    fn covers(key: &[u8], end: &[u8], probe: &[u8]) -> bool {
        match end {
            [] => probe == key,
            [0] => probe >= key,
            end => probe >= key && probe < end,
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Add(Vec<u8>, Vec<u8>),
        /// Removes the n-th registered watcher (modulo how many there are).
        Remove(usize),
        Find(Vec<u8>),
    }

    /// Short keys over a small alphabet, so that ranges overlap, nest and share bounds often.
    fn key() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::sample::select(vec![0u8, b'a', b'b', b'c', 0xff]), 0..4)
    }

    fn end() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![Just(vec![]), Just(vec![0]), key()]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (key(), end()).prop_map(|(k, e)| Op::Add(k, e)),
            1 => any::<usize>().prop_map(Op::Remove),
            3 => key().prop_map(Op::Find),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        #[test]
        fn finds_the_same_watchers_as_a_plain_scan(ops in prop::collection::vec(op(), 1..200)) {
            let mut index = WatchIndex::default();
            let mut registered: Vec<(u64, Vec<u8>, Vec<u8>)> = Vec::new();
            let mut next_id = 0;
            for op in ops {
                match op {
                    Op::Add(k, e) => {
                        index.insert(&k, &e, next_id);
                        registered.push((next_id, k, e));
                        next_id += 1;
                    }
                    Op::Remove(n) if !registered.is_empty() => {
                        let (id, k, e) = registered.swap_remove(n % registered.len());
                        index.remove(&k, &e, id);
                    }
                    Op::Remove(_) => {}
                    Op::Find(probe) => {
                        let mut found = Vec::new();
                        index.watching(&probe, &mut found);
                        found.sort_unstable();
                        let mut want: Vec<u64> =
                            registered.iter().filter(|(_, k, e)| covers(k, e, &probe)).map(|(id, _, _)| *id).collect();
                        want.sort_unstable();
                        prop_assert_eq!(found, want, "probe {:?}", probe);
                    }
                }
            }
        }
    }

    #[test]
    fn a_hundred_thousand_ranges_stay_shallow_and_removable() {
        let mut index = WatchIndex::default();
        let prefix = |i: u32| format!("p/{i:06}/").into_bytes();
        let prefix_end = |i: u32| format!("p/{i:06}0").into_bytes(); // '/' + 1
        for i in 0..100_000 {
            index.insert(&prefix(i), &prefix_end(i), i as u64);
        }
        let mut found = Vec::new();
        index.watching(b"p/004242/x", &mut found);
        assert_eq!(found, vec![4242]);
        for i in 0..100_000 {
            index.remove(&prefix(i), &prefix_end(i), i as u64);
        }
        found.clear();
        index.watching(b"p/004242/x", &mut found);
        assert!(found.is_empty());
        assert!(index.ranges.is_empty());
    }
}
