//! Startup: scan segments in order, rebuild the index, repair a torn tail, refuse corruption.
//!
//! The rule that separates a crash from corruption: every append is one record followed by
//! fdatasync, and nothing is written after a record until it is durable. So a crash can only
//! damage the last record of the last segment. A bad record with a valid one anywhere after
//! it (or in a later segment) cannot come from a crash and stops startup.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::error::{Error, IoContext, Result};
use crate::fs::{FileSystem, StorageFile};
use crate::log_index::{EntryMeta, LogIndex};
use crate::record::{self, Decoded, RecordType, RECORD_ALIGN};
use crate::segment::{self, SEGMENT_HEADER_LEN, TMP_SUFFIX};
use crate::snapshot;
use crate::types::{HardState, SnapshotMeta};

/// A segment file kept open for reads of old entries and, if last, for appends.
pub(crate) struct Segment<File> {
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
    /// Append position in the last segment and that file's length.
    pub write_offset: u64,
    pub active_len: u64,
    pub log: LogIndex,
    pub hard_state: HardState,
    pub snapshot: Option<SnapshotMeta>,
    pub torn_tail: Option<TornTail>,
}

/// Replay state while scanning segments.
struct State {
    log: LogIndex,
    hard_state: HardState,
    snapshot_marker: Option<(u64, u64)>,
    /// True while the log base is only inferred (older segments were compacted away and
    /// the compaction marker has not been replayed yet).
    base_guessed: bool,
}

pub(crate) fn replay<F: FileSystem>(
    fs: &F,
    dir: &Path,
    cache_bytes_max: usize,
) -> Result<Replayed<F::File>> {
    let names = fs.list(dir).ctx(|| format!("listing {}", dir.display()))?;
    let mut seqs = Vec::new();
    let mut snaps = Vec::new();
    for name in names {
        if name.ends_with(TMP_SUFFIX) {
            // Never renamed into place, so never acknowledged: safe to drop.
            let p = dir.join(&name);
            fs.remove_file(&p)
                .ctx(|| format!("removing leftover {}", p.display()))?;
        } else if let Some(seq) = segment::parse_segment_name(&name) {
            seqs.push(seq);
        } else if let Some(s) = snapshot::parse_snapshot_name(&name) {
            snaps.push(s);
        }
    }
    seqs.sort_unstable();
    snaps.sort_unstable();

    let mut st = State {
        log: LogIndex::new(cache_bytes_max),
        hard_state: HardState::default(),
        snapshot_marker: None,
        base_guessed: seqs.first().is_some_and(|&s| s != 1),
    };
    let mut segments = BTreeMap::new();
    let mut write_offset = 0;
    let mut active_len = 0;
    let mut torn_tail = None;
    for (i, &seq) in seqs.iter().enumerate() {
        let path = dir.join(segment::segment_name(seq));
        if i > 0 && seqs[i - 1] + 1 != seq {
            return Err(Error::Corrupt {
                path,
                offset: 0,
                reason: format!("segment {} is missing", seqs[i - 1] + 1),
            });
        }
        let what = || format!("reading segment {}", path.display());
        let file = fs.open(&path, false).ctx(what)?;
        let len = file.size().ctx(what)?;
        let mut buf = vec![0u8; usize::try_from(len).expect("segment fits in memory")];
        file.read_exact_at(&mut buf, 0).ctx(what)?;
        segment::check_header(&path, &buf, seq)?;
        let is_last = i + 1 == seqs.len();
        let (end, torn) = scan_segment(&path, &buf, seq, is_last, &mut st)?;
        if let Some(reason) = torn {
            // Zero the tail by shrinking and regrowing: cheap, and leaves no stale bytes
            // that a later scan could mistake for records.
            let what = || format!("truncating torn tail of {}", path.display());
            file.set_len(end as u64).ctx(what)?;
            file.set_len(len).ctx(what)?;
            file.sync_data().ctx(what)?;
            eprintln!(
                "tally-storage: truncated torn record at the end of {} at byte offset {end} ({reason})",
                path.display()
            );
            torn_tail = Some(TornTail {
                path: path.clone(),
                offset: end as u64,
                reason: reason.to_owned(),
            });
        }
        write_offset = end as u64;
        active_len = len;
        segments.insert(seq, Segment { path, file });
    }
    if st.base_guessed {
        return Err(Error::Corrupt {
            path: dir.join(segment::segment_name(seqs[0])),
            offset: 0,
            reason: "older segments are missing and no compaction marker explains it".into(),
        });
    }

    let snapshot = recover_snapshot(fs, dir, &snaps, &mut st)?;
    Ok(Replayed {
        segments,
        write_offset,
        active_len,
        log: st.log,
        hard_state: st.hard_state,
        snapshot,
        torn_tail,
    })
}

/// Replays one segment; returns where its records end and, for a torn tail, why.
fn scan_segment(
    path: &Path,
    buf: &[u8],
    seq: u64,
    is_last: bool,
    st: &mut State,
) -> Result<(usize, Option<&'static str>)> {
    let mut off = SEGMENT_HEADER_LEN;
    loop {
        let reason = match record::decode(buf, off) {
            Decoded::Record {
                kind,
                body,
                body_offset,
                next,
            } => {
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
        if let Some(valid) = record::find_valid_record(buf, off + RECORD_ALIGN) {
            return Err(Error::Corrupt {
                path: path.to_owned(),
                offset: off as u64,
                reason: format!(
                    "{} at offset {off}, but a valid record follows at offset {valid}",
                    reason.unwrap_or("zeroed record")
                ),
            });
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

fn apply(
    st: &mut State,
    kind: RecordType,
    body: &[u8],
    body_offset: usize,
    seq: u64,
) -> Result<(), String> {
    match kind {
        RecordType::Batch => {
            let batch = record::decode_batch(body)?;
            if let Some(first) = batch.entries.first() {
                let first = first.index;
                for (i, e) in batch.entries.iter().enumerate() {
                    if e.index != first + i as u64 {
                        return Err(format!(
                            "entry {} out of order in batch starting at {first}",
                            e.index
                        ));
                    }
                }
                let (base, _) = st.log.base();
                if st.base_guessed && (st.log.is_empty() || first <= base) {
                    st.log.reset(first - 1, 0);
                } else if first <= base {
                    return Err(format!(
                        "entry {first} is at or below the compacted index {base}"
                    ));
                } else if first > st.log.last_index() + 1 {
                    return Err(format!(
                        "gap: entry {first} follows last index {}",
                        st.log.last_index()
                    ));
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
                        data: Some(Bytes::copy_from_slice(
                            &body[e.data_offset..e.data_offset + e.data_len as usize],
                        )),
                    });
                }
            }
            if let Some(hs) = batch.hard_state {
                st.hard_state = hs;
            }
        }
        RecordType::Snapshot => {
            let (index, term) = record::decode_marker(body)?;
            st.snapshot_marker = Some((index, term));
            apply_snapshot(&mut st.log, index, term);
        }
        RecordType::Compact => {
            let (index, term) = record::decode_marker(body)?;
            let (base, _) = st.log.base();
            if st.base_guessed && index < base {
                return Err(format!(
                    "compaction to {index} but entries after it are missing"
                ));
            }
            st.base_guessed = false;
            st.log.compact_to(index, term);
        }
    }
    Ok(())
}

/// Raft's snapshot rule: keep the log only if it agrees with the snapshot at its index.
pub(crate) fn apply_snapshot(log: &mut LogIndex, index: u64, term: u64) {
    if log.term(index) != Some(term) && index > log.base().0 {
        log.reset(index, term);
    }
}

/// Picks the newest snapshot, checks it against the WAL, removes older ones.
fn recover_snapshot<F: FileSystem>(
    fs: &F,
    dir: &Path,
    snaps: &[(u64, u64)],
    st: &mut State,
) -> Result<Option<SnapshotMeta>> {
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
    if let Some(meta) = &newest {
        if meta.index > marker {
            // Snapshot became durable but the crash came before its WAL marker.
            apply_snapshot(&mut st.log, meta.index, meta.term);
        }
        for &(index, term) in &snaps[..snaps.len() - 1] {
            let p = dir.join(snapshot::snapshot_name(index, term));
            fs.remove_file(&p)
                .ctx(|| format!("removing old snapshot {}", p.display()))?;
        }
    }
    Ok(newest)
}
