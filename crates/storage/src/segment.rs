//! Segment files: naming, the fixed header (magic, format version, flags, sequence number)
//! and the per-segment checksum seed.
//!
//! Format 2 (written by this build) makes segment files reusable: every record's checksum is
//! seeded with the segment's sequence number, so a record left over from a file's earlier
//! life (another sequence number) never verifies. Format 1 segments (unseeded, never
//! recycled) are still read and appended to.

use std::path::Path;

use crate::error::{Error, Result};

pub const SEGMENT_MAGIC: [u8; 8] = *b"TALLYWAL";
/// Highest segment format version this build reads and the one it writes.
pub const SEGMENT_FORMAT_VERSION: u32 = 2;
/// Header: magic 8 | version u32 | flags u32 | seq u64 | crc32c u32 | pad u32.
pub const SEGMENT_HEADER_LEN: usize = 32;

/// Flag: the file is a recycled segment, so bytes after the end of its log may be stale
/// records of an earlier life instead of zeros (format 2 only).
const FLAG_RECYCLED: u32 = 1;

const SEGMENT_SUFFIX: &str = ".wal";
/// Segments are built under this suffix and renamed once their header is durable.
pub const TMP_SUFFIX: &str = ".tmp";
/// Released segments kept for reuse; never read as part of the log.
const SPARE_SUFFIX: &str = ".spare";

pub fn segment_name(seq: u64) -> String {
    format!("{seq:016x}{SEGMENT_SUFFIX}")
}

/// Sequence number of a finished segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    parse_hex_name(name, SEGMENT_SUFFIX)
}

/// Name of a released segment kept for reuse; `seq` is the one it had in the log.
pub fn spare_name(seq: u64) -> String {
    format!("{seq:016x}{SPARE_SUFFIX}")
}

pub fn parse_spare_name(name: &str) -> Option<u64> {
    parse_hex_name(name, SPARE_SUFFIX)
}

fn parse_hex_name(name: &str, suffix: &str) -> Option<u64> {
    let hex = name.strip_suffix(suffix)?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// What a valid header says about how to read the segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Initial CRC value of every record in the segment.
    pub seed: u32,
    /// Bytes after the end of the log may be nonzero leftovers of an earlier life.
    pub recycled: bool,
    /// The file may be reused once released: format 2. A format-1 file's records are
    /// unseeded, which equals the seed of one sequence number, so it is never reused.
    pub reusable: bool,
}

/// The checksum seed of format-2 segment `seq`. Format 1 used none (seed 0).
///
/// A stale record never verifies in a later life of its file, whatever its bytes: CRC-32C
/// is affine in its initial value, so one frame's checksums under two seeds differ by an
/// invertible linear map of the seeds' difference (nonzero), and the seeds of any two
/// sequence numbers below 2^32 differ (CRC-32C catches every burst of up to 32 bits).
/// Format-1 files (unseeded, i.e. seed 0, which one such number has) are never reused.
pub fn record_seed(seq: u64) -> u32 {
    crc32c::crc32c(&seq.to_le_bytes())
}

pub fn encode_header(seq: u64, recycled: bool) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&SEGMENT_FORMAT_VERSION.to_le_bytes());
    let flags = if recycled { FLAG_RECYCLED } else { 0 };
    h[12..16].copy_from_slice(&flags.to_le_bytes());
    h[16..24].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Validates a segment header. The version is checked before the checksum so a newer
/// layout (which may checksum differently) is reported as such, not as corruption.
pub fn check_header(path: &Path, buf: &[u8], expected_seq: u64) -> Result<Header> {
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
    let flags = u32::from_le_bytes(h[12..16].try_into().unwrap());
    let known_flags = if version >= 2 { FLAG_RECYCLED } else { 0 };
    if version == 0 || flags & !known_flags != 0 || h[28..32] != [0; 4] {
        return Err(corrupt(8, format!("invalid segment header (version {version}, flags {flags:#x})")));
    }
    let seq = u64::from_le_bytes(h[16..24].try_into().unwrap());
    if seq != expected_seq {
        return Err(corrupt(16, format!("header says segment {seq}, file name says {expected_seq}")));
    }
    let seed = if version >= 2 { record_seed(seq) } else { 0 };
    Ok(Header { seed, recycled: flags & FLAG_RECYCLED != 0, reusable: version >= 2 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(parse_segment_name(&segment_name(0xabc)), Some(0xabc));
        assert_eq!(parse_segment_name("0000000000000001.wal.tmp"), None);
        assert_eq!(parse_segment_name(&spare_name(1)), None);
        assert_eq!(parse_spare_name(&spare_name(0xabc)), Some(0xabc));
        assert_eq!(parse_segment_name("LOCK"), None);
    }

    #[test]
    fn header_checks() {
        let p = Path::new("x.wal");
        let h = encode_header(3, false);
        assert_eq!(check_header(p, &h, 3).unwrap(), Header { seed: record_seed(3), recycled: false, reusable: true });
        assert!(check_header(p, &encode_header(3, true), 3).unwrap().recycled);
        assert!(matches!(check_header(p, &h, 4), Err(Error::Corrupt { .. })));
        let mut newer = h;
        newer[8] = 9;
        assert!(matches!(check_header(p, &newer, 3), Err(Error::NewerFormat { found: 9, .. })));
        assert_ne!(record_seed(3), record_seed(4));
    }

    #[test]
    fn a_frame_checks_differently_under_every_other_seed() {
        // The difference of two seeded checksums of the same bytes does not depend on the
        // bytes: so no frame of one segment verifies in another.
        let frames: [&[u8]; 3] = [b"", b"some frame bytes", &[0xa5; 4000]];
        for (a, b) in [(1u64, 2u64), (7, 1 << 20), (0xffff_fffe, 3)] {
            let (sa, sb) = (record_seed(a), record_seed(b));
            let diffs: Vec<u32> =
                frames.iter().map(|f| crc32c::crc32c_append(sa, f) ^ crc32c::crc32c_append(sb, f)).collect();
            assert!(diffs.iter().all(|&d| d != 0), "{a} vs {b}");
            assert_eq!(diffs[0] == 0, sa == sb);
        }
    }

    #[test]
    fn format_1_headers_are_unseeded_and_have_no_flags() {
        let p = Path::new("x.wal");
        let mut v1 = encode_header(5, true);
        v1[8..12].copy_from_slice(&1u32.to_le_bytes());
        let reseal = |h: &mut [u8; SEGMENT_HEADER_LEN]| {
            let crc = crc32c::crc32c(&h[0..24]);
            h[24..28].copy_from_slice(&crc.to_le_bytes());
        };
        reseal(&mut v1);
        assert!(matches!(check_header(p, &v1, 5), Err(Error::Corrupt { .. })), "format 1 has no flags");
        v1[12..16].fill(0);
        reseal(&mut v1);
        assert_eq!(check_header(p, &v1, 5).unwrap(), Header { seed: 0, recycled: false, reusable: false });
    }
}
