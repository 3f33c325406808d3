//! The boundary between the node and a consensus engine: what the node may ask, and what it
//! must do with the engine's `Ready`s. Raft and Multi-Paxos both stand behind it.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::{
    Compacted, ConfChange, ConfState, HardState, Index, NodeId, ProposeError, ReadIndexError, Ready, Replication, Role,
    Snapshot, StepError, Term, TransferError,
};

/// A sans-IO consensus engine over a replicated log. The driver feeds it ticks, peer messages,
/// proposals and read requests, and carries out its [`Ready`]s per their contract; no other
/// call may come between [`Consensus::ready`] and [`Consensus::advance`].
pub trait Consensus {
    /// What the engine's members say to each other.
    type Message;

    fn id(&self) -> NodeId;
    /// The engine's logical clock: Raft's term, a Paxos ballot's round.
    fn term(&self) -> Term;
    fn role(&self) -> Role;
    fn leader(&self) -> Option<NodeId>;
    fn conf_state(&self) -> &ConfState;
    fn hard_state(&self) -> HardState;
    fn committed(&self) -> Index;
    fn applied(&self) -> Index;
    fn first_index(&self) -> Index;
    fn last_index(&self) -> Index;
    /// The term (or round) of the entry at `index`, if the log holds it.
    fn log_term(&self, index: Index) -> Option<Term>;
    /// The leader's view of every member, itself included; empty on other members.
    fn replication(&self) -> BTreeMap<NodeId, Replication>;
    /// The member leadership is being handed to, if any.
    fn lead_transferee(&self) -> Option<NodeId>;

    /// Advances logical time by one tick.
    fn tick(&mut self);
    fn step(&mut self, m: Self::Message) -> Result<(), StepError>;
    /// Proposes a command; it is committed only if an entry with this index and the current
    /// term gets applied.
    fn propose(&mut self, data: Bytes) -> Result<Index, ProposeError>;
    fn propose_conf_change(&mut self, change: ConfChange) -> Result<Index, ProposeError>;
    /// Asks for a linearizable read point for `ctx`; it comes back in a `Ready`'s `read_states`.
    fn read_index(&mut self, ctx: Bytes) -> Result<(), ReadIndexError>;
    fn transfer_leader(&mut self, target: NodeId) -> Result<(), TransferError>;
    /// Stands for leadership now.
    fn campaign(&mut self);
    /// The transport saw `peer`'s connection close; returns whether this made us campaign early.
    fn report_unreachable(&mut self, peer: NodeId) -> bool;
    /// A snapshot sent to `peer` finished, or failed.
    fn report_snapshot(&mut self, peer: NodeId, ok: bool);
    /// The driver took `snapshot` of its state machine (at most at the applied index).
    fn compact(&mut self, snapshot: Snapshot) -> Compacted;

    fn has_ready(&mut self) -> bool;
    fn ready(&mut self) -> Ready<Self::Message>;
    fn advance(&mut self);
}
