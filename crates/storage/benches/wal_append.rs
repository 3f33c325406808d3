//! Append throughput/latency with fsync, next to the raw fdatasync rate of the same disk.
//!
//! `cargo bench -p tally-storage` (set `TALLY_BENCH_DIR` to measure another disk,
//! `TALLY_BENCH_SECS` to change the time per case). Prints a table; not a test.
//!
//! The WAL runs in two shapes: grow-only (nothing is ever released, every segment is a new
//! zero-filled file, made ahead on a background thread, or at the roll as before) and
//! compacting, the steady state of a server: a snapshot every `SNAPSHOT_ENTRIES` entries
//! and the log compacted to `COMPACTION_LAG` entries behind it, so released segments are
//! reused.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tally_storage::{HardState, LogEntry, Prepare, SnapshotMeta, Wal, WalOptions, WriteBatch};

const ENTRY_BYTES: usize = 256;
const BATCH_SIZES: [usize; 3] = [1, 16, 256];
const TARGET_RATIO: f64 = 0.8;
/// The server's defaults: `--snapshot-count` and etcd's compaction lag.
const SNAPSHOT_ENTRIES: u64 = 100_000;
const COMPACTION_LAG: u64 = 5000;

struct Sample {
    ops: usize,
    elapsed: Duration,
    lat: Vec<Duration>,
}

impl Sample {
    fn per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&mut self, p: f64) -> Duration {
        self.lat.sort_unstable();
        self.lat[((self.lat.len() - 1) as f64 * p) as usize]
    }
    fn max(&self) -> Duration {
        self.lat.iter().copied().max().unwrap_or_default()
    }
}

/// Time slices per case; cases take turns so noise from other tenants of the disk hits
/// all of them alike.
const ROUNDS: u32 = 10;

/// Runs `op` for `secs`, then `settle` (inside the timed span, not as an op): background
/// work a case started must not run in, and be paid by, the next case's slice.
fn run_slice(s: &mut Sample, secs: Duration, op: &mut dyn FnMut(), settle: &mut dyn FnMut()) {
    let start = Instant::now();
    while start.elapsed() < secs {
        let t = Instant::now();
        op();
        s.lat.push(t.elapsed());
        s.ops += 1;
    }
    settle();
    s.elapsed += start.elapsed();
}

const RAW_FILE_BYTES: usize = 16 << 20;

fn raw_file(dir: &Path, name: &str) -> File {
    OpenOptions::new().create(true).truncate(true).read(true).write(true).open(dir.join(name)).unwrap()
}

/// Writes `bytes` into a zero-filled file (cycling through it) and fdatasyncs: the disk's
/// limit for that write size, without the metadata commits a growing file would add (the
/// WAL's segments are zero-filled in advance too).
fn raw_fdatasync(dir: &Path, bytes: usize) -> impl FnMut() {
    let f = raw_file(dir, &format!("raw-{bytes}.bin"));
    f.write_all_at(&vec![0u8; RAW_FILE_BYTES], 0).unwrap();
    f.sync_all().unwrap();
    let buf = vec![0xa5u8; bytes];
    let mut offset = 0usize;
    move || {
        if offset + bytes > RAW_FILE_BYTES {
            offset = 0;
        }
        f.write_all_at(&buf, offset as u64).unwrap();
        f.sync_data().unwrap();
        offset += bytes;
    }
}

/// Like `raw_fdatasync`, but into space reserved with fallocate(2) (unwritten extents)
/// instead of written zeros, re-reserved each time the file is used up: what preallocating
/// segments with fallocate would cost, renewal included.
fn raw_fallocated(dir: &Path, bytes: usize) -> impl FnMut() {
    let f = raw_file(dir, &format!("raw-fallocated-{bytes}.bin"));
    let reserve = |f: &File| {
        f.set_len(0).unwrap();
        // SAFETY: plain syscall on an open descriptor.
        let rc = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, RAW_FILE_BYTES as libc::off_t) };
        assert_eq!(rc, 0, "fallocate: {}", std::io::Error::last_os_error());
        f.sync_all().unwrap();
    };
    reserve(&f);
    let buf = vec![0xa5u8; bytes];
    let mut offset = 0usize;
    move || {
        if offset + bytes > RAW_FILE_BYTES {
            reserve(&f);
            offset = 0;
        }
        f.write_all_at(&buf, offset as u64).unwrap();
        f.sync_data().unwrap();
        offset += bytes;
    }
}

struct Appender {
    wal: Wal,
    next: u64,
    batch: usize,
    compact: bool,
    payload: Bytes,
    entries: Vec<LogEntry>,
}

impl Appender {
    fn new(dir: &Path, batch: usize, compact: bool, prepare: Prepare) -> Appender {
        let name = format!("wal-{batch}-{compact}-{prepare:?}");
        let (wal, _) = Wal::open(dir.join(name), WalOptions { prepare, ..WalOptions::default() }).unwrap();
        let payload = Bytes::from(vec![0x5au8; ENTRY_BYTES]);
        Appender { wal, next: 1, batch, compact, payload, entries: Vec::with_capacity(batch) }
    }

    fn append(&mut self) {
        let first = self.next;
        self.entries.clear();
        self.entries.extend((0..self.batch as u64).map(|i| LogEntry {
            index: first + i,
            term: 1,
            kind: 0,
            data: self.payload.clone(),
        }));
        self.next += self.batch as u64;
        let last = self.next - 1;
        let hs = HardState { term: 1, vote: 1, commit: last };
        self.wal.append(&WriteBatch { hard_state: Some(hs), entries: &self.entries }).unwrap();
        if self.compact && last / SNAPSHOT_ENTRIES != (first - 1) / SNAPSHOT_ENTRIES {
            let meta = SnapshotMeta { index: last, term: 1, conf_state: vec![1] };
            self.wal.save_snapshot(&meta, b"state machine").unwrap();
            self.wal.compact(last.saturating_sub(COMPACTION_LAG)).unwrap();
        }
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

struct Case {
    name: String,
    /// Entries per op, for the entries/s and MB/s columns.
    entries: usize,
    op: Box<dyn FnMut()>,
    settle: Box<dyn FnMut()>,
    sample: Sample,
}

fn case(name: String, entries: usize, op: impl FnMut() + 'static) -> Case {
    let sample = Sample { ops: 0, elapsed: Duration::ZERO, lat: Vec::new() };
    Case { name, entries, op: Box::new(op), settle: Box::new(|| {}), sample }
}

fn wal_case(name: String, w: Appender) -> Case {
    let batch = w.batch;
    let w = std::rc::Rc::new(std::cell::RefCell::new(w));
    let (a, b) = (w.clone(), w);
    let mut c = case(name, batch, move || a.borrow_mut().append());
    c.settle = Box::new(move || b.borrow_mut().wal.wait_for_prepared());
    c
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then only smoke-run.
    let benching = std::env::args().any(|a| a == "--bench");
    let secs = Duration::from_secs_f64(
        std::env::var("TALLY_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(if benching {
            3.0
        } else {
            0.05
        }),
    );
    let base = std::env::var("TALLY_BENCH_DIR").unwrap_or_else(|_| env!("CARGO_TARGET_TMPDIR").to_owned());
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(&base).unwrap();
    let d = dir.path();
    println!("directory: {} ({} s per case, {ENTRY_BYTES} B entries)", d.display(), secs.as_secs_f64());

    // Limits: an fsync of one entry, and an fsync of as many bytes as a 256-entry batch
    // carries (the fair ceiling for that batch size: the disk moves 64 KiB per sync either way).
    let big = 256 * ENTRY_BYTES;
    let mut cases = vec![
        case(format!("raw {ENTRY_BYTES} B+fdatasync"), 1, raw_fdatasync(d, ENTRY_BYTES)),
        case(format!("raw {} KiB+fdatasync", big / 1024), 256, raw_fdatasync(d, big)),
    ];
    for b in BATCH_SIZES {
        cases.push(wal_case(format!("wal batch={b} grow-only"), Appender::new(d, b, false, Prepare::Background)));
    }
    cases.push(wal_case("wal batch=256 fill at roll".into(), Appender::new(d, 256, false, Prepare::AtRoll)));
    // Warm up to the steady state: about four 64 MiB segments, so the first (fresh) ones
    // are released and the log runs on reused ones.
    let mut w = Appender::new(d, 256, true, Prepare::Background);
    let warmup_entries = if benching { 1_000_000 } else { 2 * SNAPSHOT_ENTRIES };
    while w.next < warmup_entries {
        w.append();
    }
    w.wal.wait_for_prepared();
    cases.push(wal_case("wal batch=256 compacting".into(), w));

    run_rounds(&mut cases, secs);
    let raw_rate = cases[0].sample.per_sec();
    let raw_big_rate = cases[1].sample.per_sec();
    print_table(&mut cases, raw_rate, raw_big_rate);
    println!();
    for name in ["wal batch=256 grow-only", "wal batch=256 fill at roll", "wal batch=256 compacting"] {
        let ratio = cases.iter().find(|c| c.name == name).unwrap().sample.per_sec() / raw_big_rate;
        println!(
            "{name}: {:.0}% of the fdatasync-bound limit for the same payload bytes per sync (goal >= {:.0}%): {}",
            ratio * 100.0,
            TARGET_RATIO * 100.0,
            if ratio >= TARGET_RATIO { "met" } else { "NOT met" }
        );
    }
    println!(
        "(MB/s counts entry payload; a batch of 256 writes {} B: entry headers and framing)",
        wal_bytes_per_batch(256)
    );

    // Separately, so its block frees (discards) cannot slow the cases above: fallocate'd
    // space instead of written zeros, against its own zero-filled baseline.
    let mut alloc = vec![
        case(format!("raw {} KiB+fdatasync", big / 1024), 256, raw_fdatasync(d, big)),
        case(format!("raw {} KiB fallocated", big / 1024), 256, raw_fallocated(d, big)),
    ];
    run_rounds(&mut alloc, secs);
    println!();
    let base = alloc[0].sample.per_sec();
    print_table(&mut alloc, raw_rate, base);
}

/// Runs every case for `secs` in total, taking turns. Each round starts one case later, so
/// no case always follows the same one (the disk may still be busy with what came before).
fn run_rounds(cases: &mut [Case], secs: Duration) {
    let n = cases.len();
    for round in 0..ROUNDS as usize {
        for i in 0..n {
            let c = &mut cases[(round + i) % n];
            run_slice(&mut c.sample, secs / ROUNDS, &mut c.op, &mut c.settle);
        }
    }
}

/// One line per case; ratios against one-entry fsyncs and against `big_rate`.
fn print_table(cases: &mut [Case], raw_rate: f64, big_rate: f64) {
    println!(
        "{:<26} {:>8} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "case", "ops/s", "entries/s", "MB/s", "p50 us", "p99 us", "max us", "vs 256B", "vs 64KiB"
    );
    for c in cases {
        let rate = c.sample.per_sec();
        println!(
            "{:<26} {:>8.0} {:>10.0} {:>8.2} {:>8.0} {:>8.0} {:>8.0} {:>8.2} {:>8.2}",
            c.name,
            rate,
            rate * c.entries as f64,
            rate * (c.entries * ENTRY_BYTES) as f64 / 1e6,
            us(c.sample.pct(0.5)),
            us(c.sample.pct(0.99)),
            us(c.sample.max()),
            rate / raw_rate,
            rate / big_rate,
        );
    }
}

/// Bytes one append of `batch` entries writes: record header, hard state, entry headers,
/// payloads, padding, and the zero trailer.
fn wal_bytes_per_batch(batch: usize) -> usize {
    let body = 1 + 24 + 4 + batch * (25 + ENTRY_BYTES);
    (12 + body).div_ceil(8) * 8 + 16
}
