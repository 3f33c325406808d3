//! One of a member's two watch tables (ZooKeeper's `WatchManager`): which connections watch
//! which paths, and how. A connection may hold several modes on one path at once, as in
//! ZooKeeper 3.9+ (ZOOKEEPER-4466; in 3.8 the latest mode replaced the others): a one-shot
//! watch firing leaves the persistent one on the same path in place.

use std::collections::{BTreeMap, BTreeSet};

use super::ConnectionId;

/// How a connection watches a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Set by a read; fires once.
    Standard,
    /// addWatch PERSISTENT: every event on the path, until removed.
    Persistent,
    /// addWatch PERSISTENT_RECURSIVE: every event on the path and below, except children
    /// changed (a recursive watcher sees the children's own creations and deletions), so it
    /// is only ever in the data table.
    Recursive,
}

impl Mode {
    fn bit(self) -> u8 {
        match self {
            Mode::Standard => 1,
            Mode::Persistent => 2,
            Mode::Recursive => 4,
        }
    }
}

#[derive(Default)]
pub struct Manager {
    /// Path → watching connection → its modes (bits of [`Mode::bit`]).
    by_path: BTreeMap<String, BTreeMap<ConnectionId, u8>>,
    by_connection: BTreeMap<ConnectionId, BTreeSet<String>>,
    /// Recursive watches held: a change's ancestors are only looked up when there are some.
    recursive: usize,
}

impl Manager {
    pub fn add(&mut self, id: ConnectionId, path: &str, mode: Mode) {
        let modes = self.by_path.entry(path.to_string()).or_default().entry(id).or_default();
        if mode == Mode::Recursive && *modes & mode.bit() == 0 {
            self.recursive += 1;
        }
        *modes |= mode.bit();
        self.by_connection.entry(id).or_default().insert(path.to_string());
    }

    /// Whether `id` watches exactly `path` in `mode` (any mode when None).
    pub fn has(&self, id: ConnectionId, path: &str, mode: Option<Mode>) -> bool {
        let modes = self.by_path.get(path).and_then(|watchers| watchers.get(&id)).copied().unwrap_or(0);
        modes & mode.map_or(u8::MAX, Mode::bit) != 0
    }

    /// Removes `id`'s watch on `path` in `mode` (every mode when None); whether there was one.
    pub fn remove(&mut self, id: ConnectionId, path: &str, mode: Option<Mode>) -> bool {
        let Some(watchers) = self.by_path.get_mut(path) else { return false };
        let Some(modes) = watchers.get_mut(&id) else { return false };
        let before = *modes;
        *modes &= !mode.map_or(u8::MAX, Mode::bit);
        let after = *modes;
        if after == 0 {
            watchers.remove(&id);
            if watchers.is_empty() {
                self.by_path.remove(path);
            }
            self.forget_path(id, path);
        }
        self.count_recursive_lost(before, after);
        before != after
    }

    /// The connection closed: all its watches go.
    pub fn remove_connection(&mut self, id: ConnectionId) {
        for path in self.by_connection.remove(&id).unwrap_or_default() {
            let Some(watchers) = self.by_path.get_mut(&path) else { continue };
            let modes = watchers.remove(&id).unwrap_or(0);
            if watchers.is_empty() {
                self.by_path.remove(&path);
            }
            self.count_recursive_lost(modes, 0);
        }
    }

    /// The connections an event on `path` reaches (ZooKeeper's `triggerWatch`): every watcher
    /// of the path itself, whose one-shot watch is used up, and the recursive watchers of its
    /// ancestors. (Recursive watches are only ever in the data table, which children-changed
    /// events do not trigger.)
    pub fn trigger(&mut self, path: &str, reached: &mut BTreeSet<ConnectionId>) {
        let mut spent = Vec::new();
        if let Some(watchers) = self.by_path.get_mut(path) {
            for (&id, modes) in watchers.iter_mut() {
                reached.insert(id);
                *modes &= !Mode::Standard.bit();
                if *modes == 0 {
                    spent.push(id);
                }
            }
            watchers.retain(|_, modes| *modes != 0);
            if watchers.is_empty() {
                self.by_path.remove(path);
            }
        }
        for id in spent {
            self.forget_path(id, path);
        }
        if self.recursive == 0 {
            return;
        }
        for ancestor in ancestors(path) {
            for (&id, &modes) in self.by_path.get(ancestor).into_iter().flatten() {
                if modes & Mode::Recursive.bit() != 0 {
                    reached.insert(id);
                }
            }
        }
    }

    fn forget_path(&mut self, id: ConnectionId, path: &str) {
        if let Some(paths) = self.by_connection.get_mut(&id) {
            paths.remove(path);
            if paths.is_empty() {
                self.by_connection.remove(&id);
            }
        }
    }

    fn count_recursive_lost(&mut self, before: u8, after: u8) {
        let bit = Mode::Recursive.bit();
        if before & bit != 0 && after & bit == 0 {
            self.recursive -= 1;
        }
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.by_path.is_empty() && self.by_connection.is_empty() && self.recursive == 0
    }
}

/// `/a/b/c` → `/a/b`, `/a`, `/`.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut rest = path;
    std::iter::from_fn(move || {
        if rest == "/" || rest.is_empty() {
            return None;
        }
        let cut = rest.rfind('/')?;
        rest = if cut == 0 { "/" } else { &rest[..cut] };
        Some(rest)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reached(m: &mut Manager, path: &str) -> Vec<ConnectionId> {
        let mut set = BTreeSet::new();
        m.trigger(path, &mut set);
        set.into_iter().collect()
    }

    #[test]
    fn ancestors_up_to_the_root() {
        assert_eq!(ancestors("/a/b/c").collect::<Vec<_>>(), vec!["/a/b", "/a", "/"]);
        assert_eq!(ancestors("/a").collect::<Vec<_>>(), vec!["/"]);
        assert_eq!(ancestors("/").count(), 0);
    }

    #[test]
    fn one_shot_fires_once_persistent_stays() {
        let mut m = Manager::default();
        m.add(1, "/a", Mode::Standard);
        m.add(2, "/a", Mode::Persistent);
        assert_eq!(reached(&mut m, "/a"), vec![1, 2]);
        assert_eq!(reached(&mut m, "/a"), vec![2]);
        assert!(m.remove(2, "/a", Some(Mode::Persistent)));
        assert!(!m.remove(2, "/a", Some(Mode::Persistent)));
        assert!(m.is_empty());
    }

    #[test]
    fn a_one_shot_watch_spent_leaves_the_persistent_one_on_the_same_path() {
        let mut m = Manager::default();
        m.add(1, "/a", Mode::Persistent);
        m.add(1, "/a", Mode::Standard);
        assert_eq!(reached(&mut m, "/a"), vec![1]);
        assert!(m.has(1, "/a", Some(Mode::Persistent)) && !m.has(1, "/a", Some(Mode::Standard)));
        assert_eq!(reached(&mut m, "/a"), vec![1]);
    }

    #[test]
    fn recursive_watches_see_descendants() {
        let mut m = Manager::default();
        m.add(1, "/a", Mode::Recursive);
        m.add(2, "/", Mode::Recursive);
        assert_eq!(reached(&mut m, "/a/b/c"), vec![1, 2]);
        assert_eq!(reached(&mut m, "/a"), vec![1, 2]);
        assert_eq!(reached(&mut m, "/ab"), vec![2]);
        m.remove_connection(1);
        m.remove_connection(2);
        assert!(m.is_empty());
    }

    #[test]
    fn a_connection_closed_loses_every_mode() {
        let mut m = Manager::default();
        m.add(1, "/a", Mode::Standard);
        m.add(1, "/a", Mode::Recursive);
        m.add(1, "/b", Mode::Persistent);
        m.remove_connection(1);
        assert!(m.is_empty());
        assert_eq!(reached(&mut m, "/a/x"), Vec::<u64>::new());
    }
}
