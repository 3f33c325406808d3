//! The member table: who is in the cluster, at which peer URLs, voter or learner, and which
//! ids were removed for good. Replicated through the log: every membership change carries the
//! whole new table in its context (the founding members' table rides on the bootstrap entry),
//! so each replica derives the same table by applying the same entries; snapshots carry it too.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use tally_proto::tally_v1::{MemberInfo, MemberTable};
use tally_proto::Message as _;
use tally_raft::NodeId;

use crate::cluster::ClusterSpec;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Members {
    pub members: BTreeMap<NodeId, MemberInfo>,
    pub removed: BTreeSet<NodeId>,
}

impl Members {
    /// The founding members, as every one of them derives it from the same flags.
    pub fn from_spec(spec: &ClusterSpec) -> Self {
        let members = spec
            .members
            .values()
            .map(|m| {
                let info = MemberInfo {
                    id: m.id,
                    name: m.name.clone(),
                    peer_urls: m.peer_urls.clone(),
                    client_urls: Vec::new(),
                    is_learner: false,
                };
                (m.id, info)
            })
            .collect();
        Self { members, removed: BTreeSet::new() }
    }

    pub fn to_table(&self) -> MemberTable {
        MemberTable {
            members: self.members.values().cloned().collect(),
            removed: self.removed.iter().copied().collect(),
        }
    }

    pub fn from_table(table: MemberTable) -> Self {
        Self {
            members: table.members.into_iter().map(|m| (m.id, m)).collect(),
            removed: table.removed.into_iter().collect(),
        }
    }

    pub fn encode(&self) -> Bytes {
        Bytes::from(self.to_table().encode_to_vec())
    }

    pub fn decode(data: &[u8]) -> Option<Self> {
        MemberTable::decode(data).ok().map(Self::from_table)
    }

    /// The member already using one of `urls` as a peer URL, other than `except`.
    pub fn peer_url_owner(&self, urls: &[String], except: Option<NodeId>) -> Option<NodeId> {
        self.members
            .values()
            .find(|m| Some(m.id) != except && m.peer_urls.iter().any(|u| urls.contains(u)))
            .map(|m| m.id)
    }

    pub fn learners(&self) -> usize {
        self.members.values().filter(|m| m.is_learner).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_round_trips_and_finds_url_owners() {
        let spec = ClusterSpec::parse("a=http://127.0.0.1:1,b=http://127.0.0.1:2", "t").unwrap();
        let mut members = Members::from_spec(&spec);
        members.removed.insert(99);
        assert_eq!(Members::decode(&members.encode()), Some(members.clone()));
        let b = spec.id_of("b").unwrap();
        assert_eq!(members.peer_url_owner(&["http://127.0.0.1:2".into()], None), Some(b));
        assert_eq!(members.peer_url_owner(&["http://127.0.0.1:2".into()], Some(b)), None);
        assert_eq!(Members::decode(b"\xff\xff"), None);
    }
}
