//! Reads an etcd v3 snapshot into plain records, so that a Tally store can be rebuilt from it
//! with the same revisions.
//!
//! A snapshot is what `etcdctl snapshot save` writes: etcd's bbolt backend followed by a
//! 32-byte SHA-256 of it. [`EtcdSnapshot::read_file`] checks the hash, reads the backend with
//! the crate's own bbolt reader ([`bolt`]) and decodes etcd's buckets: `key` (every revision),
//! `lease`, `meta` (raft index and term, compaction), membership, and auth (users, roles).
//!
//! Every malformed input gives a [`SnapshotError`]; nothing here panics on bad data.

mod auth;
pub mod bolt;
mod buckets;
mod error;
mod keys;
mod leases;
mod members;
mod meta;
mod records;
mod revision;
mod snapshot;
mod trailer;

pub use auth::EtcdAuth;
pub use error::SnapshotError;
pub use keys::Revisioned;
pub use members::{ConfState, Member};
pub use records::{KeyValue, Lease, Permission, Role, User, UserAddOptions};
pub use snapshot::EtcdSnapshot;
pub use trailer::HashCheck;
