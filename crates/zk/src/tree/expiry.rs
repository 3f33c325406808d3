//! Containers and TTL nodes that have outlived their purpose: the leader lists them with
//! [`ZkState::expired_nodes`] and proposes a `DeleteIfExpired` for each (ZooKeeper's
//! `ContainerManager`, minus its pacing, which is the leader's).

use super::node::{NodeKind, Znode};
use super::state::ZkState;

/// ZooKeeper's rules: a container once it is empty after having had a child (cversion > 0; a
/// fresh container is kept until its first child comes and goes), a TTL node once it is empty and
/// unmodified for longer than its TTL.
pub fn is_expired(node: &Znode, now_ms: i64) -> bool {
    if node.num_children != 0 {
        return false;
    }
    match node.kind() {
        NodeKind::Container => node.stat.cversion > 0,
        NodeKind::Ttl { ttl_ms } => ttl_ms != 0 && now_ms.saturating_sub(node.stat.mtime) > ttl_ms,
        NodeKind::Persistent | NodeKind::Ephemeral { .. } => false,
    }
}

impl ZkState {
    /// Containers and TTL nodes to delete at `now_ms`, in path order.
    pub fn expired_nodes(&self, now_ms: i64) -> Vec<String> {
        let mut expired: Vec<String> = self
            .containers()
            .chain(self.ttls())
            .filter(|path| self.node(path).is_some_and(|node| is_expired(node, now_ms)))
            .map(str::to_string)
            .collect();
        expired.sort_unstable();
        expired
    }
}
