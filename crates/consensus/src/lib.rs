//! The vocabulary Tally's consensus engines share with their driver: log entries, hard state,
//! snapshots, membership and its changes, quorum arithmetic, roles, errors, and a seeded
//! generator. `tally-raft` and `tally-paxos` both speak it, so the node can drive either.

mod confchange;
mod error;
pub mod quorum;
mod rng;
mod role;
mod types;

pub use confchange::{ConfChange, ConfChangeOp};
pub use error::{ConfChangeError, ProposeError, ReadIndexError, StepError, TransferError};
pub use rng::{mix, SplitMix64};
pub use role::{ReadState, Role, SoftState};
pub use types::{ConfState, Entry, EntryKind, HardState, Index, NodeId, Persisted, Snapshot, SnapshotMeta, Term};
