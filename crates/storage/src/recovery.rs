//! Startup: scan segments in order, rebuild the index, repair a torn tail, refuse corruption.
//!
//! The rule that separates a crash from corruption: every append is one record followed by
//! fdatasync, and nothing is written after a record until it is durable. So a crash can only
//! damage the last record of the last segment. A bad record with a valid one anywhere after
//! it (or in a later segment) cannot come from a crash and stops startup.
//!
//! A recycled segment holds leftovers of its earlier life after the end of its log. They
//! never verify (their checksums use another seed), and every write is followed by a zero
//! trailer, so the log's end still reads as zeros and a torn last record is still detected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::error::{Error, IoContext, Result};
use crate::fs::{AlignedBuf, FileSystem, StorageFile};
use crate::log_index::{EntryMeta, LogIndex};
use crate::pace::Pace;
use crate::record::{self, Decoded, Marker, RecordType, RECORD_ALIGN};
use crate::segment::{self, Header, SEGMENT_HEADER_LEN, TMP_SUFFIX};
use crate::snapshot;
use crate::types::{HardState, SnapshotMeta};

/// A segment file kept open for reads of old entries and, if last, for appends.
pub(crate) struct Segment<File> {
    pub path: PathBuf,
    pub file: File,
    /// Checksum seed of its records.
    pub seed: u32,
    /// May become a spare when released (see `segment::Header::reusable`).
    pub reusable: bool,
}

/// A released segment file kept for reuse; its contents are dead.
pub(crate) struct Spare<File> {
    pub path: PathBuf,
    pub file: File,
}

/// A torn record at the end of the log that recovery cut off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub path: PathBuf,
    /// Where the log now ends; bytes from here on were zeroed.
    pub offset: u64,
    pub reason: String,
}

pub(crate) struct Replayed<File> {
    pub segments: BTreeMap<u64, Segment<File>>,
    /// Spare files, oldest first.
    pub spares: Vec<Spare<File>>,
    /// Append position in the last segment and that file's length.
    pub write_offset: u64,
    pub active_len: u64,
    pub log: LogIndex,
    pub hard_state: HardState,
    pub snapshot: Option<SnapshotMeta>,
    pub torn_tail: Option<TornTail>,
    /// A snapshot that became durable without its WAL marker; the marker must be written
    /// before any new entry, or the next replay would see a gap.
    pub missing_marker: Option<Marker>,
}

/// Replay state while scanning segments.
struct State {
    log: LogIndex,
    hard_state: HardState,
    snapshot_marker: Option<(u64, u64)>,
    /// True while replay is inexact: older segments were released, so entries and markers
    /// before the compaction that released them may refer to entries we cannot see.
    base_guessed: bool,
    /// Sequence number of the oldest segment on disk.
    first_seq: u64,
}

pub(crate) fn replay<F: FileSystem>(fs: &F, dir: &Path, cache_bytes_max: usize) -> Result<Replayed<F::File>> {
    let names = fs.list(dir).ctx(|| format!("listing {}", dir.display()))?;
    let mut seqs = Vec::new();
    let mut snaps = Vec::new();
    let mut spare_seqs = Vec::new();
    for name in names {
        if name.ends_with(TMP_SUFFIX) {
            // Never renamed into place, so never acknowledged: safe to drop.
            let p = dir.join(&name);
            fs.remove_file(&p).ctx(|| format!("removing leftover {}", p.display()))?;
        } else if let Some(seq) = segment::parse_segment_name(&name) {
            seqs.push(seq);
        } else if let Some(s) = snapshot::parse_snapshot_name(&name) {
            snaps.push(s);
        } else if let Some(seq) = segment::parse_spare_name(&name) {
            spare_seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    snaps.sort_unstable();
    spare_seqs.sort_unstable();
    let mut spares = Vec::new();
    for seq in spare_seqs {
        let path = dir.join(segment::spare_name(seq));
        let file = fs.open(&path, false).ctx(|| format!("opening spare segment {}", path.display()))?;
        spares.push(Spare { path, file });
    }

    let mut st = State {
        log: LogIndex::new(cache_bytes_max),
        hard_state: HardState::default(),
        snapshot_marker: None,
        base_guessed: seqs.first().is_some_and(|&s| s != 1),
        first_seq: seqs.first().copied().unwrap_or(1),
    };
    let mut segments = BTreeMap::new();
    let mut write_offset = 0;
    let mut active_len = 0;
    let mut torn_tail = None;
    for (i, &seq) in seqs.iter().enumerate() {
        let path = dir.join(segment::segment_name(seq));
        if i > 0 && seqs[i - 1] + 1 != seq {
            return Err(Error::Corrupt { path, offset: 0, reason: format!("segment {} is missing", seqs[i - 1] + 1) });
        }
        let what = || format!("reading segment {}", path.display());
        let file = fs.open(&path, false).ctx(what)?;
        let len = file.size().ctx(what)?;
        let mut buf = vec![0u8; usize::try_from(len).expect("segment fits in memory")];
        file.read_exact_at(&mut buf, 0).ctx(what)?;
        let header = segment::check_header(&path, &buf, seq)?;
        let is_last = i + 1 == seqs.len();
        let (end, torn) = scan_segment(&path, &buf, seq, header, is_last, &mut st)?;
        if let Some(reason) = torn {
            // Zero the whole tail so no torn bytes remain that a later scan could mistake
            // for records; writing (not truncating) keeps the blocks allocated.
            let what = || format!("zeroing torn tail of {}", path.display());
            write_zeros(&file, end as u64, len, Pace::Full).ctx(what)?;
            file.sync_data().ctx(what)?;
            // Reported to the caller (`Recovered::torn_tail`), which logs it.
            torn_tail = Some(TornTail { path: path.clone(), offset: end as u64, reason: reason.to_owned() });
        }
        write_offset = end as u64;
        active_len = len;
        segments.insert(seq, Segment { path, file, seed: header.seed, reusable: header.reusable });
    }
    if st.base_guessed {
        return Err(Error::Corrupt {
            path: dir.join(segment::segment_name(seqs[0])),
            offset: 0,
            reason: "older segments are missing and no compaction marker explains it".into(),
        });
    }

    let (snapshot, missing_marker) = recover_snapshot(fs, dir, &snaps, &mut st)?;
    Ok(Replayed {
        segments,
        spares,
        write_offset,
        active_len,
        log: st.log,
        hard_state: st.hard_state,
        snapshot,
        torn_tail,
        missing_marker,
    })
}

/// Writes zeros over `[from, to)` at `pace`.
pub(crate) fn write_zeros(file: &impl StorageFile, from: u64, to: u64, pace: Pace) -> std::io::Result<()> {
    const CHUNK: u64 = 1 << 20;
    // Aligned, for an unbuffered file (whose `from` and `to` are then whole blocks).
    let mut zeros = AlignedBuf::new(CHUNK.min(to.saturating_sub(from)) as usize);
    let zeros = zeros.bytes();
    let mut at = from;
    while at < to {
        let n = CHUNK.min(to - at) as usize;
        file.write_all_at_paced(&zeros[..n], at, pace)?;
        at += n as u64;
    }
    Ok(())
}

/// Replays one segment; returns where its records end and, for a torn tail, why.
fn scan_segment(
    path: &Path,
    buf: &[u8],
    seq: u64,
    header: Header,
    is_last: bool,
    st: &mut State,
) -> Result<(usize, Option<&'static str>)> {
    let mut off = SEGMENT_HEADER_LEN;
    loop {
        let reason = match record::decode(buf, off, header.seed) {
            Decoded::Record { kind, body, body_offset, next } => {
                apply(st, kind, body, body_offset, seq).map_err(|reason| Error::Corrupt {
                    path: path.to_owned(),
                    offset: off as u64,
                    reason,
                })?;
                off = next;
                continue;
            }
            Decoded::Zero => None,
            Decoded::Invalid(reason) => Some(reason),
        };
        if let Some(valid) = record::find_valid_record(buf, off + RECORD_ALIGN, header.seed) {
            return Err(Error::Corrupt {
                path: path.to_owned(),
                offset: off as u64,
                reason: format!(
                    "{} at offset {off}, but a valid record follows at offset {valid}",
                    reason.unwrap_or("zeroed record")
                ),
            });
        }
        if reason.is_none() && header.recycled {
            // The trailer of the last write: what follows is the earlier life's leftovers.
            return Ok((off, None));
        }
        let garbage = buf.get(off..).is_some_and(|t| t.iter().any(|&b| b != 0));
        if !garbage {
            return Ok((off, None));
        }
        if !is_last {
            // Sealed segments were fully synced before the next one was created.
            return Err(Error::Corrupt {
                path: path.to_owned(),
                offset: off as u64,
                reason: format!("{} in a sealed segment", reason.unwrap_or("stray bytes")),
            });
        }
        return Ok((off, Some(reason.unwrap_or("partial record header"))));
    }
}

fn apply(st: &mut State, kind: RecordType, body: &[u8], body_offset: usize, seq: u64) -> Result<(), String> {
    match kind {
        RecordType::Batch => {
            let batch = record::decode_batch(body)?;
            if let Some(first) = batch.entries.first() {
                let first = first.index;
                for (i, e) in batch.entries.iter().enumerate() {
                    if e.index != first + i as u64 {
                        return Err(format!("entry {} out of order in batch starting at {first}", e.index));
                    }
                }
                let (base, _) = st.log.base();
                let last = st.log.last_index();
                if st.base_guessed && (st.log.is_empty() || first <= base || first > last + 1) {
                    // The entries before `first` live in released segments (or are dead).
                    st.log.reset(first - 1, 0);
                } else if first <= base {
                    return Err(format!("entry {first} is at or below the compacted index {base}"));
                } else if first > last + 1 {
                    return Err(format!("gap: entry {first} follows last index {last}"));
                } else {
                    st.log.truncate_from(first);
                }
                for e in &batch.entries {
                    let start = body_offset + e.data_offset;
                    st.log.push(EntryMeta {
                        term: e.term,
                        kind: e.kind,
                        seg: seq,
                        offset: start as u64,
                        len: e.data_len,
                        crc: e.data_crc,
                        data: Some(Bytes::copy_from_slice(&body[e.data_offset..e.data_offset + e.data_len as usize])),
                    });
                }
            }
            if let Some(hs) = batch.hard_state {
                st.hard_state = hs;
            }
        }
        RecordType::Snapshot => {
            let m = record::decode_marker(body)?;
            st.snapshot_marker = Some((m.index, m.term));
            if m.reset {
                // The log was discarded at this point, so from here on replay is exact.
                st.log.reset(m.index, m.term);
                st.base_guessed = false;
            } else if !st.base_guessed && st.log.term(m.index) != Some(m.term) {
                return Err(format!(
                    "snapshot marker ({}, {}) disagrees with the log, which has term {:?} there",
                    m.index,
                    m.term,
                    st.log.term(m.index)
                ));
            }
        }
        RecordType::Compact => {
            let m = record::decode_marker(body)?;
            if st.base_guessed && m.keep_from >= st.first_seq {
                // This compaction released the missing segments: every live entry above
                // its index is in the segments replayed so far or later, so the log is exact.
                st.base_guessed = false;
                let (base, _) = st.log.base();
                if !st.log.is_empty() && base > m.index {
                    return Err(format!("compaction to {} but entries after it are missing", m.index));
                }
                st.log.compact_to(m.index, m.term);
                if st.log.is_empty() {
                    st.log.reset(m.index, m.term);
                }
            } else {
                st.log.compact_to(m.index, m.term);
            }
        }
    }
    Ok(())
}

/// Raft's snapshot rule: keep the log only if it agrees with the snapshot at its index.
/// Returns whether the log was discarded.
pub(crate) fn apply_snapshot(log: &mut LogIndex, index: u64, term: u64) -> bool {
    let reset = log.term(index) != Some(term);
    if reset {
        log.reset(index, term);
    }
    reset
}

/// Picks the newest snapshot, checks it against the WAL, removes older ones.
fn recover_snapshot<F: FileSystem>(
    fs: &F,
    dir: &Path,
    snaps: &[(u64, u64)],
    st: &mut State,
) -> Result<(Option<SnapshotMeta>, Option<Marker>)> {
    let newest = match snaps.last() {
        Some(&(index, term)) => {
            let path = dir.join(snapshot::snapshot_name(index, term));
            Some(snapshot::read_snapshot(fs, &path)?.meta)
        }
        None => None,
    };
    let newest_index = newest.as_ref().map_or(0, |m| m.index);
    let (base, _) = st.log.base();
    let marker = st.snapshot_marker.map_or(0, |(i, _)| i);
    if marker > newest_index || base > newest_index {
        return Err(Error::Corrupt {
            path: dir.to_owned(),
            offset: 0,
            reason: format!(
                "the log is compacted to {base} / references a snapshot at {marker}, but the newest snapshot file is at {newest_index}"
            ),
        });
    }
    let mut missing = None;
    if let Some(meta) = &newest {
        if meta.index > marker {
            // Snapshot became durable but the crash came before its WAL marker.
            let reset = apply_snapshot(&mut st.log, meta.index, meta.term);
            missing = Some(Marker { index: meta.index, term: meta.term, reset, keep_from: 0 });
        }
        for &(index, term) in &snaps[..snaps.len() - 1] {
            let p = dir.join(snapshot::snapshot_name(index, term));
            fs.remove_file(&p).ctx(|| format!("removing old snapshot {}", p.display()))?;
        }
    }
    Ok((newest, missing))
}
