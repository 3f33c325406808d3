use std::path::PathBuf;

use crate::bolt::BoltError;

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("reading {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "the file ({len} bytes) has no SHA-256 trailer (its length is not 32 more than a multiple of 512); \
         a raw bbolt file such as a member's member/snap/db can be read with the hash check skipped"
    )]
    MissingTrailer { len: usize },
    #[error("SHA-256 mismatch: the trailer says {expected}, the data hashes to {actual}: the snapshot is damaged")]
    HashMismatch { expected: String, actual: String },
    #[error("bbolt: {0}")]
    Bolt(#[from] BoltError),
    #[error("the snapshot has no `{0}` bucket: not an etcd v3 backend")]
    MissingBucket(&'static str),
    #[error("bucket `{bucket}`: entry {key} is a nested bucket where etcd stores a value")]
    UnexpectedBucket { bucket: &'static str, key: String },
    #[error("bucket `key`: {key} is not a revision (8-byte main, '_', 8-byte sub, optional 't')")]
    BadRevisionKey { key: String },
    #[error("bucket `key`: revision {main}.{sub}: {reason}")]
    BadKeyValue { main: i64, sub: i64, reason: String },
    #[error("bucket `lease`: entry {key}: {reason}")]
    BadLease { key: String, reason: String },
    #[error("bucket `{bucket}`: key `{key}`: {reason}")]
    BadValue { bucket: &'static str, key: String, reason: String },
}

/// Bytes as lowercase hex, for naming keys that are not text.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
