//! A znode, and what its `ephemeralOwner` says it is (ZooKeeper's `EphemeralType`).

use crate::proto::{Acl, Stat};

/// `ephemeralOwner` of a container: `Long.MIN_VALUE`.
pub const CONTAINER_OWNER: i64 = i64::MIN;
/// The high byte of a TTL node's `ephemeralOwner` (ZooKeeper's extended types; the TTL feature
/// bits below it are 0). Session ids never have it: ours start with 0x01.
const EXTENDED_MASK: i64 = 0xff00_0000_0000_0000_u64 as i64;
const RESERVED_BITS_MASK: i64 = 0x00ff_ff00_0000_0000;
/// The largest TTL, in milliseconds (40 bits, about 34 years).
pub const TTL_MAX: i64 = !(EXTENDED_MASK | RESERVED_BITS_MASK);

/// What kind of node an `ephemeralOwner` value marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Persistent,
    /// Deleted when its session closes; may have no children.
    Ephemeral {
        session: i64,
    },
    /// Deleted by the leader once empty, after it had children.
    Container,
    /// Deleted by the leader once empty and unmodified for `ttl_ms`.
    Ttl {
        ttl_ms: i64,
    },
}

impl NodeKind {
    /// ZooKeeper's `EphemeralType.get` with extended types enabled. An owner with the extended
    /// high byte but other feature bits is no TTL in ZooKeeper (it throws); none is ever stored.
    pub fn of_owner(owner: i64) -> NodeKind {
        if owner & EXTENDED_MASK == EXTENDED_MASK && owner & RESERVED_BITS_MASK == 0 {
            NodeKind::Ttl { ttl_ms: owner & TTL_MAX }
        } else if owner == CONTAINER_OWNER {
            NodeKind::Container
        } else if owner == 0 {
            NodeKind::Persistent
        } else {
            NodeKind::Ephemeral { session: owner }
        }
    }

    /// The `ephemeralOwner` that marks this kind.
    pub fn owner(self) -> i64 {
        match self {
            NodeKind::Persistent => 0,
            NodeKind::Ephemeral { session } => session,
            NodeKind::Container => CONTAINER_OWNER,
            NodeKind::Ttl { ttl_ms } => EXTENDED_MASK | ttl_ms,
        }
    }
}

/// A znode's metadata as ZooKeeper persists it (`StatPersisted`): `Stat` less what follows from the
/// data and the children.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub pzxid: i64,
}

impl NodeStat {
    /// The stat of a node created at `zxid` and `time`: every zxid the create's, versions 0.
    pub fn created(zxid: i64, time: i64, ephemeral_owner: i64) -> NodeStat {
        NodeStat {
            czxid: zxid,
            mzxid: zxid,
            ctime: time,
            mtime: time,
            ephemeral_owner,
            pzxid: zxid,
            ..NodeStat::default()
        }
    }
}

/// A node of the tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Znode {
    /// Null and empty differ: a Java client reads back the null it wrote.
    pub data: Option<Vec<u8>>,
    pub acl: Vec<Acl>,
    pub stat: NodeStat,
    /// How many children it has. Kept by the tree, which holds their names (`Children`).
    pub(crate) num_children: i32,
}

impl Znode {
    pub fn kind(&self) -> NodeKind {
        NodeKind::of_owner(self.stat.ephemeral_owner)
    }

    /// The Stat clients see. Its cversion is not the stored count of child creations but
    /// ZooKeeper's "v3 semantics" (`DataNode.copyStat`): `cversion * 2 - numChildren`, the
    /// number of creations plus deletions, as if each child gone was deleted once. So a fresh
    /// root (one child, /zookeeper) reports -1, and a delete moves the parent's cversion although
    /// the stored count, which names sequential nodes, stays.
    ///
    /// Its ephemeralOwner is the owning session's for an ephemeral and 0 for every other kind:
    /// containers and TTL nodes keep their mark in the tree but do not show it
    /// (`DataNode.getClientEphemeralOwner`).
    pub fn stat(&self) -> Stat {
        let s = &self.stat;
        let num_children = self.num_children;
        Stat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            cversion: s.cversion.wrapping_mul(2).wrapping_sub(num_children),
            aversion: s.aversion,
            ephemeral_owner: match self.kind() {
                NodeKind::Ephemeral { session } => session,
                NodeKind::Persistent | NodeKind::Container | NodeKind::Ttl { .. } => 0,
            },
            data_length: self.data.as_ref().map_or(0, |d| d.len() as i32),
            num_children,
            pzxid: s.pzxid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_zookeepers_encoding() {
        assert_eq!(NodeKind::Container.owner(), 0x8000_0000_0000_0000_u64 as i64);
        assert_eq!(NodeKind::Ttl { ttl_ms: 5000 }.owner(), 0xff00_0000_0000_1388_u64 as i64);
        assert_eq!(TTL_MAX, 0x0000_00ff_ffff_ffff);
        for kind in [
            NodeKind::Persistent,
            NodeKind::Ephemeral { session: 0x0100_0000_0000_0002 },
            NodeKind::Container,
            NodeKind::Ttl { ttl_ms: 1 },
            NodeKind::Ttl { ttl_ms: TTL_MAX },
        ] {
            assert_eq!(NodeKind::of_owner(kind.owner()), kind);
        }
    }

    #[test]
    fn stat_counts_data_and_children() {
        let mut node = Znode { data: Some(b"abc".to_vec()), num_children: 1, ..Znode::default() };
        assert_eq!(node.stat().data_length, 3);
        assert_eq!(node.stat().num_children, 1);
        node.data = None;
        assert_eq!(node.stat().data_length, 0);
    }

    /// Seen on ZooKeeper 3.8: clients see the owner of an ephemeral only.
    #[test]
    fn clients_see_no_owner_on_containers_and_ttl_nodes() {
        for (kind, seen) in [
            (NodeKind::Ephemeral { session: 0x0100_0000_0000_0007 }, 0x0100_0000_0000_0007),
            (NodeKind::Container, 0),
            (NodeKind::Ttl { ttl_ms: 5000 }, 0),
            (NodeKind::Persistent, 0),
        ] {
            let node = Znode { stat: NodeStat::created(1, 1, kind.owner()), ..Znode::default() };
            assert_eq!((node.stat().ephemeral_owner, node.kind()), (seen, kind));
        }
    }

    /// Seen on ZooKeeper 3.8: a fresh root reports cversion -1, /zookeeper -2; after a create
    /// and a delete under the root its cversion is 1 (-1, plus one creation, plus one deletion),
    /// while the stored count of creations, which numbers sequential nodes, is 1.
    #[test]
    fn reported_cversion_counts_creations_and_deletions() {
        let mut node = Znode { num_children: 1, ..Znode::default() };
        assert_eq!(node.stat().cversion, -1);
        node.stat.cversion = 1;
        node.num_children += 1;
        assert_eq!(node.stat().cversion, 0);
        node.num_children -= 1;
        assert_eq!((node.stat().cversion, node.stat.cversion), (1, 1));
        node.stat.cversion = i32::MAX;
        assert_eq!(node.stat().cversion, -2 - 1, "wraps as Java's int does");
    }
}
