//! Raft behind the engine boundary the node drives.

use std::collections::BTreeMap;

use bytes::Bytes;
use tally_consensus::{
    Compacted, ConfChange, ConfState, Consensus, HardState, Index, NodeId, ProposeError, ReadIndexError, Replication,
    Role, Snapshot, StepError, Term, TransferError,
};

use crate::{Message, Raft, Ready};

impl Consensus for Raft {
    type Message = Message;

    fn id(&self) -> NodeId {
        Raft::id(self)
    }
    fn term(&self) -> Term {
        Raft::term(self)
    }
    fn role(&self) -> Role {
        Raft::role(self)
    }
    fn leader(&self) -> Option<NodeId> {
        Raft::leader(self)
    }
    fn conf_state(&self) -> &ConfState {
        Raft::conf_state(self)
    }
    fn hard_state(&self) -> HardState {
        Raft::hard_state(self)
    }
    fn committed(&self) -> Index {
        Raft::committed(self)
    }
    fn applied(&self) -> Index {
        Raft::applied(self)
    }
    fn first_index(&self) -> Index {
        Raft::first_index(self)
    }
    fn last_index(&self) -> Index {
        Raft::last_index(self)
    }
    fn log_term(&self, index: Index) -> Option<Term> {
        Raft::log_term(self, index)
    }
    fn replication(&self) -> BTreeMap<NodeId, Replication> {
        let view = |p: &crate::Progress| Replication {
            matched: p.matched,
            next: p.next,
            state: p.state,
            recent_active: p.recent_active,
        };
        self.progress().iter().map(|(&id, p)| (id, view(p))).collect()
    }
    fn lead_transferee(&self) -> Option<NodeId> {
        Raft::lead_transferee(self)
    }
    fn tick(&mut self) {
        Raft::tick(self)
    }
    fn step(&mut self, m: Message) -> Result<(), StepError> {
        Raft::step(self, m)
    }
    fn propose(&mut self, data: Bytes) -> Result<Index, ProposeError> {
        Raft::propose(self, data)
    }
    fn propose_conf_change(&mut self, change: ConfChange) -> Result<Index, ProposeError> {
        Raft::propose_conf_change(self, change)
    }
    fn read_index(&mut self, ctx: Bytes) -> Result<(), ReadIndexError> {
        Raft::read_index(self, ctx)
    }
    fn transfer_leader(&mut self, target: NodeId) -> Result<(), TransferError> {
        Raft::transfer_leader(self, target)
    }
    fn campaign(&mut self) {
        Raft::campaign(self)
    }
    fn report_unreachable(&mut self, peer: NodeId) -> bool {
        Raft::report_unreachable(self, peer)
    }
    fn report_snapshot(&mut self, peer: NodeId, ok: bool) {
        Raft::report_snapshot(self, peer, ok)
    }
    fn compact(&mut self, snapshot: Snapshot) -> Compacted {
        Raft::compact(self, snapshot)
    }
    fn has_ready(&mut self) -> bool {
        Raft::has_ready(self)
    }
    fn ready(&mut self) -> Ready {
        Raft::ready(self)
    }
    fn advance(&mut self) {
        Raft::advance(self)
    }
}
