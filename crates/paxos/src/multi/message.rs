//! The messages Multi-Paxos members exchange. Every message names a ballot: the sender's own
//! (Prepare, Accept, Heartbeat, Snapshot, TimeoutNow), or the one it answers (Promise,
//! Accepted, HeartbeatResp, Nack).

use bytes::Bytes;
use tally_consensus::{Entry, Index, NodeId, Snapshot};

use crate::multi::Ballot;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    pub ballot: Ballot,
    pub body: MessageBody,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageBody {
    /// Phase 1a for every slot after `commit` (the proposer's), at once. `force` marks a
    /// campaign a leader asked for (transfer), which acceptors honour despite their lease.
    Prepare { commit: Index, force: bool },
    /// Phase 1b: the promise, with every value the acceptor accepted after the proposer's
    /// commit (each entry's `term` is the round it was accepted in) and the acceptor's own
    /// commit and snapshot index.
    Promise { commit: Index, snapshot_index: Index, entries: Vec<Entry> },
    /// The acceptor promised `promised`, which outranks the ballot of the message refused.
    Nack { promised: Ballot },
    /// Phase 2a for the slots `entries[0].index..`, contiguous, each with `term` equal to the
    /// ballot's round; `commit` tells learners what is chosen.
    Accept { entries: Vec<Entry>, commit: Index },
    /// Phase 2b: every slot up to `through` holds this ballot's value (or a chosen one).
    /// `gap`: the Accept started past what the acceptor holds; resend from this slot.
    Accepted { through: Index, gap: Option<Index> },
    /// The leader is alive; `round` confirms its leadership for reads.
    Heartbeat { commit: Index, round: u64 },
    /// `through`: as in `Accepted`, so a leader sees an acceptor that restarted and forgot.
    HeartbeatResp { round: u64, through: Index },
    /// A lagging acceptor's catch-up when the slots it needs are compacted away.
    Snapshot { snapshot: Snapshot },
    /// Leadership transfer: campaign now.
    TimeoutNow,
    /// A follower asks the leader for a read index on behalf of its client.
    ReadIndex { ctx: Bytes },
    /// `index` is `None` when the leader could not serve the read.
    ReadIndexResp { ctx: Bytes, index: Option<Index> },
}

impl MessageBody {
    /// Messages only the leader of their ballot sends.
    pub fn is_from_leader(&self) -> bool {
        matches!(self, Self::Accept { .. } | Self::Heartbeat { .. } | Self::Snapshot { .. })
    }
}
