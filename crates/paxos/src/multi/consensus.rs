//! Multi-Paxos behind the engine boundary the node drives.

use std::collections::BTreeMap;

use bytes::Bytes;
use tally_consensus::{
    Compacted, ConfChange, ConfState, Consensus, HardState, Index, NodeId, ProgressState, ProposeError, ReadIndexError,
    Replication, Role, Snapshot, StepError, Term, TransferError,
};

use super::{Message, MultiPaxos, Progress, Ready};

impl Consensus for MultiPaxos {
    type Message = Message;

    fn id(&self) -> NodeId {
        MultiPaxos::id(self)
    }
    fn term(&self) -> Term {
        MultiPaxos::term(self)
    }
    fn role(&self) -> Role {
        MultiPaxos::role(self)
    }
    fn leader(&self) -> Option<NodeId> {
        MultiPaxos::leader(self)
    }
    fn conf_state(&self) -> &ConfState {
        MultiPaxos::conf_state(self)
    }
    fn hard_state(&self) -> HardState {
        MultiPaxos::hard_state(self)
    }
    fn committed(&self) -> Index {
        MultiPaxos::committed(self)
    }
    fn applied(&self) -> Index {
        MultiPaxos::applied(self)
    }
    fn first_index(&self) -> Index {
        MultiPaxos::first_index(self)
    }
    fn last_index(&self) -> Index {
        MultiPaxos::last_index(self)
    }
    fn log_term(&self, index: Index) -> Option<Term> {
        MultiPaxos::log_term(self, index)
    }
    fn replication(&self) -> BTreeMap<NodeId, Replication> {
        let view = |p: &Progress| Replication {
            matched: p.matched,
            next: p.next,
            state: if p.pending_snapshot {
                ProgressState::Snapshot
            } else if p.probing {
                ProgressState::Probe
            } else {
                ProgressState::Replicate
            },
            recent_active: p.recent_active,
        };
        self.progress().iter().map(|(&id, p)| (id, view(p))).collect()
    }
    fn lead_transferee(&self) -> Option<NodeId> {
        MultiPaxos::lead_transferee(self)
    }
    fn tick(&mut self) {
        MultiPaxos::tick(self)
    }
    fn step(&mut self, m: Message) -> Result<(), StepError> {
        MultiPaxos::step(self, m)
    }
    fn propose(&mut self, data: Bytes) -> Result<Index, ProposeError> {
        MultiPaxos::propose(self, data)
    }
    fn propose_conf_change(&mut self, change: ConfChange) -> Result<Index, ProposeError> {
        MultiPaxos::propose_conf_change(self, change)
    }
    fn read_index(&mut self, ctx: Bytes) -> Result<(), ReadIndexError> {
        MultiPaxos::read_index(self, ctx)
    }
    fn transfer_leader(&mut self, target: NodeId) -> Result<(), TransferError> {
        MultiPaxos::transfer_leader(self, target)
    }
    fn campaign(&mut self) {
        MultiPaxos::campaign(self)
    }
    fn report_unreachable(&mut self, peer: NodeId) -> bool {
        MultiPaxos::report_unreachable(self, peer)
    }
    fn report_snapshot(&mut self, peer: NodeId, ok: bool) {
        MultiPaxos::report_snapshot(self, peer, ok)
    }
    fn compact(&mut self, snapshot: Snapshot) -> Compacted {
        MultiPaxos::compact(self, snapshot)
    }
    fn has_ready(&mut self) -> bool {
        MultiPaxos::has_ready(self)
    }
    fn ready(&mut self) -> Ready {
        MultiPaxos::ready(self)
    }
    fn advance(&mut self) {
        MultiPaxos::advance(self)
    }
}
