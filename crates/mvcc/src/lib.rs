//! Tally's MVCC key-value state machine with etcd v3.5 semantics: revisions, versions, historical reads,
//! compaction, txns, leases as replicated state, exactly-once application of client commands, and snapshots.
//!
//! Everything is deterministic: no I/O, no clocks, no randomness. Responses carry a header with only the
//! revision set; the server fills cluster id, member id and raft term.

mod alarms;
mod apply;
mod auth;
mod error;
mod go_sort;
mod hash;
mod history;
mod import;
mod index;
mod key_index;
mod lease;
mod range;
mod revision;
mod sharded;
mod snapshot;
mod store;
mod txn;
pub mod validate;
mod write;

pub use alarms::{put_cost, txn_cost, Alarms, LEASE_COST};
pub use apply::{Applied, CommandResponse, Session, Sessions, StateMachine};
pub use auth::{Access, AuthInfo, AuthStore};
pub use error::{GrpcCode, MvccError};
pub use hash::KvHash;
pub use import::{ImportedAuth, ImportedChange, ImportedHistory};
pub use lease::{Lease, MAX_LEASE_TTL};
pub use revision::{Revision, INITIAL_REVISION, NEVER_COMPACTED};
pub use snapshot::{SnapshotCopy, SnapshotError};
pub use store::{Store, StoreConfig};
