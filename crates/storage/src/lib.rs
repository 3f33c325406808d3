//! Disk side of Tally's Raft `Ready` loop: a segmented write-ahead log, snapshot files,
//! crash recovery and a data-directory lock.
//!
//! # Durability contract
//!
//! * When [`Wal::append`] returns `Ok`, the batch's hard state and entries are on stable
//!   storage (one `fdatasync` of the segment, after its positional write, unbuffered where
//!   the file system allows: see `append.rs`), and so is every earlier batch. A batch is one checksummed record, so after a crash it is either
//!   entirely present or entirely absent — also its suffix truncation.
//! * When `append` returns `Err` (or the process dies inside it), the batch may or may not be
//!   durable. After an I/O error the [`Wal`] refuses further writes ([`Error::Poisoned`]):
//!   after a failed fsync the kernel may have dropped dirty pages, so the only safe move is to
//!   reopen and let recovery decide what is on disk.
//! * When [`Wal::save_snapshot`] returns `Ok`, the snapshot file is durable (temp file,
//!   fsync, rename, directory fsync) and recorded in the log; the previous snapshot is deleted
//!   only after that. When [`Wal::compact`] returns `Ok`, the compaction marker is durable;
//!   released segments are then deleted (or renamed to spares) oldest first.
//! * A released segment may be reused as a later segment ([`WalOptions::spare_segments_max`]).
//!   Its old records stay on disk after the new log's end but can never be read as live:
//!   each record's checksum is seeded with its segment's sequence number, and each write
//!   ends with a zero trailer so the end of the log stays recognisable.
//! * Recovery ([`Wal::open`]) returns every acknowledged entry and the last acknowledged hard
//!   state. A torn record at the very end of the last segment (a crash mid-write) is cut off
//!   and reported in [`Recovered::torn_tail`]; any other damage — a bad record followed by a
//!   valid one, garbage in a sealed segment, a missing segment or snapshot — is
//!   [`Error::Corrupt`] naming the file and byte offset, and nothing is repaired.
//! * A data directory is opened by at most one [`Wal`] at a time ([`Error::Locked`]).
//!
//! What this does not protect against: a disk that acknowledges `fdatasync` without
//! persisting, or corruption that rewrites a record together with a matching CRC32C.

mod append;
mod error;
pub mod fs;
mod lock;
mod log_index;
pub mod pace;
mod prepare;
mod record;
mod recovery;
mod segment;
pub mod simfs;
mod snapshot;
mod types;
mod wal;

pub use error::{Error, Result};
pub use lock::DirLock;
pub use prepare::Prepare;
pub use recovery::TornTail;
pub use segment::{segment_name, SEGMENT_FORMAT_VERSION, SEGMENT_HEADER_LEN};
pub use snapshot::{snapshot_name, SNAPSHOT_FORMAT_VERSION};
pub use types::{HardState, LogEntry, Snapshot, SnapshotMeta, WriteBatch};
pub use wal::{Adoption, Recovered, SnapshotWriter, Wal, WalOptions, SEGMENT_SIZE_MIN};
