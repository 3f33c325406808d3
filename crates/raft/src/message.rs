//! The messages Raft peers exchange. Every message carries the sender's term, which the
//! receiver settles first (see `Raft::step`).

use bytes::Bytes;

use tally_consensus::{Entry, Index, NodeId, Snapshot, Term};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    pub term: Term,
    pub body: MessageBody,
}

/// Where a follower's log diverges, so the leader can skip a whole term per round trip
/// instead of one entry (Raft paper section 5.3, "fast backtracking").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConflictHint {
    /// Term of the follower's entry at the rejected `prev_index`; `None` if the follower's log
    /// is shorter than `prev_index`.
    pub term: Option<Term>,
    /// First index the follower holds with `term` (or its last index + 1 when `term` is `None`).
    pub first_index: Index,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageBody {
    /// "Would you vote for me in `term`?" Sent at the candidate's current term + 1 without
    /// changing any state, so a partitioned node cannot inflate terms (Raft thesis 9.6).
    PreVote {
        last_index: Index,
        last_term: Term,
    },
    PreVoteResp {
        reject: bool,
    },
    /// RequestVote. `transfer` marks a campaign started by TimeoutNow, which voters honour even
    /// while they still hear from the current leader.
    Vote {
        last_index: Index,
        last_term: Term,
        transfer: bool,
    },
    VoteResp {
        reject: bool,
    },
    /// AppendEntries.
    Append {
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: Index,
    },
    /// On success `index` is the last index now known to match the leader; on rejection it is
    /// the rejected `prev_index` and `reject` carries the hint.
    AppendResp {
        index: Index,
        reject: Option<ConflictHint>,
    },
    /// Leader liveness and commit propagation. `round` confirms leadership for ReadIndex.
    Heartbeat {
        commit: Index,
        round: u64,
    },
    HeartbeatResp {
        round: u64,
    },
    /// The leader's log is durable up to `index` (sent only to a follower that makes a quorum
    /// with the leader): the follower commits what both hold durably (see `durable_hint.rs`).
    LeaderDurable {
        index: Index,
    },
    /// InstallSnapshot: the follower is too far behind the leader's compacted log.
    Snapshot {
        snapshot: Snapshot,
    },
    /// Leadership transfer: start an election now, skipping pre-vote.
    TimeoutNow,
    /// A follower asks the leader for a read index on behalf of its client.
    ReadIndex {
        ctx: Bytes,
    },
    /// `index` is `None` when the leader could not serve the read (e.g. it lost leadership).
    ReadIndexResp {
        ctx: Bytes,
        index: Option<Index>,
    },
}

impl MessageBody {
    /// Messages only a leader of `term` sends; receiving one at our term means that leader exists.
    pub fn is_from_leader(&self) -> bool {
        matches!(
            self,
            Self::Append { .. } | Self::Heartbeat { .. } | Self::Snapshot { .. } | Self::LeaderDurable { .. }
        )
    }
}
