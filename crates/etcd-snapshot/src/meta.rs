//! etcd's `meta` bucket: how far the backend has applied the raft log, and compaction progress.

use crate::buckets::{lookup, Pairs};
use crate::error::SnapshotError;
use crate::members::ConfState;
use crate::revision::parse_revision;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Meta {
    pub consistent_index: u64,
    pub term: u64,
    pub finished_compact_revision: i64,
    pub scheduled_compact_revision: i64,
    pub conf_state: Option<ConfState>,
    pub storage_version: Option<String>,
}

fn bad(key: &str, reason: impl Into<String>) -> SnapshotError {
    SnapshotError::BadValue { bucket: "meta", key: key.to_string(), reason: reason.into() }
}

/// An 8-byte big-endian integer, 0 when absent (as etcd reads a missing index or term).
fn u64_value(pairs: &Pairs, key: &str) -> Result<u64, SnapshotError> {
    let Some(value) = lookup(pairs, key) else { return Ok(0) };
    let bytes: [u8; 8] = value.try_into().map_err(|_| bad(key, format!("{} bytes, not 8", value.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

/// A compaction revision: stored as a whole 17-byte revision, of which only main counts.
fn compact_value(pairs: &Pairs, key: &str) -> Result<i64, SnapshotError> {
    let Some(value) = lookup(pairs, key) else { return Ok(0) };
    parse_revision(value).map(|rev| rev.main).ok_or_else(|| bad(key, "not a 17-byte revision"))
}

pub(crate) fn read_meta(pairs: &Pairs) -> Result<Meta, SnapshotError> {
    let conf_state = lookup(pairs, "confState")
        .map(|json| serde_json::from_slice(json).map_err(|e| bad("confState", e.to_string())))
        .transpose()?;
    let storage_version = lookup(pairs, "storageVersion")
        .map(|v| String::from_utf8(v.to_vec()).map_err(|e| bad("storageVersion", e.to_string())))
        .transpose()?;
    Ok(Meta {
        consistent_index: u64_value(pairs, "consistent_index")?,
        term: u64_value(pairs, "term")?,
        finished_compact_revision: compact_value(pairs, "finishedCompactRev")?,
        scheduled_compact_revision: compact_value(pairs, "scheduledCompactRev")?,
        conf_state,
        storage_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(main: u64) -> Vec<u8> {
        [&main.to_be_bytes()[..], b"_", &0u64.to_be_bytes()].concat()
    }

    #[test]
    fn reads_what_etcd_3_5_writes() {
        let (index, term, done, sched) = (12u64.to_be_bytes(), 2u64.to_be_bytes(), rev(3), rev(5));
        let conf = br#"{"voters":[13668033151171901709],"auto_leave":false}"#;
        let pairs: Pairs = vec![
            (b"confState", conf),
            (b"consistent_index", &index),
            (b"finishedCompactRev", &done),
            (b"scheduledCompactRev", &sched),
            (b"term", &term),
        ];
        let meta = read_meta(&pairs).unwrap();
        assert_eq!((meta.consistent_index, meta.term), (12, 2));
        assert_eq!((meta.finished_compact_revision, meta.scheduled_compact_revision), (3, 5));
        let conf = meta.conf_state.unwrap();
        assert_eq!(conf.voters, vec![13668033151171901709]);
        assert!(conf.learners.is_empty() && !conf.auto_leave);
        assert_eq!(meta.storage_version, None);
    }

    #[test]
    fn absent_keys_read_as_zero_and_malformed_ones_are_errors() {
        assert_eq!(read_meta(&Vec::new()).unwrap(), Meta::default());
        let short: Pairs = vec![(b"term", &[1, 2, 3])];
        assert!(matches!(read_meta(&short), Err(SnapshotError::BadValue { .. })));
        let eight: Pairs = vec![(b"finishedCompactRev", &[0; 8])];
        assert!(matches!(read_meta(&eight), Err(SnapshotError::BadValue { .. })));
    }
}
