//! The batch of work the engine hands to its driver: the same contract as Raft's `Ready`.

use tally_consensus::{Entry, HardState, ReadState, Snapshot, SoftState};

use crate::multi::Message;

/// Work for the driver. Handle it in this order, then call [`crate::multi::MultiPaxos::advance`]:
///
/// 1. Send `messages` (Prepares, Accepts, heartbeats, snapshots, refusals): none of them claims
///    that anything of ours is durable.
/// 2. Persist `snapshot` (if any), then `entries` (replacing every durable entry at or after
///    `entries[0].index`), then `hard_state` (the promised ballot as (term, vote), and the
///    commit index); make all of it durable.
/// 3. Send `persisted_messages`: promises and acceptances, which vouch for step 2.
/// 4. Apply `snapshot`, then `committed_entries` in order; serve `read_states` once their
///    index is applied.
///
/// Every `Snapshot` message must later be answered with
/// [`crate::multi::MultiPaxos::report_snapshot`] once its transfer has ended.
#[derive(Debug, Default)]
pub struct Ready {
    pub soft_state: Option<SoftState>,
    pub hard_state: Option<HardState>,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    pub messages: Vec<Message>,
    pub persisted_messages: Vec<Message>,
    pub committed_entries: Vec<Entry>,
    pub read_states: Vec<ReadState>,
}
