//! Segment files: naming and the fixed header (magic, format version, sequence number).

use std::path::Path;

use crate::error::{Error, Result};

pub const SEGMENT_MAGIC: [u8; 8] = *b"TALLYWAL";
/// Highest segment format version this build reads and the one it writes.
pub const SEGMENT_FORMAT_VERSION: u32 = 1;
/// Header: magic 8 | version u32 | reserved u32 | seq u64 | crc32c u32 | pad u32.
pub const SEGMENT_HEADER_LEN: usize = 32;

const SEGMENT_SUFFIX: &str = ".wal";
/// Segments are built under this suffix and renamed once their header is durable.
pub const TMP_SUFFIX: &str = ".tmp";

pub fn segment_name(seq: u64) -> String {
    format!("{seq:016x}{SEGMENT_SUFFIX}")
}

/// Sequence number of a finished segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(SEGMENT_SUFFIX)?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

pub fn encode_header(seq: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&SEGMENT_FORMAT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Validates a segment header. The version is checked before the checksum so a newer
/// layout (which may checksum differently) is reported as such, not as corruption.
pub fn check_header(path: &Path, buf: &[u8], expected_seq: u64) -> Result<()> {
    let corrupt = |offset: u64, reason: String| Error::Corrupt { path: path.to_owned(), offset, reason };
    let Some(h) = buf.get(..SEGMENT_HEADER_LEN) else {
        return Err(corrupt(0, format!("file of {} bytes is shorter than the segment header", buf.len())));
    };
    if h[0..8] != SEGMENT_MAGIC {
        return Err(corrupt(0, "bad segment magic".into()));
    }
    let version = u32::from_le_bytes(h[8..12].try_into().unwrap());
    if version > SEGMENT_FORMAT_VERSION {
        return Err(Error::NewerFormat { path: path.to_owned(), found: version, supported: SEGMENT_FORMAT_VERSION });
    }
    let crc = u32::from_le_bytes(h[24..28].try_into().unwrap());
    if crc32c::crc32c(&h[0..24]) != crc {
        return Err(corrupt(24, "segment header checksum mismatch".into()));
    }
    if version == 0 || h[12..16] != [0; 4] || h[28..32] != [0; 4] {
        return Err(corrupt(8, format!("invalid segment header (version {version})")));
    }
    let seq = u64::from_le_bytes(h[16..24].try_into().unwrap());
    if seq != expected_seq {
        return Err(corrupt(16, format!("header says segment {seq}, file name says {expected_seq}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(parse_segment_name(&segment_name(0xabc)), Some(0xabc));
        assert_eq!(parse_segment_name("0000000000000001.wal.tmp"), None);
        assert_eq!(parse_segment_name("LOCK"), None);
    }

    #[test]
    fn header_checks() {
        let p = Path::new("x.wal");
        let h = encode_header(3);
        check_header(p, &h, 3).unwrap();
        assert!(matches!(check_header(p, &h, 4), Err(Error::Corrupt { .. })));
        let mut newer = h;
        newer[8] = 9;
        assert!(matches!(check_header(p, &newer, 3), Err(Error::NewerFormat { found: 9, .. })));
    }
}
