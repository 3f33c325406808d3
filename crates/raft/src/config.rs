//! Per-node configuration of the core. Time is counted in ticks; the driver decides how long a
//! tick is (15 ms makes the default election timeout 150-300 ms, as in the Raft paper).

use crate::error::ConfigError;
use tally_consensus::NodeId;

/// A deliberately wrong behaviour, switched on only by tests, to prove that the simulator's
/// checkers catch real safety bugs. Never set outside tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectedBug {
    /// Grant votes without the election restriction (candidate log at least as up to date).
    SkipElectionRestriction,
    /// Commit entries of earlier terms by counting replicas (Raft paper Figure 8).
    CommitPreviousTermByCounting,
    /// Grant a vote even when already voted for someone else in this term.
    VoteTwicePerTerm,
    /// Send vote responses before the vote is durable (lost on crash).
    VoteBeforePersist,
    /// Answer a follower's ReadIndex at once, without a heartbeat round, even when the leader
    /// and that follower are not a quorum.
    FollowerReadsWithoutQuorum,
    /// Take a read index from the leader's commit index alone, missing writes a follower
    /// committed by the leader's durable hint and already answered.
    ReadIndexIgnoresFollowerCommits,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub id: NodeId,
    /// Minimum election timeout in ticks; each timeout is drawn from
    /// `[election_tick, 2 * election_tick)` (but see `leader_silence_jitter_ticks`).
    pub election_tick: u32,
    /// Ticks between leader heartbeats.
    pub heartbeat_tick: u32,
    /// Campaign with a pre-vote round first (Raft thesis 9.6).
    pub pre_vote: bool,
    /// The leader steps down when it has not heard from a quorum for an election timeout, and
    /// followers that heard from a leader within the timeout ignore vote requests (leases).
    pub check_quorum: bool,
    /// Append messages in flight per follower before the leader waits for acknowledgements.
    pub inflight_msgs_max: usize,
    /// Entries per Append message.
    pub entries_per_msg_max: usize,
    /// Bytes of entry payload per Append message (at least one entry is always sent).
    pub bytes_per_msg_max: u64,
    /// When the transport reports that the leader's connection closed (its process died), a
    /// follower campaigns after 1..=`fast_election_ticks` ticks instead of a full election
    /// timeout. 0 turns this off.
    pub fast_election_ticks: u32,
    /// When non-zero, a follower that knows a live leader draws its timeout from
    /// `[election_tick, election_tick + leader_silence_jitter_ticks)` instead: it starts a
    /// pre-vote as soon as the leader has been silent for the minimum timeout, plus a little
    /// jitter so that the survivors of a dead leader rarely split. Suspecting early is
    /// harmless: a pre-vote changes no term, and while the leader lives the voters that hear
    /// it hold its lease and refuse (so this requires `pre_vote` and `check_quorum`). Nodes
    /// without a leader (after a failed election, or at start) keep the full
    /// `[election_tick, 2 * election_tick)` spread that settles contested elections.
    pub leader_silence_jitter_ticks: u32,
    /// Entries kept in memory below a new snapshot, so a follower slightly behind catches up
    /// from the log instead of receiving the whole snapshot (etcd's snapshot catch-up entries).
    pub compaction_lag_entries: u64,
    /// Seed for the election-timeout randomness; the driver injects it.
    pub seed: u64,
    #[doc(hidden)]
    pub injected_bug: Option<InjectedBug>,
}

impl Config {
    pub fn new(id: NodeId) -> Self {
        Self {
            id,
            election_tick: 10,
            heartbeat_tick: 2,
            pre_vote: true,
            check_quorum: true,
            inflight_msgs_max: 256,
            entries_per_msg_max: 1024,
            bytes_per_msg_max: 1024 * 1024,
            compaction_lag_entries: 0,
            fast_election_ticks: 0,
            leader_silence_jitter_ticks: 0,
            seed: id,
            injected_bug: None,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == 0 {
            return Err(ConfigError::ZeroId);
        }
        if self.heartbeat_tick == 0 {
            return Err(ConfigError::HeartbeatTick);
        }
        if self.election_tick <= self.heartbeat_tick {
            return Err(ConfigError::ElectionTick { election: self.election_tick, heartbeat: self.heartbeat_tick });
        }
        if self.inflight_msgs_max == 0 {
            return Err(ConfigError::ZeroLimit("inflight_msgs_max"));
        }
        if self.entries_per_msg_max == 0 {
            return Err(ConfigError::ZeroLimit("entries_per_msg_max"));
        }
        if self.fast_election_ticks > 0 && !(self.check_quorum && self.pre_vote) {
            // Without leader leases every voter grants the pre-vote, so one spurious reset
            // would depose a healthy leader.
            return Err(ConfigError::FastElectionWithoutLease);
        }
        if self.leader_silence_jitter_ticks > 0 && !(self.check_quorum && self.pre_vote) {
            return Err(ConfigError::JitterWithoutLease);
        }
        Ok(())
    }

    pub(crate) fn bug(&self, bug: InjectedBug) -> bool {
        self.injected_bug == Some(bug)
    }
}
