//! The write-ahead log: Ready-shaped appends with group commit, reads from the in-memory
//! index, snapshots and prefix release.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::append::BlockAppender;
use crate::error::{Error, IoContext, Result};
use crate::fs::{FileSystem, RealFs, StorageFile};
use crate::log_index::{EntryMeta, LogIndex};
use crate::pace::Pace;
use crate::prepare::{self, Prepare, Prepared};
use crate::record::{self, Marker, RecordType, RECORD_HEADER_LEN, TRAILER_LEN};
use crate::recovery::{self, Segment, Spare, TornTail};
use crate::segment::{self, SEGMENT_HEADER_LEN, TMP_SUFFIX};
use crate::snapshot;
use crate::types::{HardState, LogEntry, Snapshot, SnapshotMeta, WriteBatch};

/// Smallest allowed segment: header plus room for a few records.
pub const SEGMENT_SIZE_MIN: u64 = 4096;

/// Tuning knobs for [`Wal`].
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// Preallocated size of each segment file; a single record larger than this gets a
    /// segment of its own sized to fit. Multiple of 8, at least [`SEGMENT_SIZE_MIN`].
    pub segment_size: u64,
    /// Entry payload bytes kept in memory (newest first); older payloads are re-read from disk.
    pub cache_bytes_max: usize,
    /// Write zeros over a new segment instead of only setting its length. A sparse file
    /// makes every append allocate blocks, so its fdatasync must also commit file-system
    /// metadata (a journal commit on ext4); with the blocks written once up front, appends
    /// are plain overwrites. Costs one sequential write of `segment_size` per segment.
    pub zero_fill: bool,
    /// Segments released by [`Wal::compact`] kept as spare files and reused as the next
    /// segments: their blocks are already written, so they need no zero fill and appends
    /// stay overwrites. Each spare holds `segment_size` bytes of disk. 0 deletes them. The
    /// default, 8, keeps every segment a compaction of a few hundred MB of log releases, for
    /// the log to grow into again without zero-filling new files.
    pub spare_segments_max: usize,
    /// When to make a new segment file if no spare is left: ahead of time on a background
    /// thread (default), or at the roll, which then waits for it.
    pub prepare: Prepare,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size: 64 << 20,
            cache_bytes_max: 32 << 20,
            zero_fill: true,
            spare_segments_max: 8,
            prepare: Prepare::Background,
        }
    }
}

/// What was on disk when the WAL was opened.
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    pub hard_state: HardState,
    pub snapshot_meta: Option<SnapshotMeta>,
    /// All live entries, `first_index..=last_index` (see [`Wal::entries`] for ranged reads).
    pub entries: Vec<LogEntry>,
    /// Set when a torn record at the end of the log was cut off.
    pub torn_tail: Option<TornTail>,
}

/// A segmented write-ahead log over a data directory. See the crate docs for the
/// durability contract.
pub struct Wal<F: FileSystem = RealFs> {
    fs: F,
    dir: PathBuf,
    opts: WalOptions,
    segments: BTreeMap<u64, Segment<F::File>>,
    /// Released segment files of `segment_size` bytes awaiting reuse, in release order.
    /// Invariant: `spares.len() <= opts.spare_segments_max`.
    spares: Vec<Spare<F::File>>,
    /// The next segment file, made while no spare is left (unless `Prepare::AtRoll`).
    prepared: Option<Prepared<F::File>>,
    active: u64,
    /// Writes the active segment, and knows where its log ends (None only while the log has
    /// no segment yet).
    appender: Option<BlockAppender<F::File>>,
    log: LogIndex,
    hard_state: HardState,
    snapshot: Option<SnapshotMeta>,
    /// After a failed write or sync the page cache and disk may disagree; refuse further use.
    poisoned: bool,
    scratch: Vec<u8>,
    /// Per entry of the batch being written: data offset in `scratch` and data checksum.
    entry_data: Vec<(usize, u32)>,
    // Declared last so the lock is released after the files are closed.
    _lock: F::Lock,
}

impl Wal<RealFs> {
    /// Opens (or creates) the data directory `dir` on the real disk.
    pub fn open(dir: impl AsRef<Path>, opts: WalOptions) -> Result<(Wal<RealFs>, Recovered)> {
        Wal::open_with(RealFs, dir, opts)
    }
}

impl<F: FileSystem> Wal<F> {
    /// Opens `dir` through `fs`, locking it and running recovery.
    pub fn open_with(fs: F, dir: impl AsRef<Path>, opts: WalOptions) -> Result<(Wal<F>, Recovered)> {
        let dir = dir.as_ref().to_owned();
        if opts.segment_size < SEGMENT_SIZE_MIN || !opts.segment_size.is_multiple_of(8) {
            return Err(Error::InvalidOptions(format!(
                "segment_size {} must be a multiple of 8 and at least {SEGMENT_SIZE_MIN}",
                opts.segment_size
            )));
        }
        fs.create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
        let lock = fs
            .try_lock(&dir)
            .ctx(|| format!("locking {}", dir.display()))?
            .ok_or_else(|| Error::Locked { path: dir.clone() })?;
        let r = recovery::replay(&fs, &dir, opts.cache_bytes_max)?;
        let active = r.segments.keys().next_back().copied().unwrap_or(0);
        let mut wal = Wal {
            fs,
            dir,
            opts,
            segments: r.segments,
            spares: Vec::new(),
            prepared: None,
            active,
            appender: None,
            log: r.log,
            hard_state: r.hard_state,
            snapshot: r.snapshot,
            poisoned: false,
            scratch: Vec::new(),
            entry_data: Vec::new(),
            _lock: lock,
        };
        wal.adopt_spares(r.spares)?;
        if let Some(seg) = wal.segments.get(&active) {
            let what = || format!("opening {} to append", seg.path.display());
            let appender = BlockAppender::reopen(&wal.fs, &seg.path, &seg.file, r.active_len, r.write_offset);
            wal.appender = Some(appender.ctx(what)?);
        } else {
            wal.roll(0)?;
        }
        wal.prepare_next();
        if let Some(marker) = r.missing_marker {
            wal.append_marker(RecordType::Snapshot, marker)?;
        }
        let entries = wal.entries(wal.first_index(), wal.last_index() + 1)?;
        let recovered = Recovered {
            hard_state: wal.hard_state,
            snapshot_meta: wal.snapshot.clone(),
            entries,
            torn_tail: r.torn_tail,
        };
        Ok((wal, recovered))
    }

    /// Index of the first live entry (snapshot/compaction index + 1).
    pub fn first_index(&self) -> u64 {
        self.log.first_index()
    }

    /// Index of the last entry, or the compaction index if the log is empty.
    pub fn last_index(&self) -> u64 {
        self.log.last_index()
    }

    /// Term of the entry at `index`; also answers for `first_index() - 1`.
    pub fn term(&self, index: u64) -> Option<u64> {
        self.log.term(index)
    }

    /// The last durable hard state.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// Metadata of the newest durable snapshot.
    pub fn snapshot_meta(&self) -> Option<&SnapshotMeta> {
        self.snapshot.as_ref()
    }

    /// Payload bytes currently held in memory.
    pub fn cached_bytes(&self) -> usize {
        self.log.cached_bytes()
    }

    /// Entries `[lo, hi)`. Recent payloads come from memory, older ones from their segment.
    pub fn entries(&self, lo: u64, hi: u64) -> Result<Vec<LogEntry>> {
        let (first, last) = (self.first_index(), self.last_index());
        if lo > hi || lo < first || hi > last + 1 {
            return Err(Error::OutOfRange { lo, hi, first, last });
        }
        (lo..hi)
            .map(|index| {
                let m = self.log.get(index).expect("range checked above");
                let data = match &m.data {
                    Some(d) => d.clone(),
                    None => self.read_payload(m)?.into(),
                };
                Ok(LogEntry { index, term: m.term, kind: m.kind, data })
            })
            .collect()
    }

    fn read_payload(&self, m: &EntryMeta) -> Result<Vec<u8>> {
        let seg = self.segments.get(&m.seg).expect("live entries live in open segments");
        let mut buf = vec![0u8; m.len as usize];
        seg.file.read_exact_at(&mut buf, m.offset).ctx(|| format!("reading {} at {}", seg.path.display(), m.offset))?;
        if crc32c::crc32c(&buf) != m.crc {
            return Err(Error::Corrupt {
                path: seg.path.clone(),
                offset: m.offset,
                reason: "entry payload checksum mismatch on re-read".into(),
            });
        }
        Ok(buf)
    }

    /// Persists a Ready batch: writes one record and issues exactly one fdatasync before
    /// returning (plus, once per `segment_size` bytes, the syncs of creating a segment).
    /// Entries starting at or below `last_index()` replace the conflicting suffix.
    pub fn append(&mut self, batch: &WriteBatch<'_>) -> Result<()> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        if batch.entries.is_empty() && batch.hard_state.is_none() {
            return Ok(());
        }
        self.check_batch(batch)?;
        let body_len = record::batch_body_len(batch.hard_state.is_some(), batch.entries);
        if u32::try_from(body_len).is_err() {
            return Err(Error::InvalidBatch(format!("batch of {body_len} bytes exceeds 4 GiB")));
        }
        self.scratch.clear();
        self.entry_data.clear();
        let start = record::begin_record(&mut self.scratch);
        record::encode_batch(&mut self.scratch, batch.hard_state.as_ref(), batch.entries, &mut self.entry_data);
        // Sealed for the segment it lands in by `write_scratch`.
        record::finish_record(&mut self.scratch, start, RecordType::Batch);
        debug_assert_eq!(self.scratch.len(), record::align_up(RECORD_HEADER_LEN + body_len));
        let at = self.write_scratch()?;

        if let Some(first) = batch.entries.first() {
            if first.index <= self.log.last_index() {
                self.log.truncate_from(first.index);
            }
            for (e, &(off, crc)) in batch.entries.iter().zip(&self.entry_data) {
                self.log.push(EntryMeta {
                    term: e.term,
                    kind: e.kind,
                    seg: self.active,
                    offset: at + off as u64,
                    len: e.data.len() as u32,
                    crc,
                    data: Some(e.data.clone()),
                });
            }
            debug_assert_eq!(self.log.last_index(), batch.entries.last().map_or(0, |e| e.index));
        }
        if let Some(hs) = batch.hard_state {
            self.hard_state = hs;
        }
        Ok(())
    }

    /// Rejects batches that would corrupt the log instead of persisting them.
    fn check_batch(&self, batch: &WriteBatch<'_>) -> Result<()> {
        if let Some(hs) = batch.hard_state {
            if hs.term < self.hard_state.term {
                return Err(Error::InvalidBatch(format!(
                    "hard state term {} is below the durable term {}",
                    hs.term, self.hard_state.term
                )));
            }
        }
        let Some(first) = batch.entries.first().map(|e| e.index) else {
            return Ok(());
        };
        for (i, e) in batch.entries.iter().enumerate() {
            if e.index != first + i as u64 {
                return Err(Error::InvalidBatch(format!("entry {} breaks the run starting at {first}", e.index)));
            }
            if u32::try_from(e.data.len()).is_err() {
                return Err(Error::InvalidBatch(format!("entry {} is larger than 4 GiB", e.index)));
            }
        }
        if first < self.first_index() {
            return Err(Error::InvalidBatch(format!(
                "entry {first} is below the first index {} (compacted)",
                self.first_index()
            )));
        }
        if first > self.last_index() + 1 {
            return Err(Error::InvalidBatch(format!(
                "entry {first} leaves a gap after last index {}",
                self.last_index()
            )));
        }
        let snap_index = self.snapshot.as_ref().map_or(0, |m| m.index);
        if first <= snap_index {
            return Err(Error::InvalidBatch(format!("entry {first} would overwrite the snapshot at {snap_index}")));
        }
        if first <= self.last_index() && first <= self.hard_state.commit {
            return Err(Error::InvalidBatch(format!(
                "entry {first} would truncate committed entries (commit {})",
                self.hard_state.commit
            )));
        }
        Ok(())
    }

    /// Writes the record in `scratch` (plus its zero trailer) and fdatasyncs; returns the
    /// record's file offset.
    fn write_scratch(&mut self) -> Result<u64> {
        let len = self.scratch.len() as u64;
        let appender = self.appender.as_ref().expect("an active segment");
        if appender.offset() + len > appender.file_len() {
            self.roll(len)?;
        } else if appender.offset() + len > appender.file_len() / 2 {
            // The next file's zeros yield the disk while this one has room; past its half
            // they hurry, so that a log written fast (a learner catching up) need not wait at
            // the roll for zeros written at a quarter of the disk's time.
            if let Some(prepared) = &self.prepared {
                prepared.hurry();
            }
        }
        let seg = &self.segments[&self.active];
        record::seal(&mut self.scratch, seg.seed);
        let appender = self.appender.as_mut().expect("an active segment");
        let at = appender.offset();
        // Followed by its zero trailer, cut at the end of the file.
        let res = appender
            .append(&self.scratch)
            .and_then(|()| appender.sync())
            .ctx(|| format!("appending to {}", seg.path.display()));
        if res.is_err() {
            self.poisoned = true;
        }
        res?;
        Ok(at)
    }

    /// Seals the active segment and starts the next one with room for `record_len` bytes.
    /// The new segment begins with the current hard state so that deleting older segments
    /// never loses it. Its header and that record are durable before the file gets its
    /// final name, so a segment that exists always has a valid header.
    fn roll(&mut self, record_len: u64) -> Result<()> {
        let res = self.roll_inner(record_len);
        if res.is_err() {
            self.poisoned = true;
        }
        res
    }

    fn roll_inner(&mut self, record_len: u64) -> Result<()> {
        let seq = self.active + 1;
        let seed = segment::record_seed(seq);
        let path = self.dir.join(segment::segment_name(seq));
        let head_len = SEGMENT_HEADER_LEN + record::align_up(RECORD_HEADER_LEN + record::batch_body_len(true, &[]));
        let size = self.opts.segment_size.max((head_len as u64) + record_len);
        let size = record::align_up(size as usize) as u64;
        // Spares and prepared files are exactly `segment_size`; a record too large for that
        // gets a file of its own.
        let fits = size == self.opts.segment_size;
        let spare = if fits { self.spares.pop() } else { None };
        let prepared = if fits && spare.is_none() { self.prepared.take() } else { None };
        let recycled = spare.is_some();
        let mut head = segment::encode_header(seq, recycled).to_vec();
        let start = record::begin_record(&mut head);
        record::encode_batch(&mut head, Some(&self.hard_state), &[], &mut Vec::new());
        record::finish_record(&mut head, start, RecordType::Batch);
        record::seal(&mut head[start..], seed);
        debug_assert_eq!(head.len(), head_len);
        head.resize(head_len + TRAILER_LEN.min((size - head_len as u64) as usize), 0);

        let (from, file) = match (spare, prepared) {
            (Some(Spare { path, file }), _) => (path, file),
            (None, Some(p)) => p.finish(&self.dir).ctx(|| format!("preparing segment {}", path.display()))?,
            (None, None) => {
                let tmp = self.dir.join(format!("{}{TMP_SUFFIX}", segment::segment_name(seq)));
                let file = prepare::create_file(&self.fs, &tmp, size, self.opts.zero_fill, Pace::Full)
                    .ctx(|| format!("creating segment {}", tmp.display()))?;
                (tmp, file)
            }
        };
        // The header is durable before the file gets its segment name, so a segment that
        // exists always has a valid header; the name is durable before any append to it
        // is acknowledged.
        let what = || format!("starting segment {} in {}", path.display(), from.display());
        file.write_all_at(&head, 0).ctx(what)?;
        file.sync_data().ctx(what)?;
        self.fs.rename(&from, &path).ctx(what)?;
        self.fs.sync_dir(&self.dir).ctx(|| format!("syncing directory {}", self.dir.display()))?;
        let appender = BlockAppender::open(&self.fs, &path, size, head_len as u64, &head[..head_len])
            .ctx(|| format!("opening {} to append", path.display()))?;
        self.appender = Some(appender);
        self.segments.insert(seq, Segment { path, file, seed, reusable: true });
        self.active = seq;
        self.prepare_next();
        Ok(())
    }

    /// Starts making the next segment file if a roll would otherwise have to.
    fn prepare_next(&mut self) {
        if self.opts.prepare != Prepare::AtRoll && self.spares.is_empty() && self.prepared.is_none() {
            let (size, zero_fill) = (self.opts.segment_size, self.opts.zero_fill);
            self.prepared = Some(Prepared::start(&self.fs, &self.dir, size, zero_fill, self.opts.prepare));
        }
    }

    /// Takes over the spare files found at open: keeps those that fit the current
    /// `segment_size`, up to `spare_segments_max`, and deletes the rest.
    fn adopt_spares(&mut self, found: Vec<Spare<F::File>>) -> Result<()> {
        for spare in found {
            let size = spare.file.size().ctx(|| format!("reading the size of {}", spare.path.display()))?;
            if size == self.opts.segment_size && self.spares.len() < self.opts.spare_segments_max {
                self.spares.push(spare);
            } else {
                self.fs.remove_file(&spare.path).ctx(|| format!("removing spare {}", spare.path.display()))?;
            }
        }
        Ok(())
    }

    fn append_marker(&mut self, kind: RecordType, marker: Marker) -> Result<()> {
        self.scratch.clear();
        let start = record::begin_record(&mut self.scratch);
        record::encode_marker(&mut self.scratch, marker);
        record::finish_record(&mut self.scratch, start, kind);
        self.write_scratch().map(drop)
    }

    /// Durably stores a snapshot, then records it in the log. If the log disagrees with the
    /// snapshot at its index (or is shorter), the whole log is discarded, as Raft requires.
    /// Older snapshot files are deleted only after the new one and its marker are durable.
    /// Log entries are kept; call [`Wal::compact`] to release them.
    pub fn save_snapshot(&mut self, meta: &SnapshotMeta, data: &[u8]) -> Result<()> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        self.check_newer(meta)?;
        snapshot::write_snapshot(&self.fs, &self.dir, meta, data, Pace::Full)?;
        if let Some(old) = self.record_snapshot(meta)? {
            self.fs.remove_file(&old).ctx(|| format!("removing old snapshot {}", old.display()))?;
        }
        Ok(())
    }

    /// Writes snapshot files from another thread, so that encoding and syncing a large state
    /// does not hold up appends. A written snapshot takes effect with [`Wal::adopt_snapshot`].
    pub fn snapshot_writer(&self) -> SnapshotWriter<F> {
        SnapshotWriter { fs: self.fs.clone(), dir: self.dir.clone() }
    }

    /// Records a snapshot a [`SnapshotWriter`] made durable, as [`Wal::save_snapshot`] would
    /// have, unless a newer snapshot was saved meanwhile. A crash before this call is safe:
    /// recovery adopts the newest durable snapshot file. The file this leaves behind (the
    /// previous snapshot's, or this one's if it was overtaken) is the caller's to delete with
    /// [`SnapshotWriter::remove`], off its hot path: unlinking a snapshot of 300 MB takes
    /// 60-100 ms. Left alone, recovery deletes it on the next start.
    pub fn adopt_snapshot(&mut self, meta: &SnapshotMeta) -> Result<Adoption> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        if self.check_newer(meta).is_err() {
            // (The same snapshot adopted twice is the current one: its file stays.)
            let current = self.snapshot.as_ref().is_some_and(|c| (c.index, c.term) == (meta.index, meta.term));
            let retired = (!current).then(|| self.dir.join(snapshot::snapshot_name(meta.index, meta.term)));
            return Ok(Adoption { adopted: false, retired });
        }
        let retired = self.record_snapshot(meta)?;
        Ok(Adoption { adopted: true, retired })
    }

    fn check_newer(&self, meta: &SnapshotMeta) -> Result<()> {
        match &self.snapshot {
            Some(cur) if meta.index <= cur.index => Err(Error::InvalidBatch(format!(
                "snapshot at {} is not newer than the current one at {}",
                meta.index, cur.index
            ))),
            _ => Ok(()),
        }
    }

    /// The marker of a durable snapshot file; returns the previous snapshot's file, which
    /// is no longer needed.
    fn record_snapshot(&mut self, meta: &SnapshotMeta) -> Result<Option<PathBuf>> {
        let reset = self.log.term(meta.index) != Some(meta.term);
        self.append_marker(RecordType::Snapshot, Marker { index: meta.index, term: meta.term, reset, keep_from: 0 })?;
        let did_reset = recovery::apply_snapshot(&mut self.log, meta.index, meta.term);
        debug_assert_eq!(reset, did_reset);
        let old = self.snapshot.replace(meta.clone());
        Ok(old.map(|old| self.dir.join(snapshot::snapshot_name(old.index, old.term))))
    }

    /// The newest snapshot with its data, read and verified from disk.
    pub fn load_snapshot(&self) -> Result<Option<Snapshot>> {
        self.snapshot
            .as_ref()
            .map(|m| snapshot::read_snapshot(&self.fs, &self.dir.join(snapshot::snapshot_name(m.index, m.term))))
            .transpose()
    }

    /// Releases the log prefix up to and including `index`, which must be covered by the
    /// durable snapshot. Whole segments whose entries are all `<= index` are kept as spares
    /// or deleted.
    pub fn compact(&mut self, index: u64) -> Result<()> {
        for retired in self.compact_retiring(index)? {
            self.fs.remove_file(&retired).ctx(|| format!("removing segment {}", retired.display()))?;
        }
        Ok(())
    }

    /// [`Wal::compact`], except that the released segments beyond the spares kept are only
    /// renamed out of the log (as spares are) and returned, for the caller to delete with
    /// [`SnapshotWriter::remove`] off its hot path: unlinking a 64 MB segment took 20-40 ms
    /// on an ext4 mounted with `discard`. Left alone, recovery deletes them.
    pub fn compact_retiring(&mut self, index: u64) -> Result<Vec<PathBuf>> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        let snap_index = self.snapshot.as_ref().map_or(0, |m| m.index);
        if index > snap_index {
            return Err(Error::InvalidBatch(format!(
                "cannot compact to {index}: the newest snapshot is at {snap_index}"
            )));
        }
        if index < self.first_index() {
            return Ok(Vec::new());
        }
        let Some(term) = self.log.term(index) else {
            return Err(Error::InvalidBatch(format!("cannot compact to {index}: not in the log")));
        };
        // Live entries sit in nondecreasing segment order, so every segment before the one
        // holding the first live entry after `index` is dead. Hard state is carried into each
        // new segment, and this marker goes into the active one, so nothing else is lost.
        let keep_from = self.log.get(index + 1).map_or(self.active, |m| m.seg);
        self.append_marker(RecordType::Compact, Marker { index, term, reset: false, keep_from })?;
        self.log.compact_to(index, term);
        let res = self.release_segments(keep_from);
        if res.is_err() {
            // A spare whose rename may not be durable must never be overwritten.
            self.poisoned = true;
        }
        res
    }

    /// Takes the segments before `keep_from` out of the log: oldest first with a directory
    /// sync each, so a crash leaves a contiguous suffix. A reusable segment leaves by a rename
    /// to a spare's name: to recovery the same as a delete, and durable before the file is
    /// ever overwritten. Those beyond `spare_segments_max` are returned for deleting (found
    /// at open, they are deleted then); the others are deleted here.
    fn release_segments(&mut self, keep_from: u64) -> Result<Vec<PathBuf>> {
        let mut retired = Vec::new();
        while let Some(entry) = self.segments.first_entry() {
            if *entry.key() >= keep_from {
                break;
            }
            let (seq, seg) = entry.remove_entry();
            let size = seg.file.size().ctx(|| format!("reading the size of {}", seg.path.display()))?;
            if seg.reusable && size == self.opts.segment_size {
                let spare = self.dir.join(segment::spare_name(seq));
                self.fs.rename(&seg.path, &spare).ctx(|| format!("keeping {} as a spare", seg.path.display()))?;
                if self.spares.len() < self.opts.spare_segments_max {
                    self.spares.push(Spare { path: spare, file: seg.file });
                } else {
                    retired.push(spare);
                }
            } else {
                self.fs.remove_file(&seg.path).ctx(|| format!("removing segment {}", seg.path.display()))?;
            }
            self.fs.sync_dir(&self.dir).ctx(|| format!("syncing directory {}", self.dir.display()))?;
        }
        Ok(retired)
    }

    /// Waits until the next segment file being prepared in the background (if any) is
    /// ready, e.g. to attribute its cost in a benchmark. Its error, if any, is kept for
    /// the roll that would use the file.
    pub fn wait_for_prepared(&mut self) {
        if let Some(prepared) = self.prepared.take() {
            self.prepared = Some(Prepared::Done(prepared.wait()));
        }
    }

    /// Number of segment files currently in use.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Writes snapshot files into a WAL's directory from any thread (see [`Wal::snapshot_writer`]).
#[derive(Clone)]
pub struct SnapshotWriter<F: FileSystem = RealFs> {
    fs: F,
    dir: PathBuf,
}

impl<F: FileSystem> SnapshotWriter<F> {
    /// Writes and syncs the snapshot file (atomically: a temporary file renamed into place),
    /// yielding the disk to the log's appends (see `pace.rs`). Returns its data as the file
    /// holds it, mapped (see [`FileSystem::map`]), so that `data`'s memory can be used again.
    pub fn write(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<bytes::Bytes> {
        let path = snapshot::write_snapshot(&self.fs, &self.dir, meta, data, Pace::ALWAYS)?;
        snapshot::map_snapshot_data(&self.fs, &path, meta, data.len())
    }

    /// Deletes a file [`Wal::adopt_snapshot`] or [`Wal::compact_retiring`] retired.
    pub fn remove(&self, retired: &Path) -> Result<()> {
        self.fs.remove_file(retired).ctx(|| format!("removing retired {}", retired.display()))
    }
}

/// What [`Wal::adopt_snapshot`] did.
#[derive(Debug, PartialEq, Eq)]
pub struct Adoption {
    /// False if a newer snapshot was saved meanwhile.
    pub adopted: bool,
    /// A snapshot file no longer needed, to delete with [`SnapshotWriter::remove`].
    pub retired: Option<PathBuf>,
}

impl<F: FileSystem> Drop for Wal<F> {
    fn drop(&mut self) {
        // Not left writing into a directory that may be reopened (and cleaned) next.
        if let Some(prepared) = self.prepared.take() {
            let _ = prepared.wait();
        }
    }
}
