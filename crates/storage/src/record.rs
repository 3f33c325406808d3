//! Record framing inside a segment and the bodies of each record type.
//!
//! Frame: `crc32c u32 | body_len u32 | type u8 | 3 zero bytes | body | zero padding to 8`.
//! The CRC covers length, type, reserved bytes and body, so a damaged length is caught too.
//! It starts from the segment's seed (see `segment::record_seed`), so a record only
//! verifies in the segment it was written for. Records start 8-byte aligned, which lets
//! recovery scan forward for valid records after a bad one (to tell a torn tail from
//! corruption in the middle).

use crate::types::{HardState, LogEntry};

/// Bytes of the frame before the body.
pub const RECORD_HEADER_LEN: usize = 12;
/// Records start at multiples of this.
pub const RECORD_ALIGN: usize = 8;
/// Zeros written after every record (when the segment has room): the next record's header
/// position then reads as the end of the log even if it held a stale record before.
pub const TRAILER_LEN: usize = 16;

/// What a record holds. One `append` writes exactly one `Batch` record, so a batch is
/// atomic under a crash no matter how the disk reorders the sectors of that write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordType {
    /// Log entries and/or a hard state (term, vote, commit).
    Batch = 1,
    /// A durable snapshot exists at (index, term); log entries that disagree are void.
    Snapshot = 2,
    /// Entries at or below (index) are released; `term` is the term at `index`.
    Compact = 3,
}

impl RecordType {
    fn from_u8(v: u8) -> Option<RecordType> {
        match v {
            1 => Some(RecordType::Batch),
            2 => Some(RecordType::Snapshot),
            3 => Some(RecordType::Compact),
            _ => None,
        }
    }
}

pub fn align_up(n: usize) -> usize {
    n.div_ceil(RECORD_ALIGN) * RECORD_ALIGN
}

/// Starts a record in `out`; returns the frame start to pass to [`finish_record`].
pub fn begin_record(out: &mut Vec<u8>) -> usize {
    debug_assert_eq!(out.len() % RECORD_ALIGN, 0, "records must start aligned");
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_HEADER_LEN]);
    start
}

/// Fills in the header of the record begun at `start` and pads it. The checksum is left
/// to [`seal`]: the writer knows the segment, hence the seed, only after encoding.
pub fn finish_record(out: &mut Vec<u8>, start: usize, kind: RecordType) {
    let body_len = out.len() - start - RECORD_HEADER_LEN;
    let body_len = u32::try_from(body_len).expect("record body length checked by caller");
    out[start + 4..start + 8].copy_from_slice(&body_len.to_le_bytes());
    out[start + 8] = kind as u8;
    out.resize(align_up(out.len()), 0);
}

/// Sets the checksum of the finished record at the start of `rec`, seeded with `seed`.
pub fn seal(rec: &mut [u8], seed: u32) {
    let body_len = u32::from_le_bytes(rec[4..8].try_into().unwrap()) as usize;
    let crc = crc32c::crc32c_append(seed, &rec[4..RECORD_HEADER_LEN + body_len]);
    rec[0..4].copy_from_slice(&crc.to_le_bytes());
}

/// Result of looking for a record at one offset.
#[derive(Debug)]
pub enum Decoded<'a> {
    Record {
        kind: RecordType,
        body: &'a [u8],
        /// Offset of the body within the buffer.
        body_offset: usize,
        next: usize,
    },
    /// An all-zero header: preallocated space, i.e. the end of the written log.
    Zero,
    /// Anything else: torn write or corruption; the caller decides which.
    Invalid(&'static str),
}

/// Decodes the frame at `offset` in `buf` (a whole segment whose records use `seed`).
/// Never panics on any input.
pub fn decode(buf: &[u8], offset: usize, seed: u32) -> Decoded<'_> {
    let Some(header) = buf.get(offset..offset + RECORD_HEADER_LEN) else {
        return if buf[offset.min(buf.len())..].iter().all(|&b| b == 0) {
            Decoded::Zero
        } else {
            Decoded::Invalid("truncated record header")
        };
    };
    if header.iter().all(|&b| b == 0) {
        return Decoded::Zero;
    }
    let crc = u32::from_le_bytes(header[0..4].try_into().unwrap());
    let body_len = u32::from_le_bytes(header[4..8].try_into().unwrap()) as usize;
    let Some(kind) = RecordType::from_u8(header[8]) else {
        return Decoded::Invalid("unknown record type");
    };
    if header[9..12] != [0, 0, 0] {
        return Decoded::Invalid("nonzero reserved bytes");
    }
    let body_offset = offset + RECORD_HEADER_LEN;
    if body_len > buf.len() - body_offset {
        return Decoded::Invalid("record length runs past end of file");
    }
    let end = body_offset + body_len;
    if crc32c::crc32c_append(seed, &buf[offset + 4..end]) != crc {
        return Decoded::Invalid("checksum mismatch");
    }
    Decoded::Record { kind, body: &buf[body_offset..end], body_offset, next: align_up(end) }
}

/// First offset at or after `from` (aligned) holding a record with a valid checksum.
pub fn find_valid_record(buf: &[u8], from: usize, seed: u32) -> Option<usize> {
    let mut off = align_up(from);
    while off + RECORD_HEADER_LEN <= buf.len() {
        // Cheap rejects first: most candidates are zeros or payload bytes.
        if RecordType::from_u8(buf[off + 8]).is_some() {
            if let Decoded::Record { .. } = decode(buf, off, seed) {
                return Some(off);
            }
        }
        off += RECORD_ALIGN;
    }
    None
}

// ---- bodies ----

const FLAG_HARD_STATE: u8 = 1;
/// Bytes of one entry's header inside a batch body.
pub const ENTRY_HEADER_LEN: usize = 8 + 8 + 1 + 4 + 4;
const HARD_STATE_LEN: usize = 24;

/// Exact encoded body size of a batch, so the writer can decide on a segment roll first.
pub fn batch_body_len(with_hard_state: bool, entries: &[LogEntry]) -> usize {
    let hs = if with_hard_state { HARD_STATE_LEN } else { 0 };
    1 + hs + 4 + entries.iter().map(|e| ENTRY_HEADER_LEN + e.data.len()).sum::<usize>()
}

/// Appends a batch body; pushes each entry's data offset (relative to `out` start) and
/// data checksum to `data`.
pub fn encode_batch(
    out: &mut Vec<u8>,
    hard_state: Option<&HardState>,
    entries: &[LogEntry],
    data: &mut Vec<(usize, u32)>,
) {
    out.push(if hard_state.is_some() { FLAG_HARD_STATE } else { 0 });
    if let Some(hs) = hard_state {
        out.extend_from_slice(&hs.term.to_le_bytes());
        out.extend_from_slice(&hs.vote.to_le_bytes());
        out.extend_from_slice(&hs.commit.to_le_bytes());
    }
    let count = u32::try_from(entries.len()).expect("entry count checked by caller");
    out.extend_from_slice(&count.to_le_bytes());
    for e in entries {
        out.extend_from_slice(&e.index.to_le_bytes());
        out.extend_from_slice(&e.term.to_le_bytes());
        out.push(e.kind);
        let crc = crc32c::crc32c(&e.data);
        out.extend_from_slice(&crc.to_le_bytes());
        let len = u32::try_from(e.data.len()).expect("entry size checked by caller");
        out.extend_from_slice(&len.to_le_bytes());
        data.push((out.len(), crc));
        out.extend_from_slice(&e.data);
    }
}

/// One entry as located inside a batch body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryView {
    pub index: u64,
    pub term: u64,
    pub kind: u8,
    pub data_crc: u32,
    /// Offset of the data within the body.
    pub data_offset: usize,
    pub data_len: u32,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct BatchView {
    pub hard_state: Option<HardState>,
    pub entries: Vec<EntryView>,
}

/// Bounds-checked little-endian reader; every read can fail, none can panic.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], &'static str> {
        let end = self.pos.checked_add(n).ok_or("length overflow")?;
        let s = self.buf.get(self.pos..end).ok_or("body shorter than its fields")?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
}

pub fn decode_batch(body: &[u8]) -> Result<BatchView, &'static str> {
    let mut r = Reader { buf: body, pos: 0 };
    let flags = r.u8()?;
    if flags & !FLAG_HARD_STATE != 0 {
        return Err("unknown batch flags");
    }
    let hard_state = if flags & FLAG_HARD_STATE != 0 {
        Some(HardState { term: r.u64()?, vote: r.u64()?, commit: r.u64()? })
    } else {
        None
    };
    let count = r.u32()? as usize;
    // Bound the allocation by what the body can hold, not by the claimed count.
    let mut entries = Vec::with_capacity(count.min(body.len() / ENTRY_HEADER_LEN));
    for _ in 0..count {
        let index = r.u64()?;
        let term = r.u64()?;
        let kind = r.u8()?;
        let data_crc = r.u32()?;
        let data_len = r.u32()?;
        let data_offset = r.pos;
        let data = r.take(data_len as usize)?;
        if crc32c::crc32c(data) != data_crc {
            return Err("entry data checksum mismatch");
        }
        entries.push(EntryView { index, term, kind, data_crc, data_offset, data_len });
    }
    if r.pos != body.len() {
        return Err("trailing bytes after batch");
    }
    Ok(BatchView { hard_state, entries })
}

/// Body of a `Snapshot` or `Compact` marker. `reset` records whether the log was discarded
/// (snapshot disagreed with it), so replay follows the decision instead of re-deriving it
/// from entries that compaction may have deleted since.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker {
    pub index: u64,
    pub term: u64,
    pub reset: bool,
    /// Compact only: first segment still needed after it. Replay that starts at or before
    /// this segment is exact from this marker on.
    pub keep_from: u64,
}

pub fn encode_marker(out: &mut Vec<u8>, m: Marker) {
    out.extend_from_slice(&m.index.to_le_bytes());
    out.extend_from_slice(&m.term.to_le_bytes());
    out.push(u8::from(m.reset));
    out.extend_from_slice(&m.keep_from.to_le_bytes());
}

pub fn decode_marker(body: &[u8]) -> Result<Marker, &'static str> {
    let mut r = Reader { buf: body, pos: 0 };
    let (index, term) = (r.u64()?, r.u64()?);
    let reset = match r.u8()? {
        0 => false,
        1 => true,
        _ => return Err("bad marker flag"),
    };
    let keep_from = r.u64()?;
    if r.pos != body.len() {
        return Err("trailing bytes after marker");
    }
    Ok(Marker { index, term, reset, keep_from })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn entry(index: u64, data: &'static [u8]) -> LogEntry {
        LogEntry { index, term: 7, kind: 1, data: Bytes::from_static(data) }
    }

    #[test]
    fn batch_round_trips_and_size_is_exact() {
        let entries = [entry(5, b"hello"), entry(6, b"")];
        let hs = HardState { term: 7, vote: 2, commit: 5 };
        let mut out = Vec::new();
        let start = begin_record(&mut out);
        let mut offs = Vec::new();
        encode_batch(&mut out, Some(&hs), &entries, &mut offs);
        assert_eq!(out.len() - RECORD_HEADER_LEN, batch_body_len(true, &entries));
        finish_record(&mut out, start, RecordType::Batch);
        seal(&mut out, 7);
        assert_eq!(out.len() % RECORD_ALIGN, 0);
        let Decoded::Record { kind, body, next, .. } = decode(&out, 0, 7) else {
            panic!("record must decode");
        };
        assert_eq!((kind, next), (RecordType::Batch, out.len()));
        let view = decode_batch(body).unwrap();
        assert_eq!(view.hard_state, Some(hs));
        assert_eq!(view.entries.len(), 2);
        let e = view.entries[0];
        assert_eq!(&body[e.data_offset..e.data_offset + 5], b"hello");
        assert_eq!((e.data_offset + RECORD_HEADER_LEN, e.data_crc), offs[0]);
    }

    #[test]
    fn any_flipped_bit_is_detected() {
        let mut out = Vec::new();
        let start = begin_record(&mut out);
        encode_marker(&mut out, Marker { index: 9, term: 3, reset: true, keep_from: 4 });
        finish_record(&mut out, start, RecordType::Compact);
        seal(&mut out, 0);
        for i in 0..RECORD_HEADER_LEN + 16 {
            for bit in 0..8 {
                let mut bad = out.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    !matches!(decode(&bad, 0, 0), Decoded::Record { .. }),
                    "flip at byte {i} bit {bit} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn a_record_verifies_only_under_its_own_seed() {
        let mut out = Vec::new();
        let start = begin_record(&mut out);
        encode_marker(&mut out, Marker { index: 9, term: 3, reset: false, keep_from: 4 });
        finish_record(&mut out, start, RecordType::Compact);
        seal(&mut out, 0);
        assert!(matches!(decode(&out, 0, 0), Decoded::Record { .. }));
        for seed in [1, 0xdead_beef] {
            assert!(matches!(decode(&out, 0, seed), Decoded::Invalid(_)), "seed {seed}");
        }
        seal(&mut out, 0xdead_beef);
        assert!(matches!(decode(&out, 0, 0xdead_beef), Decoded::Record { .. }));
        assert!(matches!(decode(&out, 0, 0), Decoded::Invalid(_)));
        assert_eq!(find_valid_record(&out, 0, 0), None);
        assert_eq!(find_valid_record(&out, 0, 0xdead_beef), Some(0));
    }
}
