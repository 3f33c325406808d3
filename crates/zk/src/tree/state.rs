//! The replicated state: the znode tree, the live sessions, and the last applied index, with the
//! indexes that follow from the nodes (each node's children, each session's ephemerals, the
//! containers and TTL nodes).
//!
//! The nodes are in `imbl`'s persistent hash map, by path: a look-up hashes the path once,
//! where a B-tree of 100k paths compared it with ~17 others, each comparison a cache miss (on
//! a large tree, creates spent a fifth of the leader's driver there). Everything else is in
//! `imbl`'s ordered maps and sets, so every iteration, and so every output, is in path (or id)
//! order on every replica; what lists the nodes themselves sorts them. Each node sits behind
//! an `Arc`: a clone, which a snapshot takes on the Raft thread, shares them all, and a write
//! while it lives copies only the few map nodes on its way, and the znodes it changes.

use std::sync::Arc;

use imbl::{HashMap, OrdMap, OrdSet};

use super::children::Children;
use super::node::{NodeKind, NodeStat, Znode};
use super::path;
use super::session::Session;
use crate::proto::Acl;

/// The znode tree and its sessions. Changed only by [`ZkState::apply`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZkState {
    /// Every node by its full path. Invariant: every node but the root has its parent here.
    /// Paths are shared (`Arc<str>`): a write while a snapshot's copy lives copies the map
    /// nodes on its way, and with them every path they hold.
    pub(crate) nodes: HashMap<Arc<str>, Arc<Znode>>,
    /// Invariant: exactly the paths of `nodes` but the root's; each node's `num_children`
    /// counts its own here.
    children: Children,
    pub(crate) sessions: OrdMap<i64, Session>,
    /// The index of the last command applied (0 before any).
    pub(crate) last_zxid: i64,
    /// Invariant: exactly the ephemeral nodes, as (owner, path); every owner is a live session.
    ephemerals: OrdSet<(i64, String)>,
    /// Invariant: exactly the container nodes.
    containers: OrdSet<String>,
    /// Invariant: exactly the TTL nodes.
    ttls: OrdSet<String>,
}

impl Default for ZkState {
    fn default() -> ZkState {
        ZkState::new()
    }
}

impl ZkState {
    /// A fresh tree as ZooKeeper's `DataTree` starts: `/`, `/zookeeper`, `/zookeeper/quota`, and
    /// `/zookeeper/config` readable by anyone only (its aversion -1, from the setACL ZooKeeper
    /// applies with version -1). Every stat is zero.
    pub fn new() -> ZkState {
        let mut state = ZkState::empty();
        let open = || Znode { data: Some(Vec::new()), acl: Acl::open_unsafe(), ..Znode::default() };
        assert!(state.restore_node("/".to_string(), open()));
        state.attach("/zookeeper".to_string(), open(), |_| {});
        state.attach("/zookeeper/quota".to_string(), open(), |_| {});
        let config =
            Znode { acl: Acl::read_unsafe(), stat: NodeStat { aversion: -1, ..NodeStat::default() }, ..open() };
        state.attach("/zookeeper/config".to_string(), config, |_| {});
        state
    }

    /// No nodes at all, not even the root: only for rebuilding from a snapshot.
    pub(crate) fn empty() -> ZkState {
        ZkState {
            nodes: HashMap::new(),
            children: Children::default(),
            sessions: OrdMap::new(),
            last_zxid: 0,
            ephemerals: OrdSet::new(),
            containers: OrdSet::new(),
            ttls: OrdSet::new(),
        }
    }

    /// The index of the last command applied.
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    pub fn node(&self, path: &str) -> Option<&Znode> {
        self.nodes.get(path).map(Arc::as_ref)
    }

    /// Every node, in path order (so each after its parent).
    pub(crate) fn nodes_in_path_order(&self) -> Vec<(&str, &Znode)> {
        let mut nodes: Vec<(&str, &Znode)> = self.nodes.iter().map(|(p, n)| (p.as_ref(), n.as_ref())).collect();
        nodes.sort_unstable_by_key(|&(path, _)| path);
        nodes
    }

    /// Number of nodes, the root and ZooKeeper's own included.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The names of a node's children, in name order (none for a missing node).
    pub(crate) fn child_names<'a>(&'a self, path: &str) -> impl Iterator<Item = &'a str> {
        self.children.names(path)
    }

    /// Number of a node's descendants at any depth (0 for a missing node); not for the root.
    pub(crate) fn descendant_count(&self, path: &str) -> usize {
        self.children.descendant_count(path)
    }

    pub fn session(&self, id: i64) -> Option<&Session> {
        self.sessions.get(&id)
    }

    /// Live sessions by id: what a new leader's session clock starts timing.
    pub fn sessions(&self) -> impl Iterator<Item = (i64, &Session)> {
        self.sessions.iter().map(|(&id, s)| (id, s))
    }

    /// A session's ephemeral nodes, in path order.
    pub fn ephemerals(&self, session: i64) -> impl Iterator<Item = &str> {
        let owned = self.ephemerals.range((session, String::new())..);
        owned.take_while(move |(owner, _)| *owner == session).map(|(_, path)| path.as_str())
    }

    /// Container nodes, in path order.
    pub(crate) fn containers(&self) -> impl Iterator<Item = &str> {
        self.containers.iter().map(String::as_str)
    }

    /// TTL nodes, in path order.
    pub(crate) fn ttls(&self) -> impl Iterator<Item = &str> {
        self.ttls.iter().map(String::as_str)
    }

    /// Adds a node under its existing parent and indexes it. `parent_stat` changes the parent's
    /// stat at the same look-up (each look-up searches a big B-tree); the parent's stat before.
    pub(crate) fn attach(&mut self, path: String, node: Znode, parent_stat: impl FnOnce(&mut NodeStat)) -> NodeStat {
        let (parent, _) = path::split(&path).expect("a node's path has a parent");
        let parent = Arc::make_mut(self.nodes.get_mut(parent).expect("a new node's parent exists"));
        parent.num_children += 1;
        let old = parent.stat;
        parent_stat(&mut parent.stat);
        assert!(self.children.insert(&path), "{path} is not yet a child of its parent");
        self.index(&path, node.kind(), true);
        assert!(self.nodes.insert(path.into(), Arc::new(node)).is_none(), "attach replaces no node");
        old
    }

    /// Removes a childless node and unindexes it; `parent_stat` as for [`ZkState::attach`]. The
    /// node, and its parent's stat before.
    pub(crate) fn detach(&mut self, path: &str, parent_stat: impl FnOnce(&mut NodeStat)) -> (Znode, NodeStat) {
        let node = self.nodes.remove(path).expect("a detached node exists");
        assert_eq!(node.num_children, 0, "{path} has no children when detached");
        let (parent, _) = path::split(path).expect("a node's path has a parent");
        let parent = Arc::make_mut(self.nodes.get_mut(parent).expect("a node's parent exists"));
        parent.num_children -= 1;
        let old = parent.stat;
        parent_stat(&mut parent.stat);
        assert!(self.children.remove(path), "{path} was a child of its parent");
        self.index(path, node.kind(), false);
        (Arc::unwrap_or_clone(node), old)
    }

    /// The node to change; a clone of it first if a copy of the state shares it.
    pub(crate) fn node_mut(&mut self, path: &str) -> &mut Znode {
        Arc::make_mut(self.nodes.get_mut(path).expect("a changed node exists"))
    }

    /// Adds a node read from a snapshot, whose parent came before it. False if the path is invalid
    /// or taken, or its parent is missing.
    pub(crate) fn restore_node(&mut self, path: String, node: Znode) -> bool {
        if !path::is_valid(&path) || self.nodes.contains_key(path.as_str()) {
            return false;
        }
        if path == "/" {
            self.index(&path, node.kind(), true);
            self.nodes.insert(path.into(), Arc::new(node));
            return true;
        }
        let (parent, _) = path::split(&path).expect("a valid path has a slash");
        if !self.nodes.contains_key(parent) {
            return false;
        }
        self.attach(path, node, |_| {});
        true
    }

    fn index(&mut self, path: &str, kind: NodeKind, add: bool) {
        match kind {
            NodeKind::Persistent => {}
            NodeKind::Ephemeral { session } => toggle(&mut self.ephemerals, (session, path.to_string()), add),
            NodeKind::Container => toggle(&mut self.containers, path.to_string(), add),
            NodeKind::Ttl { .. } => toggle(&mut self.ttls, path.to_string(), add),
        }
    }

    /// Checks the invariants the indexes and the child counts must keep; for tests and the
    /// simulator (it walks the whole tree).
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut rebuilt = ZkState::empty();
        rebuilt.sessions = self.sessions.clone();
        for (path, node) in self.nodes_in_path_order() {
            let bare = Znode { num_children: 0, ..node.clone() };
            if !rebuilt.restore_node(path.to_string(), bare) {
                return Err(format!("{path} has no parent"));
            }
        }
        if (&rebuilt.nodes, &rebuilt.children) != (&self.nodes, &self.children) {
            return Err("children or their counts differ from the paths".into());
        }
        if (&rebuilt.ephemerals, &rebuilt.containers, &rebuilt.ttls) != (&self.ephemerals, &self.containers, &self.ttls)
        {
            return Err("indexes differ from the nodes".into());
        }
        if let Some((owner, _)) = self.ephemerals.iter().find(|(s, _)| !self.sessions.contains_key(s)) {
            return Err(format!("ephemerals of closed session {owner:#x}"));
        }
        Ok(())
    }
}

/// Adds `item` to `set`, or removes it.
fn toggle<T: Ord + Clone>(set: &mut OrdSet<T>, item: T, add: bool) {
    if add {
        set.insert(item);
    } else {
        set.remove(&item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_tree_has_zookeepers_own_nodes() {
        let state = ZkState::new();
        let paths: Vec<&str> = state.nodes_in_path_order().into_iter().map(|(path, _)| path).collect();
        assert_eq!(paths, ["/", "/zookeeper", "/zookeeper/config", "/zookeeper/quota"]);
        let root = state.node("/").unwrap().stat();
        assert_eq!((root.num_children, root.cversion, root.czxid), (1, -1, 0), "ZooKeeper 3.8 reports -1");
        let config = state.node("/zookeeper/config").unwrap();
        assert_eq!(config.acl, Acl::read_unsafe());
        assert_eq!(config.stat().aversion, -1);
        assert_eq!(state.node("/zookeeper").unwrap().stat().num_children, 2);
        assert_eq!(state.check_invariants(), Ok(()));
    }
}
