//! Misuse of the API: a configuration the core cannot start with.

use thiserror::Error;

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("node id 0 is reserved")]
    ZeroId,
    #[error("heartbeat_tick must be at least 1")]
    HeartbeatTick,
    #[error("election_tick ({election}) must be greater than heartbeat_tick ({heartbeat})")]
    ElectionTick { election: u32, heartbeat: u32 },
    #[error("{0} must be at least 1")]
    ZeroLimit(&'static str),
    #[error("fast_election_ticks needs check_quorum and pre_vote: only leader leases stop a spurious reset from deposing a live leader")]
    FastElectionWithoutLease,
    #[error("leader_silence_jitter_ticks needs check_quorum and pre_vote: only leader leases make suspecting a leader early harmless")]
    JitterWithoutLease,
    #[error("persisted entries do not follow the snapshot contiguously")]
    NonContiguousLog,
    #[error("persisted commit index {commit} is past the last log index {last}")]
    CommitPastLog { commit: u64, last: u64 },
}
