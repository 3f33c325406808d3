//! The batch of work an engine hands to its driver, and the contract for handling it.

use crate::types::{Entry, HardState, NodeId, Snapshot};
use crate::{ReadState, SoftState};

/// Why a vote, pre-vote or promise was refused, for whoever watches the cluster (nothing to
/// act on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalReason {
    /// The candidate's term (or ballot) is older than ours.
    StaleTerm,
    /// We still hear from a leader (its lease, check-quorum's promise not to disrupt it).
    LeaderLease,
    /// We voted for (or promised this round to) someone else.
    AlreadyVoted,
    /// The candidate's log is behind ours (the election restriction, Raft section 5.4.1).
    StaleLog,
    /// Both of us stood after the leader died; our own claim (newer log, then higher id) is better.
    BetterClaim,
}

/// A refused vote answer among a `Ready`'s messages, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoteRefusal {
    pub to: NodeId,
    pub pre: bool,
    pub reason: RefusalReason,
}

/// Work for the driver. Handle it in this order, then call [`crate::Consensus::advance`]:
///
/// 1. Send `messages`. They may go out before or while step 2 runs: they never claim that
///    anything of ours is durable (a leader counts its own log towards commit only once
///    `advance` confirms it).
/// 2. Persist `snapshot` (if any), then `entries` (replacing every durable entry at or after
///    `entries[0].index`: this is how a follower's conflicting suffix is truncated), then
///    `hard_state`; make all of it durable (fsync). A `hard_state` that differs from the
///    durable one only in `commit`, with no entries, may be left unwritten (etcd's `MustSync`):
///    the commit index is only where replay stops on restart.
/// 3. Send `persisted_messages`: votes, promises and acknowledgements vouch for durable
///    state, so they may only leave after step 2.
/// 4. Apply `snapshot` to the state machine, then `committed_entries` in order; serve
///    `read_states` once their index is applied. Without a `snapshot`, `committed_entries`
///    may be applied before step 2: a quorum holds them durably already.
///
/// Every `Snapshot` message (in `messages`) must later be answered with
/// [`crate::Consensus::report_snapshot`] once its transfer has ended, successfully or not: the core
/// sends that peer nothing else until then, and never gives up on the transfer by itself.
///
/// No other call may be made on the core between taking a `Ready` and `advance`.
#[derive(Debug)]
pub struct Ready<M> {
    pub soft_state: Option<SoftState>,
    pub hard_state: Option<HardState>,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    pub messages: Vec<M>,
    pub persisted_messages: Vec<M>,
    pub committed_entries: Vec<Entry>,
    pub read_states: Vec<ReadState>,
    /// Why each refused vote in `messages` and `persisted_messages` was refused; for
    /// observers only.
    pub vote_refusals: Vec<VoteRefusal>,
}

impl<M> Default for Ready<M> {
    fn default() -> Self {
        Self {
            soft_state: None,
            hard_state: None,
            snapshot: None,
            entries: Vec::new(),
            messages: Vec::new(),
            persisted_messages: Vec::new(),
            committed_entries: Vec::new(),
            read_states: Vec::new(),
            vote_refusals: Vec::new(),
        }
    }
}
