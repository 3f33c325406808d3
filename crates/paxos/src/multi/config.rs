//! The engine's settings and the bugs tests may plant in it.

use tally_consensus::NodeId;

/// A deliberately wrong behaviour, switched on only by tests, to prove that the checkers catch
/// it. Never set outside tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaxosBug {
    /// Accept a value whose ballot is below the promised one.
    AcceptBelowPromise,
    /// A new leader keeps its own values instead of the highest-numbered accepted ones.
    ForgetHighestAccepted,
    /// Send promises and acceptances before they are durable.
    AnswerBeforePersist,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub id: NodeId,
    /// Minimum election timeout in ticks; each is drawn from `[election_tick, 2 * election_tick)`.
    pub election_tick: u32,
    pub heartbeat_tick: u32,
    /// When the transport reports the leader's connection closed, campaign after
    /// 1..=`fast_election_ticks` ticks instead of a full timeout; 0 turns this off.
    pub fast_election_ticks: u32,
    /// When non-zero, a follower that knows a live leader draws its timeout from
    /// `[election_tick, election_tick + leader_silence_jitter_ticks)`: it stands soon after the
    /// leader falls silent. Harmless if the leader lives: acceptors that hear it refuse.
    pub leader_silence_jitter_ticks: u32,
    /// Accept messages in flight per acceptor before the leader waits for answers.
    pub inflight_msgs_max: usize,
    pub entries_per_msg_max: usize,
    /// Bytes of values per Accept (at least one value is always sent).
    pub bytes_per_msg_max: u64,
    /// Entries kept below a new snapshot, so a slightly lagging acceptor catches up from the log.
    pub compaction_lag_entries: u64,
    pub seed: u64,
    pub bug: Option<PaxosBug>,
}

impl Config {
    pub fn new(id: NodeId) -> Self {
        Self {
            id,
            election_tick: 10,
            heartbeat_tick: 1,
            fast_election_ticks: 0,
            leader_silence_jitter_ticks: 0,
            inflight_msgs_max: 256,
            entries_per_msg_max: 1024,
            bytes_per_msg_max: 1 << 20,
            compaction_lag_entries: 0,
            seed: 0,
            bug: None,
        }
    }

    pub(crate) fn bug(&self, bug: PaxosBug) -> bool {
        self.bug == Some(bug)
    }
}
