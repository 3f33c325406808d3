//! The vocabulary Tally's consensus engines share with their driver: log entries, hard state,
//! snapshots, membership and its changes, quorum arithmetic, roles, errors, a seeded generator,
//! and the [`Consensus`] trait with its [`Ready`] contract. `tally-raft` and `tally-paxos`
//! both stand behind it, so the node can drive either.

mod confchange;
mod engine;
mod error;
pub mod quorum;
mod ready;
mod replication;
mod rng;
mod role;
mod types;

pub use confchange::{ConfChange, ConfChangeOp};
pub use engine::Consensus;
pub use error::{ConfChangeError, ProposeError, ReadIndexError, StepError, TransferError};
pub use ready::{Ready, RefusalReason, VoteRefusal};
pub use replication::{ProgressState, Replication};
pub use rng::{mix, SplitMix64};
pub use role::{ReadState, Role, SoftState};
pub use types::{
    Compacted, ConfState, Entry, EntryKind, HardState, Index, NodeId, Persisted, Snapshot, SnapshotMeta, Term,
};
