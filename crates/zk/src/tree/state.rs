//! The replicated state: the znode tree, the live sessions, and the last applied index, with the
//! indexes that follow from the nodes (each session's ephemerals, the containers and TTL nodes).
//!
//! Everything is in B-trees, so every iteration, and so every output, is in path (or id) order
//! on every replica.

use std::collections::{BTreeMap, BTreeSet};

use super::node::{NodeKind, NodeStat, Znode};
use super::path;
use super::session::Session;
use crate::proto::Acl;

/// The znode tree and its sessions. Changed only by [`ZkState::apply`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZkState {
    /// Every node by its full path. Invariant: every node but the root has its parent here, and
    /// is among the parent's children.
    pub(crate) nodes: BTreeMap<String, Znode>,
    pub(crate) sessions: BTreeMap<i64, Session>,
    /// The index of the last command applied (0 before any).
    pub(crate) last_zxid: i64,
    /// Invariant: exactly the ephemeral nodes, by owner; every owner is a live session.
    ephemerals: BTreeMap<i64, BTreeSet<String>>,
    /// Invariant: exactly the container nodes.
    containers: BTreeSet<String>,
    /// Invariant: exactly the TTL nodes.
    ttls: BTreeSet<String>,
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
        state.nodes.insert("/".to_string(), open());
        state.attach("/zookeeper".to_string(), open());
        state.attach("/zookeeper/quota".to_string(), open());
        let config =
            Znode { acl: Acl::read_unsafe(), stat: NodeStat { aversion: -1, ..NodeStat::default() }, ..open() };
        state.attach("/zookeeper/config".to_string(), config);
        state
    }

    /// No nodes at all, not even the root: only for rebuilding from a snapshot.
    pub(crate) fn empty() -> ZkState {
        ZkState {
            nodes: BTreeMap::new(),
            sessions: BTreeMap::new(),
            last_zxid: 0,
            ephemerals: BTreeMap::new(),
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
        }
    }

    /// The index of the last command applied.
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    pub fn node(&self, path: &str) -> Option<&Znode> {
        self.nodes.get(path)
    }

    /// Number of nodes, the root and ZooKeeper's own included.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
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
        self.ephemerals.get(&session).into_iter().flatten().map(String::as_str)
    }

    /// Container nodes, in path order.
    pub(crate) fn containers(&self) -> impl Iterator<Item = &str> {
        self.containers.iter().map(String::as_str)
    }

    /// TTL nodes, in path order.
    pub(crate) fn ttls(&self) -> impl Iterator<Item = &str> {
        self.ttls.iter().map(String::as_str)
    }

    /// Adds a node under its existing parent and indexes it.
    pub(crate) fn attach(&mut self, path: String, node: Znode) {
        let (parent, name) = path::split(&path).expect("a node's path has a parent");
        let parent = self.nodes.get_mut(parent).expect("a new node's parent exists");
        assert!(parent.children.insert(name.to_string()), "{path} is not yet a child of its parent");
        self.index(&path, node.kind(), true);
        assert!(self.nodes.insert(path, node).is_none(), "attach replaces no node");
    }

    /// Removes a childless node and unindexes it.
    pub(crate) fn detach(&mut self, path: &str) -> Znode {
        let node = self.nodes.remove(path).expect("a detached node exists");
        assert!(node.children.is_empty(), "{path} has no children when detached");
        let (parent, name) = path::split(path).expect("a node's path has a parent");
        let parent = self.nodes.get_mut(parent).expect("a node's parent exists");
        assert!(parent.children.remove(name), "{path} was a child of its parent");
        self.index(path, node.kind(), false);
        node
    }

    pub(crate) fn node_mut(&mut self, path: &str) -> &mut Znode {
        self.nodes.get_mut(path).expect("a changed node exists")
    }

    /// Adds a node read from a snapshot, whose parent came before it. False if the path is invalid
    /// or taken, or its parent is missing.
    pub(crate) fn restore_node(&mut self, path: String, node: Znode) -> bool {
        if !path::is_valid(&path) || self.nodes.contains_key(&path) {
            return false;
        }
        if path != "/" {
            let (parent, name) = path::split(&path).expect("a valid path has a slash");
            let Some(parent) = self.nodes.get_mut(parent) else { return false };
            parent.children.insert(name.to_string());
        }
        self.index(&path, node.kind(), true);
        self.nodes.insert(path, node);
        true
    }

    fn index(&mut self, path: &str, kind: NodeKind, add: bool) {
        let set = match kind {
            NodeKind::Persistent => return,
            NodeKind::Ephemeral { session } => self.ephemerals.entry(session).or_default(),
            NodeKind::Container => &mut self.containers,
            NodeKind::Ttl { .. } => &mut self.ttls,
        };
        if add {
            set.insert(path.to_string());
        } else {
            set.remove(path);
        }
        if let NodeKind::Ephemeral { session } = kind {
            if self.ephemerals.get(&session).is_some_and(BTreeSet::is_empty) {
                self.ephemerals.remove(&session);
            }
        }
    }

    /// Checks the invariants the indexes and the children sets must keep; for tests and the
    /// simulator (it walks the whole tree).
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut rebuilt = ZkState::empty();
        rebuilt.sessions = self.sessions.clone();
        for (path, node) in &self.nodes {
            let bare = Znode { children: Default::default(), ..node.clone() };
            if !rebuilt.restore_node(path.clone(), bare) {
                return Err(format!("{path} has no parent"));
            }
        }
        if rebuilt.nodes != self.nodes {
            return Err("children sets differ from the paths".into());
        }
        if (&rebuilt.ephemerals, &rebuilt.containers, &rebuilt.ttls) != (&self.ephemerals, &self.containers, &self.ttls)
        {
            return Err("indexes differ from the nodes".into());
        }
        if let Some(owner) = self.ephemerals.keys().find(|s| !self.sessions.contains_key(s)) {
            return Err(format!("ephemerals of closed session {owner:#x}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_tree_has_zookeepers_own_nodes() {
        let state = ZkState::new();
        let paths: Vec<&str> = state.nodes.keys().map(String::as_str).collect();
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
