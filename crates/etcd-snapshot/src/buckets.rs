//! The top-level buckets of etcd's backend, as lists of plain key/value pairs.

use crate::bolt::{Db, Value};
use crate::error::{hex, SnapshotError};

pub(crate) type Pairs<'a> = Vec<(&'a [u8], &'a [u8])>;

/// The entries of top-level bucket `name` in key order, or `None` if there is no such bucket.
/// etcd nests no buckets, so a nested one is an error.
pub(crate) fn pairs<'a>(db: &Db<'a>, name: &'static str) -> Result<Option<Pairs<'a>>, SnapshotError> {
    let Some(bucket) = db.bucket(name.as_bytes())? else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for entry in bucket.entries() {
        let entry = entry?;
        match entry.value {
            Value::Data(value) => out.push((entry.key, value)),
            Value::Bucket(_) => return Err(SnapshotError::UnexpectedBucket { bucket: name, key: hex(entry.key) }),
        }
    }
    Ok(Some(out))
}

/// Like [`pairs`], for a bucket every etcd v3 backend has.
pub(crate) fn required_pairs<'a>(db: &Db<'a>, name: &'static str) -> Result<Pairs<'a>, SnapshotError> {
    pairs(db, name)?.ok_or(SnapshotError::MissingBucket(name))
}

/// The value of `key` in `pairs`, which are sorted by key.
pub(crate) fn lookup<'a>(pairs: &Pairs<'a>, key: &str) -> Option<&'a [u8]> {
    pairs.binary_search_by(|(k, _)| (*k).cmp(key.as_bytes())).ok().map(|i| pairs[i].1)
}
