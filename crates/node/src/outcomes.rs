//! What callers of a node are told, and what the layers above read without asking it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tally_mvcc::CommandResponse;
use tally_raft::{Index, NodeId};

use crate::metrics::Metrics;

#[derive(Debug)]
pub enum ProposeOutcome {
    Applied(CommandResponse),
    /// Not leader (or lost leadership before the entry applied): retry at `leader`.
    NotLeader(Option<NodeId>),
}

#[derive(Debug)]
pub enum ReadOutcome {
    /// The local state now reflects every write acknowledged before the read arrived.
    Ready,
    NoLeader,
    /// No answer within `reads::ATTEMPT_TIMEOUT` (lost with a message or a leader): ask again.
    Lost,
}

/// A lease question only the leader can answer.
#[derive(Debug)]
pub enum LeaseOutcome {
    /// Keep-alive: the granted TTL (0 if the lease does not exist). TimeToLive: remaining and
    /// granted TTL in seconds and the attached keys, or `None` if the lease does not exist.
    KeepAlive(i64),
    TimeToLive(Option<(i64, i64, Vec<Vec<u8>>)>),
    NotLeader(Option<NodeId>),
}

#[derive(Clone, Debug, Default)]
pub struct StatusInfo {
    pub leader: Option<NodeId>,
    pub term: u64,
    pub committed: Index,
    pub applied: Index,
    pub db_size: i64,
    pub is_learner: bool,
}

/// What the client side reads without asking the node.
#[derive(Default)]
pub struct Shared {
    pub leader: AtomicU64,
    pub term: Arc<AtomicU64>,
    pub metrics: Metrics,
}

impl Shared {
    pub fn term_handle(&self) -> Arc<AtomicU64> {
        self.term.clone()
    }

    pub fn leader(&self) -> Option<NodeId> {
        Some(self.leader.load(Ordering::Relaxed)).filter(|&id| id != 0)
    }
}
