//! Keys of etcd's `key` bucket: a revision as 8-byte big-endian main, '_', 8-byte big-endian
//! sub, and a trailing 't' when the revision deletes its key (a tombstone).

const REV_LEN: usize = 17;
const TOMBSTONE_MARK: u8 = b't';

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    /// The revision of the transaction (one per write request).
    pub main: i64,
    /// The change's position within that transaction, from 0.
    pub sub: i64,
}

/// Parses a revision without a tombstone mark, as the meta bucket's compaction keys hold.
pub(crate) fn parse_revision(bytes: &[u8]) -> Option<Revision> {
    if bytes.len() != REV_LEN || bytes[8] != b'_' {
        return None;
    }
    let half = |range: std::ops::Range<usize>| i64::try_from(u64::from_be_bytes(bytes[range].try_into().ok()?)).ok();
    Some(Revision { main: half(0..8)?, sub: half(9..17)? })
}

/// Parses a `key` bucket key into its revision and whether it is a tombstone.
pub(crate) fn parse_key(key: &[u8]) -> Option<(Revision, bool)> {
    match key.len() {
        REV_LEN => Some((parse_revision(key)?, false)),
        18 if key[REV_LEN] == TOMBSTONE_MARK => Some((parse_revision(&key[..REV_LEN])?, true)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(main: u64, sub: u64) -> Vec<u8> {
        [&main.to_be_bytes()[..], b"_", &sub.to_be_bytes()].concat()
    }

    #[test]
    fn parses_revisions_and_tombstones() {
        assert_eq!(parse_key(&key(5, 2)), Some((Revision { main: 5, sub: 2 }, false)));
        let tomb = [key(300, 0), b"t".to_vec()].concat();
        assert_eq!(parse_key(&tomb), Some((Revision { main: 300, sub: 0 }, true)));
    }

    #[test]
    fn refuses_other_shapes() {
        assert_eq!(parse_key(b""), None);
        assert_eq!(parse_key(&key(5, 2)[..16]), None);
        assert_eq!(parse_key(&[key(5, 2), b"x".to_vec()].concat()), None);
        let mut bad_sep = key(5, 2);
        bad_sep[8] = b'-';
        assert_eq!(parse_key(&bad_sep), None);
        assert_eq!(parse_key(&key(u64::MAX, 0)), None, "main must fit an int64");
    }
}
