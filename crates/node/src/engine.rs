//! The consensus engine a node runs, Raft (the default) or Multi-Paxos, behind one
//! [`Consensus`] boundary, and the messages either one sends.

use std::collections::BTreeMap;

use bytes::Bytes;
use tally_consensus::{
    Compacted, ConfChange, ConfState, Consensus, HardState, Index, NodeId, Persisted, ProposeError, ReadIndexError,
    Ready, Replication, Role, Snapshot, StepError, Term, TransferError,
};
use tally_paxos::multi::{self, MultiPaxos, PaxosBug};
use tally_raft::Raft;

/// Which algorithm replicates the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConsensusKind {
    #[default]
    Raft,
    Paxos,
}

impl ConsensusKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Raft => "raft",
            Self::Paxos => "paxos",
        }
    }
}

/// A message between members, of the engine the cluster runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerMessage {
    Raft(tally_raft::Message),
    Paxos(multi::Message),
}

impl PeerMessage {
    pub fn from(&self) -> NodeId {
        match self {
            Self::Raft(m) => m.from,
            Self::Paxos(m) => m.from,
        }
    }

    pub fn to(&self) -> NodeId {
        match self {
            Self::Raft(m) => m.to,
            Self::Paxos(m) => m.to,
        }
    }

    /// The snapshot a catch-up message carries, if it is one.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        match self {
            Self::Raft(tally_raft::Message { body: tally_raft::MessageBody::Snapshot { snapshot }, .. })
            | Self::Paxos(multi::Message { body: multi::MessageBody::Snapshot { snapshot }, .. }) => Some(snapshot),
            _ => None,
        }
    }

    pub fn snapshot_mut(&mut self) -> Option<&mut Snapshot> {
        match self {
            Self::Raft(tally_raft::Message { body: tally_raft::MessageBody::Snapshot { snapshot }, .. })
            | Self::Paxos(multi::Message { body: multi::MessageBody::Snapshot { snapshot }, .. }) => Some(snapshot),
            _ => None,
        }
    }
}

impl From<tally_raft::Message> for PeerMessage {
    fn from(m: tally_raft::Message) -> Self {
        Self::Raft(m)
    }
}

impl From<multi::Message> for PeerMessage {
    fn from(m: multi::Message) -> Self {
        Self::Paxos(m)
    }
}

/// The engine itself.
pub enum Engine {
    Raft(Raft),
    Paxos(MultiPaxos),
}

impl Engine {
    /// Starts `kind` from what the disk holds, with Raft's settings (Paxos takes the ones it has).
    pub fn new(kind: ConsensusKind, config: tally_raft::Config, persisted: Persisted) -> Result<Self, String> {
        match kind {
            ConsensusKind::Raft => Raft::new(config, persisted).map(Self::Raft).map_err(|e| e.to_string()),
            ConsensusKind::Paxos => {
                MultiPaxos::new(paxos_config(&config), persisted).map(Self::Paxos).map_err(|e| e.to_string())
            }
        }
    }

    pub fn kind(&self) -> ConsensusKind {
        match self {
            Self::Raft(_) => ConsensusKind::Raft,
            Self::Paxos(_) => ConsensusKind::Paxos,
        }
    }

    pub fn inject_paxos_bug(&mut self, bug: PaxosBug) {
        if let Self::Paxos(paxos) = self {
            paxos.inject_bug(bug);
        }
    }
}

fn paxos_config(raft: &tally_raft::Config) -> multi::Config {
    multi::Config {
        id: raft.id,
        election_tick: raft.election_tick,
        heartbeat_tick: raft.heartbeat_tick,
        fast_election_ticks: raft.fast_election_ticks,
        leader_silence_jitter_ticks: raft.leader_silence_jitter_ticks,
        inflight_msgs_max: raft.inflight_msgs_max,
        entries_per_msg_max: raft.entries_per_msg_max,
        bytes_per_msg_max: raft.bytes_per_msg_max,
        compaction_lag_entries: raft.compaction_lag_entries,
        seed: raft.seed,
        bug: None,
    }
}

/// Calls the same method on whichever engine runs.
macro_rules! each {
    ($self:ident, $e:ident => $call:expr) => {
        match $self {
            Engine::Raft($e) => $call,
            Engine::Paxos($e) => $call,
        }
    };
}

impl Consensus for Engine {
    type Message = PeerMessage;

    fn id(&self) -> NodeId {
        each!(self, e => e.id())
    }
    fn term(&self) -> Term {
        each!(self, e => e.term())
    }
    fn role(&self) -> Role {
        each!(self, e => e.role())
    }
    fn leader(&self) -> Option<NodeId> {
        each!(self, e => e.leader())
    }
    fn conf_state(&self) -> &ConfState {
        each!(self, e => e.conf_state())
    }
    fn hard_state(&self) -> HardState {
        each!(self, e => e.hard_state())
    }
    fn committed(&self) -> Index {
        each!(self, e => e.committed())
    }
    fn applied(&self) -> Index {
        each!(self, e => e.applied())
    }
    fn first_index(&self) -> Index {
        each!(self, e => e.first_index())
    }
    fn last_index(&self) -> Index {
        each!(self, e => e.last_index())
    }
    fn log_term(&self, index: Index) -> Option<Term> {
        each!(self, e => e.log_term(index))
    }
    fn replication(&self) -> BTreeMap<NodeId, Replication> {
        each!(self, e => Consensus::replication(e))
    }
    fn lead_transferee(&self) -> Option<NodeId> {
        each!(self, e => e.lead_transferee())
    }
    fn tick(&mut self) {
        each!(self, e => e.tick())
    }
    fn step(&mut self, m: PeerMessage) -> Result<(), StepError> {
        match (self, m) {
            (Engine::Raft(e), PeerMessage::Raft(m)) => e.step(m),
            (Engine::Paxos(e), PeerMessage::Paxos(m)) => e.step(m),
            (_, PeerMessage::Raft(_)) => Err(StepError::WrongEngine("raft")),
            (_, PeerMessage::Paxos(_)) => Err(StepError::WrongEngine("paxos")),
        }
    }
    fn propose(&mut self, data: Bytes) -> Result<Index, ProposeError> {
        each!(self, e => e.propose(data))
    }
    fn propose_conf_change(&mut self, change: ConfChange) -> Result<Index, ProposeError> {
        each!(self, e => e.propose_conf_change(change))
    }
    fn read_index(&mut self, ctx: Bytes) -> Result<(), ReadIndexError> {
        each!(self, e => e.read_index(ctx))
    }
    fn transfer_leader(&mut self, target: NodeId) -> Result<(), TransferError> {
        each!(self, e => e.transfer_leader(target))
    }
    fn campaign(&mut self) {
        each!(self, e => e.campaign())
    }
    fn report_unreachable(&mut self, peer: NodeId) -> bool {
        each!(self, e => e.report_unreachable(peer))
    }
    fn report_snapshot(&mut self, peer: NodeId, ok: bool) {
        each!(self, e => e.report_snapshot(peer, ok))
    }
    fn compact(&mut self, snapshot: Snapshot) -> Compacted {
        each!(self, e => e.compact(snapshot))
    }
    fn has_ready(&mut self) -> bool {
        each!(self, e => e.has_ready())
    }
    fn ready(&mut self) -> Ready<PeerMessage> {
        each!(self, e => wrap(e.ready()))
    }
    fn advance(&mut self) {
        each!(self, e => e.advance())
    }
}

/// An engine's Ready with its messages as peer messages.
fn wrap<M: Into<PeerMessage>>(ready: Ready<M>) -> Ready<PeerMessage> {
    let wrap_all = |messages: Vec<M>| messages.into_iter().map(Into::into).collect();
    Ready {
        soft_state: ready.soft_state,
        hard_state: ready.hard_state,
        snapshot: ready.snapshot,
        entries: ready.entries,
        messages: wrap_all(ready.messages),
        persisted_messages: wrap_all(ready.persisted_messages),
        committed_entries: ready.committed_entries,
        read_states: ready.read_states,
        vote_refusals: ready.vote_refusals,
    }
}
