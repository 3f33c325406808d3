//! Plain record types shared with the Raft core (kept here so storage does not depend on raft).

use bytes::Bytes;

/// One Raft log entry. `kind` is opaque to storage (0 = normal, 1 = conf change by convention).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub index: u64,
    pub term: u64,
    pub kind: u8,
    pub data: Bytes,
}

/// The Raft state that must survive restarts. `vote == 0` means "voted for nobody".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    pub term: u64,
    pub vote: u64,
    pub commit: u64,
}

/// Metadata of a state-machine snapshot. `conf_state` is the opaque encoded membership.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotMeta {
    pub index: u64,
    pub term: u64,
    pub conf_state: Vec<u8>,
}

/// A snapshot as loaded from disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    pub data: Vec<u8>,
}

/// What one Raft `Ready` asks to persist: made durable together with one fdatasync.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteBatch<'a> {
    pub hard_state: Option<HardState>,
    pub entries: &'a [LogEntry],
}
