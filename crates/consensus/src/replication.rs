//! How a leader sees each member's replication, in terms both engines share.

use crate::types::Index;

/// Where the leader stands with one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// Finding out how much the member holds: one message at a time.
    Probe,
    /// Streaming entries, several messages in flight.
    Replicate,
    /// A snapshot is on its way.
    Snapshot,
}

/// One member as its leader sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replication {
    /// Highest index known to hold the leader's entry.
    pub matched: Index,
    pub next: Index,
    pub state: ProgressState,
    /// Heard from within the current check-quorum period.
    pub recent_active: bool,
}
