//! This member's ZooKeeper watches, set by reads and addWatch on its connections and fired as
//! the tree's changes are applied here. The driver fires them while it applies an entry,
//! before the entry's writer is answered, so a connection always has a change's notification
//! queued before any reply that follows the change (ZooKeeper's order: a client sees the
//! event before it can see the new data).
//!
//! As in ZooKeeper's `DataTree`, there are two tables: data watches (getData, exists, and
//! addWatch's persistent and recursive watches), triggered by a node's creation, deletion and
//! data change; and child watches (getChildren, and persistent watches), triggered by its
//! deletion and its children changing. A change reaches each connection once.

mod manager;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use tally_zk::proto::{add_watch_mode, perms, state, watcher_type, EventType, Id, WatcherEvent};
use tally_zk::tree::acl;
use tally_zk::{WatchEvent, ZkError};
use tokio::sync::mpsc::UnboundedSender;

use manager::{Manager, Mode};

pub type ConnectionId = u64;

#[derive(Default)]
pub struct ZkWatches {
    inner: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    next_id: ConnectionId,
    connections: BTreeMap<ConnectionId, Connection>,
    /// Each connection's identities (its address, its addauths): an event reaches a watcher
    /// only with READ on the changed node, as in ZooKeeper 3.8.0.
    auth: BTreeMap<ConnectionId, Vec<Id>>,
    data: Manager,
    child: Manager,
}

struct Connection {
    /// Dropped to close the connection (its session moved to another connection).
    events: UnboundedSender<WatcherEvent>,
    session: i64,
    /// The number the connection's attach was replicated with (see `ZkCommand::Attach`).
    owner: u64,
}

/// Which kind of one-shot watch a read sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Data,
    Child,
}

/// The watches checkWatches and removeWatches name (ZooKeeper's `WatcherType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatcherType {
    Children,
    Data,
    Any,
    Persistent,
    PersistentRecursive,
}

impl WatcherType {
    /// ZooKeeper fails an unknown type while decoding, with MarshallingError.
    pub fn from_code(code: i32) -> Result<Self, ZkError> {
        Ok(match code {
            watcher_type::CHILDREN => WatcherType::Children,
            watcher_type::DATA => WatcherType::Data,
            watcher_type::ANY => WatcherType::Any,
            watcher_type::PERSISTENT => WatcherType::Persistent,
            watcher_type::PERSISTENT_RECURSIVE => WatcherType::PersistentRecursive,
            _ => return Err(ZkError::MarshallingError),
        })
    }
}

impl ZkWatches {
    /// A connection's id; its notifications go to `events`, which is dropped if `session`
    /// moves to a connection other than `owner`.
    pub fn connect(&self, events: UnboundedSender<WatcherEvent>, session: i64, owner: u64) -> ConnectionId {
        let mut r = self.inner.lock().expect("watches lock");
        r.next_id += 1;
        let id = r.next_id;
        r.connections.insert(id, Connection { events, session, owner });
        id
    }

    /// `session` was reattached on connection `owner`, here or on another member: its other
    /// connections here are closed (ZooKeeper refuses a moved session's old connection).
    pub fn attached(&self, session: i64, owner: u64) {
        let mut r = self.inner.lock().expect("watches lock");
        r.connections.retain(|_, c| c.session != session || c.owner == owner);
    }

    /// The connection's identities now (set at connect and after each addauth).
    pub fn authenticate(&self, id: ConnectionId, auth: &[Id]) {
        self.inner.lock().expect("watches lock").auth.insert(id, auth.to_vec());
    }

    /// Open client connections.
    pub fn connections(&self) -> usize {
        self.inner.lock().expect("watches lock").connections.len()
    }

    /// The connection closed: its watches go with it.
    pub fn disconnect(&self, id: ConnectionId) {
        let mut r = self.inner.lock().expect("watches lock");
        r.connections.remove(&id);
        r.auth.remove(&id);
        r.data.remove_connection(id);
        r.child.remove_connection(id);
    }

    /// A one-shot watch set by a read.
    pub fn add(&self, id: ConnectionId, kind: Kind, path: &str) {
        let mut r = self.inner.lock().expect("watches lock");
        match kind {
            Kind::Data => r.data.add(id, path, Mode::Standard),
            Kind::Child => r.child.add(id, path, Mode::Standard),
        }
    }

    /// addWatch: a persistent watch is in both tables, a recursive one in the data table only.
    pub fn add_persistent(&self, id: ConnectionId, path: &str, mode: i32) -> Result<(), ZkError> {
        let mut r = self.inner.lock().expect("watches lock");
        match mode {
            add_watch_mode::PERSISTENT => {
                r.data.add(id, path, Mode::Persistent);
                r.child.add(id, path, Mode::Persistent);
            }
            add_watch_mode::PERSISTENT_RECURSIVE => r.data.add(id, path, Mode::Recursive),
            _ => return Err(ZkError::MarshallingError),
        }
        Ok(())
    }

    /// checkWatches: NoWatcher unless the connection watches exactly `path` that way.
    pub fn check(&self, id: ConnectionId, path: &str, which: WatcherType) -> Result<(), ZkError> {
        let r = self.inner.lock().expect("watches lock");
        let found = match which {
            WatcherType::Children => r.child.has(id, path, Some(Mode::Standard)),
            WatcherType::Data => r.data.has(id, path, Some(Mode::Standard)),
            WatcherType::Persistent => r.data.has(id, path, Some(Mode::Persistent)),
            WatcherType::PersistentRecursive => r.data.has(id, path, Some(Mode::Recursive)),
            WatcherType::Any => r.child.has(id, path, None) || r.data.has(id, path, None),
        };
        found.then_some(()).ok_or(ZkError::NoWatcher)
    }

    /// removeWatches: NoWatcher unless there was such a watch to remove.
    pub fn remove(&self, id: ConnectionId, path: &str, which: WatcherType) -> Result<(), ZkError> {
        let mut guard = self.inner.lock().expect("watches lock");
        let r = &mut *guard;
        let removed = match which {
            WatcherType::Children => r.child.remove(id, path, Some(Mode::Standard)),
            WatcherType::Data => r.data.remove(id, path, Some(Mode::Standard)),
            WatcherType::Persistent => {
                let child = r.child.remove(id, path, Some(Mode::Persistent));
                r.data.remove(id, path, Some(Mode::Persistent)) || child
            }
            WatcherType::PersistentRecursive => r.data.remove(id, path, Some(Mode::Recursive)),
            WatcherType::Any => {
                let child = r.child.remove(id, path, None);
                r.data.remove(id, path, None) || child
            }
        };
        removed.then_some(()).ok_or(ZkError::NoWatcher)
    }

    /// Sends `event` to connection `id` now (a watch SetWatches finds already triggered).
    pub fn notify(&self, id: ConnectionId, event_type: EventType, path: &str) {
        let r = self.inner.lock().expect("watches lock");
        if let Some(c) = r.connections.get(&id) {
            let _ = c.events.send(notification(event_type, path));
        }
    }

    /// Fires the watches the applied changes trigger (ZooKeeper's `DataTree`): created and
    /// data changed reach the data table; deleted both tables; children changed the child
    /// table. Each change reaches a connection once; a watcher without READ on the changed
    /// node (its parent, for children changed) loses a one-shot watch unseen.
    pub fn fire(&self, changes: &[WatchEvent]) {
        let mut guard = self.inner.lock().expect("watches lock");
        let r = &mut *guard;
        for change in changes {
            let (data, child) = match change.event_type {
                EventType::NodeCreated | EventType::NodeDataChanged => (true, false),
                EventType::NodeDeleted => (true, true),
                EventType::NodeChildrenChanged => (false, true),
                _ => (false, false),
            };
            let mut reached = BTreeSet::new();
            if data {
                r.data.trigger(&change.path, &mut reached);
            }
            if child {
                r.child.trigger(&change.path, &mut reached);
            }
            for id in reached {
                let auth = r.auth.get(&id).map_or(&[][..], Vec::as_slice);
                if acl::check(&change.acl, perms::READ, auth).is_err() {
                    continue;
                }
                if let Some(c) = r.connections.get(&id) {
                    let _ = c.events.send(notification(change.event_type, &change.path));
                }
            }
        }
    }
}

fn notification(event_type: EventType, path: &str) -> WatcherEvent {
    WatcherEvent { event_type: event_type.code(), state: state::SYNC_CONNECTED, path: path.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc::unbounded_channel;

    fn change(path: &str, event_type: EventType) -> WatchEvent {
        WatchEvent { path: path.into(), event_type, acl: tally_zk::proto::Acl::open_unsafe() }
    }

    #[test]
    fn watches_fire_once_for_the_changes_they_watch() {
        let watches = ZkWatches::default();
        let (tx, mut rx) = unbounded_channel();
        let id = watches.connect(tx, 1, 1);
        watches.add(id, Kind::Data, "/a");
        watches.add(id, Kind::Child, "/");
        // A child change on /a does not reach a data watch on it.
        watches.fire(&[change("/a", EventType::NodeChildrenChanged)]);
        assert!(rx.try_recv().is_err());
        watches.fire(&[change("/a", EventType::NodeDataChanged), change("/", EventType::NodeChildrenChanged)]);
        let got: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok()).map(|e| (e.event_type, e.path)).collect();
        assert_eq!(got, vec![(3, "/a".to_string()), (4, "/".to_string())]);
        // One-shot: the same changes again reach nobody.
        watches.fire(&[change("/a", EventType::NodeDataChanged), change("/", EventType::NodeChildrenChanged)]);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_watcher_without_read_loses_its_watch_unseen() {
        let watches = ZkWatches::default();
        let (tx, mut rx) = unbounded_channel();
        let id = watches.connect(tx, 1, 1);
        let bob = Id { scheme: "digest".into(), id: "bob:hash".into() };
        let bobs = vec![tally_zk::proto::Acl { perms: perms::ALL, id: bob.clone() }];
        watches.add(id, Kind::Data, "/a");
        watches.fire(&[WatchEvent { acl: bobs.clone(), ..change("/a", EventType::NodeDataChanged) }]);
        watches.fire(&[change("/a", EventType::NodeDataChanged)]);
        assert!(rx.try_recv().is_err(), "not delivered, and the watch is gone");
        watches.authenticate(id, &[bob]);
        watches.add(id, Kind::Data, "/a");
        watches.fire(&[WatchEvent { acl: bobs, ..change("/a", EventType::NodeDataChanged) }]);
        assert_eq!(rx.try_recv().map(|e| e.path), Ok("/a".to_string()));
    }

    #[test]
    fn a_closed_connection_loses_its_watches() {
        let watches = ZkWatches::default();
        let (tx, mut rx) = unbounded_channel();
        let id = watches.connect(tx, 1, 1);
        watches.add(id, Kind::Data, "/a");
        watches.disconnect(id);
        watches.fire(&[change("/a", EventType::NodeDeleted)]);
        assert!(rx.try_recv().is_err());
        assert!(watches.inner.lock().unwrap().data.is_empty());
    }

    fn received(rx: &mut tokio::sync::mpsc::UnboundedReceiver<WatcherEvent>) -> Vec<(i32, String)> {
        std::iter::from_fn(|| rx.try_recv().ok()).map(|e| (e.event_type, e.path)).collect()
    }

    #[test]
    fn persistent_watches_see_every_event_on_their_path() {
        let watches = ZkWatches::default();
        let (tx, mut rx) = unbounded_channel();
        let id = watches.connect(tx, 1, 1);
        watches.add_persistent(id, "/a", add_watch_mode::PERSISTENT).unwrap();
        for _ in 0..2 {
            watches.fire(&[
                change("/a", EventType::NodeCreated),
                change("/a/b", EventType::NodeCreated),
                change("/a", EventType::NodeChildrenChanged),
                change("/a", EventType::NodeDataChanged),
                change("/a", EventType::NodeDeleted),
            ]);
            let a = "/a".to_string();
            assert_eq!(received(&mut rx), vec![(1, a.clone()), (4, a.clone()), (3, a.clone()), (2, a)]);
        }
        watches.check(id, "/a", WatcherType::Persistent).unwrap();
        assert_eq!(watches.check(id, "/a", WatcherType::Data), Err(ZkError::NoWatcher));
        watches.remove(id, "/a", WatcherType::Persistent).unwrap();
        assert_eq!(watches.remove(id, "/a", WatcherType::Any), Err(ZkError::NoWatcher));
        watches.fire(&[change("/a", EventType::NodeDataChanged)]);
        assert!(received(&mut rx).is_empty());
    }

    #[test]
    fn recursive_watches_see_the_subtree_but_not_children_changed() {
        let watches = ZkWatches::default();
        let (tx, mut rx) = unbounded_channel();
        let id = watches.connect(tx, 1, 1);
        watches.add_persistent(id, "/a", add_watch_mode::PERSISTENT_RECURSIVE).unwrap();
        watches.add(id, Kind::Child, "/a");
        watches.fire(&[
            change("/a/b/c", EventType::NodeCreated),
            change("/a/b", EventType::NodeChildrenChanged),
            change("/a/b/c", EventType::NodeDataChanged),
            change("/a/b/c", EventType::NodeDeleted),
            change("/a", EventType::NodeChildrenChanged),
            change("/ab", EventType::NodeCreated),
        ]);
        let c = "/a/b/c".to_string();
        // The one-shot child watch on /a fires once; the recursive one ignores it.
        assert_eq!(received(&mut rx), vec![(1, c.clone()), (3, c.clone()), (2, c), (4, "/a".to_string())]);
        assert_eq!(watches.add_persistent(id, "/a", 7), Err(ZkError::MarshallingError));
        assert_eq!(WatcherType::from_code(9), Err(ZkError::MarshallingError));
        watches.disconnect(id);
        let r = watches.inner.lock().unwrap();
        assert!(r.data.is_empty() && r.child.is_empty());
    }

    #[test]
    fn a_session_attached_elsewhere_closes_its_other_connections() {
        let watches = ZkWatches::default();
        let (old_tx, mut old_rx) = unbounded_channel();
        let (other_tx, mut other_rx) = unbounded_channel::<WatcherEvent>();
        watches.connect(old_tx, 7, 100);
        watches.connect(other_tx, 8, 100);
        watches.attached(7, 100);
        assert_eq!(watches.connections(), 2, "its own attach closes nothing");
        watches.attached(7, 200);
        assert!(matches!(old_rx.try_recv(), Err(tokio::sync::mpsc::error::TryRecvError::Disconnected)));
        assert!(matches!(other_rx.try_recv(), Err(tokio::sync::mpsc::error::TryRecvError::Empty)));
    }
}
