//! Undoable changes to the tree: a multi applies its ops one by one, each seeing the ones before
//! (as ZooKeeper's leader checks them against its pending changes), and undoes them all if one
//! fails. Each change records its inverse; old values are moved, not copied, so a change costs
//! the same whether or not it is ever undone.

use super::apply::WatchEvent;
use super::node::{NodeStat, Znode};
use super::path;
use super::state::ZkState;
use crate::proto::{Acl, EventType, Stat};

/// The inverse of one change.
enum Undo {
    Stat { path: String, old: NodeStat },
    Data { path: String, old: Option<Vec<u8>> },
    Acl { path: String, old: Vec<Acl> },
    Attach { path: String },
    Detach { path: String, node: Znode },
}

/// Changes in progress on a state, with the watch events they trigger.
pub(crate) struct Tx<'a> {
    state: &'a mut ZkState,
    undo: Vec<Undo>,
    events: Vec<WatchEvent>,
}

impl<'a> Tx<'a> {
    pub fn new(state: &'a mut ZkState) -> Tx<'a> {
        Tx { state, undo: Vec::new(), events: Vec::new() }
    }

    /// The state with the changes so far.
    pub fn state(&self) -> &ZkState {
        self.state
    }

    /// Adds a node, changing its parent's stat with `parent_stat`.
    pub fn attach(&mut self, path: String, node: Znode, parent_stat: impl FnOnce(&mut NodeStat)) {
        let old = self.state.attach(path.clone(), node, parent_stat);
        let parent = path::split(&path).expect("a node's path has a parent").0.to_string();
        self.undo.push(Undo::Attach { path });
        self.undo.push(Undo::Stat { path: parent, old });
    }

    /// Removes a childless node, changing its parent's stat with `parent_stat`.
    pub fn detach(&mut self, path: &str, parent_stat: impl FnOnce(&mut NodeStat)) {
        let (node, old) = self.state.detach(path, parent_stat);
        let parent = path::split(path).expect("a node's path has a parent").0.to_string();
        self.undo.push(Undo::Detach { path: path.to_string(), node });
        self.undo.push(Undo::Stat { path: parent, old });
    }

    /// Changes a node's stat; the Stat clients see after it.
    pub fn update_stat(&mut self, path: &str, change: impl FnOnce(&mut NodeStat)) -> Stat {
        let node = self.state.node_mut(path);
        let old = node.stat;
        change(&mut node.stat);
        let stat = node.stat();
        self.undo.push(Undo::Stat { path: path.to_string(), old });
        stat
    }

    /// Replaces a node's data and changes its stat, with one look-up of the node; the Stat
    /// clients see after it.
    pub fn set_data(&mut self, path: &str, data: Option<Vec<u8>>, change: impl FnOnce(&mut NodeStat)) -> Stat {
        let node = self.state.node_mut(path);
        let old_data = std::mem::replace(&mut node.data, data);
        let old_stat = node.stat;
        change(&mut node.stat);
        let stat = node.stat();
        self.undo.push(Undo::Data { path: path.to_string(), old: old_data });
        self.undo.push(Undo::Stat { path: path.to_string(), old: old_stat });
        stat
    }

    pub fn set_acl(&mut self, path: &str, acl: Vec<Acl>) {
        let old = std::mem::replace(&mut self.state.node_mut(path).acl, acl);
        self.undo.push(Undo::Acl { path: path.to_string(), old });
    }

    /// A watch event on `path`, with the ACL of the node there: as it is now, or as it was when
    /// it was detached (a NodeDeleted).
    pub fn event(&mut self, path: &str, event_type: EventType) {
        let acl = match self.state.node(path) {
            Some(node) => node.acl.clone(),
            None => self
                .undo
                .iter()
                .rev()
                .find_map(|undo| match undo {
                    Undo::Detach { path: detached, node } if detached == path => Some(node.acl.clone()),
                    _ => None,
                })
                .unwrap_or_default(),
        };
        self.events.push(WatchEvent { path: path.to_string(), event_type, acl });
    }

    /// Keeps the changes; their events, in the order they happened.
    pub fn commit(self) -> Vec<WatchEvent> {
        self.events
    }

    /// Undoes every change, newest first; no event is kept.
    pub fn rollback(self) {
        for undo in self.undo.into_iter().rev() {
            match undo {
                Undo::Stat { path, old } => self.state.node_mut(&path).stat = old,
                Undo::Data { path, old } => self.state.node_mut(&path).data = old,
                Undo::Acl { path, old } => self.state.node_mut(&path).acl = old,
                Undo::Attach { path } => {
                    self.state.detach(&path, |_| {});
                }
                Undo::Detach { path, node } => {
                    self.state.attach(path, node, |_| {});
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_restores_the_state_exactly() {
        let mut state = ZkState::new();
        let before = state.clone();
        let mut tx = Tx::new(&mut state);
        tx.attach("/a".into(), Znode::default(), |s| s.pzxid = 9);
        tx.update_stat("/", |s| s.cversion += 1);
        tx.set_data("/zookeeper", Some(b"x".to_vec()), |s| s.version += 1);
        tx.set_acl("/zookeeper", vec![]);
        tx.detach("/a", |s| s.pzxid = 10);
        tx.detach("/zookeeper/quota", |_| {});
        tx.event("/a", EventType::NodeCreated);
        tx.rollback();
        assert_eq!(state, before);
    }

    #[test]
    fn commit_keeps_changes_and_events_in_order() {
        let mut state = ZkState::new();
        let mut tx = Tx::new(&mut state);
        tx.attach("/a".into(), Znode::default(), |_| {});
        tx.event("/a", EventType::NodeCreated);
        tx.event("/", EventType::NodeChildrenChanged);
        let events = tx.commit();
        assert_eq!(
            events.iter().map(|e| e.event_type).collect::<Vec<_>>(),
            [EventType::NodeCreated, EventType::NodeChildrenChanged]
        );
        assert!(state.node("/a").is_some());
    }

    #[test]
    fn events_carry_the_acl_of_their_node_deleted_or_not() {
        let mut state = ZkState::new();
        let mut tx = Tx::new(&mut state);
        tx.attach("/a".into(), Znode { acl: Acl::read_unsafe(), ..Znode::default() }, |_| {});
        tx.event("/a", EventType::NodeCreated);
        tx.event("/", EventType::NodeChildrenChanged);
        tx.detach("/a", |_| {});
        tx.event("/a", EventType::NodeDeleted);
        let acls: Vec<_> = tx.commit().into_iter().map(|e| e.acl).collect();
        assert_eq!(acls, [Acl::read_unsafe(), Acl::open_unsafe(), Acl::read_unsafe()]);
    }
}
