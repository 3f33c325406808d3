//! This member's ZooKeeper watches: one-shot data and child watches set by reads on its
//! connections, fired as the tree's changes are applied here. The driver fires them while it
//! applies an entry, before the entry's writer is answered, so a connection always has a
//! change's notification queued before any reply that follows the change (ZooKeeper's order:
//! a client sees the event before it can see the new data).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use tally_zk::proto::{perms, state, EventType, Id, WatcherEvent};
use tally_zk::tree::acl;
use tally_zk::WatchEvent;
use tokio::sync::mpsc::UnboundedSender;

pub type ConnectionId = u64;

#[derive(Default)]
pub struct ZkWatches {
    inner: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    next_id: ConnectionId,
    connections: BTreeMap<ConnectionId, UnboundedSender<WatcherEvent>>,
    /// Each connection's identities (its address, its addauths): an event reaches a watcher
    /// only with READ on the changed node, as in ZooKeeper 3.8.0.
    auth: BTreeMap<ConnectionId, Vec<Id>>,
    /// Watches on a node's data and existence (getData, exists), by path.
    data: BTreeMap<String, BTreeSet<ConnectionId>>,
    /// Watches on a node's children (getChildren), by path.
    child: BTreeMap<String, BTreeSet<ConnectionId>>,
}

/// Which kind of watch a read sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Data,
    Child,
}

impl ZkWatches {
    /// A connection's id; its notifications go to `events`.
    pub fn connect(&self, events: UnboundedSender<WatcherEvent>) -> ConnectionId {
        let mut r = self.inner.lock().expect("watches lock");
        r.next_id += 1;
        let id = r.next_id;
        r.connections.insert(id, events);
        id
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
        let mut guard = self.inner.lock().expect("watches lock");
        let r = &mut *guard;
        r.connections.remove(&id);
        r.auth.remove(&id);
        for watchers in r.data.values_mut().chain(r.child.values_mut()) {
            watchers.remove(&id);
        }
        r.data.retain(|_, w| !w.is_empty());
        r.child.retain(|_, w| !w.is_empty());
    }

    pub fn add(&self, id: ConnectionId, kind: Kind, path: &str) {
        let mut r = self.inner.lock().expect("watches lock");
        let map = match kind {
            Kind::Data => &mut r.data,
            Kind::Child => &mut r.child,
        };
        map.entry(path.to_string()).or_default().insert(id);
    }

    /// Sends `event` to connection `id` now (a watch SetWatches finds already triggered).
    pub fn notify(&self, id: ConnectionId, event_type: EventType, path: &str) {
        let r = self.inner.lock().expect("watches lock");
        if let Some(events) = r.connections.get(&id) {
            let _ = events.send(notification(event_type, path));
        }
    }

    /// Fires the watches the applied changes trigger, each once (ZooKeeper's WatchManager):
    /// created, deleted and data changed reach data watches; deleted and children changed reach
    /// child watches. A watcher without READ on the changed node loses its watch unseen.
    pub fn fire(&self, changes: &[WatchEvent]) {
        let mut r = self.inner.lock().expect("watches lock");
        for change in changes {
            let (data, child) = match change.event_type {
                EventType::NodeCreated | EventType::NodeDataChanged => (true, false),
                EventType::NodeDeleted => (true, true),
                EventType::NodeChildrenChanged => (false, true),
                _ => (false, false),
            };
            let mut reached = BTreeSet::new();
            if data {
                reached.extend(r.data.remove(&change.path).unwrap_or_default());
            }
            if child {
                reached.extend(r.child.remove(&change.path).unwrap_or_default());
            }
            for id in reached {
                let auth = r.auth.get(&id).map_or(&[][..], Vec::as_slice);
                if acl::check(&change.acl, perms::READ, auth).is_err() {
                    continue;
                }
                if let Some(events) = r.connections.get(&id) {
                    let _ = events.send(notification(change.event_type, &change.path));
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
        let id = watches.connect(tx);
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
        let id = watches.connect(tx);
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
        let id = watches.connect(tx);
        watches.add(id, Kind::Data, "/a");
        watches.disconnect(id);
        watches.fire(&[change("/a", EventType::NodeDeleted)]);
        assert!(rx.try_recv().is_err());
        assert!(watches.inner.lock().unwrap().data.is_empty());
    }
}
