//! Plain data the core exchanges with its driver: log entries, hard state, snapshots, membership.

use std::collections::BTreeSet;

use bytes::Bytes;

/// A member's id. `0` is never a valid id; it stands for "none" in [`HardState::vote`].
pub type NodeId = u64;
/// A Raft term: a logical clock that only moves forward.
pub type Term = u64;
/// A position in the replicated log; the first entry has index 1.
pub type Index = u64;

/// What an entry's payload means to the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// Opaque application command (an empty one is the leader's no-op).
    Normal,
    /// An encoded [`crate::ConfChange`]; the core applies it when the driver applies the entry.
    ConfChange,
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub term: Term,
    pub index: Index,
    pub kind: EntryKind,
    pub data: Bytes,
}

impl Entry {
    /// Bytes this entry costs in a message, for batching limits.
    pub fn size(&self) -> u64 {
        self.data.len() as u64 + 24
    }
}

/// The state that must be durable before the node answers anyone (Raft paper, Figure 2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    pub term: Term,
    /// Whom this node voted for in `term`; `0` for nobody.
    pub vote: NodeId,
    /// Highest index known committed. Persisting it is an optimisation (faster restart), not a
    /// safety requirement.
    pub commit: Index,
}

/// Cluster membership. While `voters_outgoing` is non-empty the cluster is in joint consensus
/// (C_old,new): every decision needs a majority of `voters` *and* of `voters_outgoing`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfState {
    /// The incoming (or only) voter set.
    pub voters: BTreeSet<NodeId>,
    /// The outgoing voter set while joint; empty otherwise.
    pub voters_outgoing: BTreeSet<NodeId>,
    /// Non-voting members that receive the log.
    pub learners: BTreeSet<NodeId>,
    /// Voters of the outgoing config being demoted to learners: they become learners when the
    /// joint config is left (they must keep voting in the outgoing half until then).
    pub learners_next: BTreeSet<NodeId>,
}

impl ConfState {
    /// A plain (non-joint) configuration of voters.
    pub fn with_voters(voters: impl IntoIterator<Item = NodeId>) -> Self {
        Self { voters: voters.into_iter().collect(), ..Self::default() }
    }

    pub fn is_joint(&self) -> bool {
        !self.voters_outgoing.is_empty()
    }

    /// A voter in either half of the configuration.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.voters_outgoing.contains(&id)
    }

    /// Every member the leader replicates to.
    pub fn members(&self) -> BTreeSet<NodeId> {
        let mut all = self.voters.clone();
        all.extend(&self.voters_outgoing);
        all.extend(&self.learners);
        all.extend(&self.learners_next);
        all
    }

    /// Every voter of either half.
    pub fn all_voters(&self) -> BTreeSet<NodeId> {
        self.voters.union(&self.voters_outgoing).copied().collect()
    }
}

/// What a snapshot covers: the log up to and including `index`, and the membership at that point.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotMeta {
    pub index: Index,
    pub term: Term,
    pub conf: ConfState,
}

/// A state machine snapshot. `data` is opaque to the core.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    pub data: Bytes,
}

/// What [`crate::Consensus::compact`] no longer holds: the snapshot it replaced (or the one it
/// was given, if that is not newer) and the entries the new one covers. Where they are freed
/// is the driver's to choose: for a 325 MB state, they took a leader's thread up to 300 ms.
#[derive(Debug, Default)]
pub struct Compacted {
    pub snapshot: Snapshot,
    pub entries: Vec<Entry>,
}

/// What a (re)starting node recovered from its disk.
#[derive(Clone, Debug, Default)]
pub struct Persisted {
    pub hard_state: HardState,
    /// The latest durable snapshot; index 0 with an empty `conf` when there is none.
    pub snapshot: Snapshot,
    /// Durable entries after the snapshot, contiguous from `snapshot.meta.index + 1`.
    pub entries: Vec<Entry>,
}

impl Persisted {
    /// The first durable state of a member of a brand-new cluster: the initial membership is
    /// entry 1 of the log (term 1, committed), so a member that joins later learns it by
    /// replaying the log like any other change. Every founding member writes the same entry.
    /// A member joining an existing cluster starts from `Persisted::default()` instead.
    pub fn bootstrap(voters: impl IntoIterator<Item = NodeId>) -> Self {
        Self::bootstrap_with_context(voters, Bytes::new())
    }

    /// As [`Persisted::bootstrap`], with the driver's context on the membership entry (every
    /// founding member must pass the same bytes).
    pub fn bootstrap_with_context(voters: impl IntoIterator<Item = NodeId>, context: Bytes) -> Self {
        let ops = voters.into_iter().map(crate::ConfChangeOp::AddVoter).collect();
        let data = crate::ConfChange { ops, context }.encode();
        let entry = Entry { term: 1, index: 1, kind: EntryKind::ConfChange, data };
        Self {
            hard_state: HardState { term: 1, vote: 0, commit: 1 },
            snapshot: Snapshot::default(),
            entries: vec![entry],
        }
    }
}
