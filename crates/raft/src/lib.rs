//! Tally's Raft consensus core, sans-IO: no threads, clocks, sockets, files or global
//! randomness. The driver feeds it [`Raft::tick`], [`Raft::step`], [`Raft::propose`],
//! [`Raft::read_index`], [`Raft::transfer_leader`] and [`Raft::propose_conf_change`], and the
//! transport's observations [`Raft::report_unreachable`] and [`Raft::report_snapshot`]; it
//! drains its work with [`Raft::ready`] and [`Raft::advance`]:
//!
//! ```
//! use tally_raft::{Config, Persisted, Raft};
//!
//! let mut node = Raft::new(Config::new(1), Persisted::bootstrap([1])).unwrap();
//! // The first Ready applies the bootstrap membership (entry 1).
//! node.ready();
//! node.advance();
//! node.campaign();
//! while node.has_ready() {
//!     let ready = node.ready();
//!     // 1. send ready.messages; 2. persist snapshot, entries, hard_state and fsync;
//!     // 3. send ready.persisted_messages; 4. apply ready.committed_entries.
//!     node.advance();
//! }
//! assert!(node.role() == tally_raft::Role::Leader);
//! let index = node.propose(bytes::Bytes::from_static(b"put x 1")).unwrap();
//! while node.has_ready() {
//!     let ready = node.ready();
//!     node.advance();
//! }
//! assert_eq!(node.committed(), index);
//! ```
//!
//! See [`Ready`] for exactly what must be durable before which messages leave.

mod config;
mod consensus;
mod error;
mod log;
mod message;
mod progress;
mod raft;
mod ready;

pub use config::{Config, InjectedBug};
pub use error::ConfigError;
pub use message::{ConflictHint, Message, MessageBody};
pub use progress::Progress;
pub use raft::Raft;
pub use ready::Ready;
// The vocabulary shared with the driver and the other engine, re-exported so callers of the
// core need one import.
pub use tally_consensus::{
    mix, quorum, ConfChange, ConfChangeError, ConfChangeOp, ConfState, Consensus, Entry, EntryKind, HardState, Index,
    NodeId, Persisted, ProgressState, ProposeError, ReadIndexError, ReadState, RefusalReason, Replication, Role,
    Snapshot, SnapshotMeta, SoftState, SplitMix64, StepError, Term, TransferError, VoteRefusal,
};
