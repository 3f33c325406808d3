//! etcd's `key` bucket: every revision of every key not yet compacted away, keyed by revision.

use prost::Message;

use crate::buckets::Pairs;
use crate::error::{hex, SnapshotError};
use crate::records::KeyValue;
use crate::revision::parse_key;

/// One change to the keyspace: a put of `kv`, or, for a tombstone, the deletion of `kv.key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revisioned {
    pub main: i64,
    pub sub: i64,
    /// A delete. etcd stores only the key for it; the other fields of `kv` are 0 or empty.
    pub tombstone: bool,
    pub kv: KeyValue,
}

/// Decodes the bucket's entries, which bbolt keeps (and the walk checks) in revision order.
pub(crate) fn read_revisions(pairs: &Pairs) -> Result<Vec<Revisioned>, SnapshotError> {
    pairs.iter().map(|&(key, value)| read_revision(key, value)).collect()
}

fn read_revision(key: &[u8], value: &[u8]) -> Result<Revisioned, SnapshotError> {
    let (rev, tombstone) = parse_key(key).ok_or_else(|| SnapshotError::BadRevisionKey { key: hex(key) })?;
    let bad = |reason: String| SnapshotError::BadKeyValue { main: rev.main, sub: rev.sub, reason };
    let kv = KeyValue::decode(value).map_err(|e| bad(format!("not an mvccpb.KeyValue: {e}")))?;
    if kv.key.is_empty() {
        return Err(bad("empty key".into()));
    }
    // A put records its own revision; a mismatch means the value is not what etcd wrote here.
    if !tombstone && kv.mod_revision != rev.main {
        return Err(bad(format!("mod_revision is {}", kv.mod_revision)));
    }
    Ok(Revisioned { main: rev.main, sub: rev.sub, tombstone, kv })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev_key(main: u64, sub: u64, tombstone: bool) -> Vec<u8> {
        let mut key = [&main.to_be_bytes()[..], b"_", &sub.to_be_bytes()].concat();
        if tombstone {
            key.push(b't');
        }
        key
    }

    fn kv(key: &str, rev: i64) -> KeyValue {
        KeyValue { key: key.into(), create_revision: 2, mod_revision: rev, version: 2, value: b"v".to_vec(), lease: 7 }
    }

    #[test]
    fn decodes_puts_and_tombstones() {
        let put = kv("a", 3).encode_to_vec();
        let del = KeyValue { key: b"a".to_vec(), ..Default::default() }.encode_to_vec();
        let (k1, k2) = (rev_key(3, 0, false), rev_key(4, 1, true));
        let revs = read_revisions(&vec![(&k1[..], &put[..]), (&k2[..], &del[..])]).unwrap();
        assert_eq!(revs[0], Revisioned { main: 3, sub: 0, tombstone: false, kv: kv("a", 3) });
        assert_eq!((revs[1].main, revs[1].sub, revs[1].tombstone, &revs[1].kv.key[..]), (4, 1, true, &b"a"[..]));
    }

    #[test]
    fn refuses_values_that_do_not_fit_their_revision() {
        let k = rev_key(3, 0, false);
        let other = kv("a", 9).encode_to_vec();
        assert!(matches!(read_revisions(&vec![(&k[..], &other[..])]), Err(SnapshotError::BadKeyValue { .. })));
        assert!(matches!(read_revisions(&vec![(&k[..], &[0xff][..])]), Err(SnapshotError::BadKeyValue { .. })));
        let empty = KeyValue { mod_revision: 3, ..Default::default() }.encode_to_vec();
        assert!(matches!(read_revisions(&vec![(&k[..], &empty[..])]), Err(SnapshotError::BadKeyValue { .. })));
        let put = kv("a", 3).encode_to_vec();
        assert!(matches!(read_revisions(&vec![(&b"3"[..], &put[..])]), Err(SnapshotError::BadRevisionKey { .. })));
    }
}
