//! Typed errors. Every failure names what it was doing; corruption names the file and offset.

use std::io;
use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when opening, writing or reading the data directory.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bytes on disk that a crash cannot explain (e.g. a bad checksum followed by valid records).
    #[error("corrupt data in {} at byte offset {offset}: {reason}", path.display())]
    Corrupt { path: PathBuf, offset: u64, reason: String },
    /// The directory was written by a newer version of this crate.
    #[error("{} has format version {found}, this build supports up to {supported}; refusing to open", path.display())]
    NewerFormat { path: PathBuf, found: u32, supported: u32 },
    /// Another process (or another handle in this process) has the directory open.
    #[error("data directory {} is locked by another process or handle", path.display())]
    Locked { path: PathBuf },
    /// An I/O call failed.
    #[error("I/O error while {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// The caller handed in a batch that would break the log's invariants.
    #[error("invalid write batch: {0}")]
    InvalidBatch(String),
    /// `WalOptions` out of bounds.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// A read asked for indexes outside `[first_index, last_index + 1)`.
    #[error("entries [{lo}, {hi}) are outside the log [{first}, {last}]")]
    OutOfRange { lo: u64, hi: u64, first: u64, last: u64 },
    /// A previous write or sync failed; the on-disk state is unknown until reopen.
    #[error("log is unusable after an earlier I/O failure; reopen the data directory")]
    Poisoned,
}

/// Attaches context to `io::Result`s.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io { context: context(), source })
    }
}
