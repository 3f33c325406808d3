//! `etcdctl snapshot save` appends the SHA-256 of the bbolt file to it. A member's own
//! `member/snap/db` has no trailer.

use sha2::{Digest, Sha256};

use crate::error::{hex, SnapshotError};

const TRAILER_LEN: usize = 32;

/// Whether to require and verify the SHA-256 trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashCheck {
    /// The file must end in a trailer that matches the data: what `etcdctl snapshot save` writes.
    #[default]
    Verify,
    /// Like `etcdutl snapshot restore --skip-hash-check`: a trailer, if the length shows one, is
    /// stripped unchecked; otherwise the file is taken as a raw bbolt file.
    Skip,
}

/// etcdutl's test for a trailer: bbolt files are whole pages, so a multiple of 512 bytes.
fn has_trailer(len: usize) -> bool {
    len % 512 == TRAILER_LEN
}

/// The bbolt file inside `file`, with the trailer checked as `check` says and stripped.
pub(crate) fn strip_trailer(file: &[u8], check: HashCheck) -> Result<&[u8], SnapshotError> {
    if !has_trailer(file.len()) {
        return match check {
            HashCheck::Verify => Err(SnapshotError::MissingTrailer { len: file.len() }),
            HashCheck::Skip => Ok(file),
        };
    }
    let (db, trailer) = file.split_at(file.len() - TRAILER_LEN);
    if check == HashCheck::Verify {
        let actual = Sha256::digest(db);
        if actual.as_slice() != trailer {
            return Err(SnapshotError::HashMismatch { expected: hex(trailer), actual: hex(&actual) });
        }
    }
    Ok(db)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_trailer(db: &[u8]) -> Vec<u8> {
        [db, Sha256::digest(db).as_slice()].concat()
    }

    #[test]
    fn verifies_and_strips_the_trailer() {
        let db = vec![7u8; 1024];
        let file = with_trailer(&db);
        assert_eq!(strip_trailer(&file, HashCheck::Verify).unwrap(), &db[..]);
        assert_eq!(strip_trailer(&file, HashCheck::Skip).unwrap(), &db[..]);
    }

    #[test]
    fn refuses_a_trailer_that_does_not_match() {
        let mut file = with_trailer(&[7u8; 1024]);
        file[100] ^= 1;
        assert!(matches!(strip_trailer(&file, HashCheck::Verify), Err(SnapshotError::HashMismatch { .. })));
        // Skipping the check strips the trailer all the same.
        assert_eq!(strip_trailer(&file, HashCheck::Skip).unwrap().len(), 1024);
    }

    #[test]
    fn raw_files_need_the_check_skipped() {
        let db = vec![7u8; 1024];
        assert!(matches!(strip_trailer(&db, HashCheck::Verify), Err(SnapshotError::MissingTrailer { len: 1024 })));
        assert_eq!(strip_trailer(&db, HashCheck::Skip).unwrap(), &db[..]);
        assert!(matches!(strip_trailer(&[], HashCheck::Verify), Err(SnapshotError::MissingTrailer { len: 0 })));
    }
}
