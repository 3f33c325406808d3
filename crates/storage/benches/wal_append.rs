//! Append throughput/latency with fsync, next to the raw fdatasync rate of the same disk.
//!
//! `cargo bench -p tally-storage` (set `TALLY_BENCH_DIR` to measure another disk,
//! `TALLY_BENCH_SECS` to change the time per case). Prints a table; not a test.

use std::fs::OpenOptions;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tally_storage::{HardState, LogEntry, Wal, WalOptions, WriteBatch};

const ENTRY_BYTES: usize = 256;
const BATCH_SIZES: [usize; 3] = [1, 16, 256];
const TARGET_RATIO: f64 = 0.8;

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
}

/// Time slices per case; cases take turns so noise from other tenants of the disk hits
/// all of them alike.
const ROUNDS: u32 = 10;

fn run_slice(s: &mut Sample, secs: Duration, op: &mut dyn FnMut()) {
    let start = Instant::now();
    while start.elapsed() < secs {
        let t = Instant::now();
        op();
        s.lat.push(t.elapsed());
        s.ops += 1;
    }
    s.elapsed += start.elapsed();
}

/// Writes `bytes` into a zero-filled file (cycling through it) and fdatasyncs: the disk's
/// limit for that write size, without the metadata commits a growing file would add (the
/// WAL's segments are zero-filled in advance too).
fn raw_fdatasync(dir: &Path, bytes: usize) -> impl FnMut() {
    use std::os::unix::fs::FileExt;
    const FILE_BYTES: usize = 16 << 20;
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(dir.join(format!("raw-{bytes}.bin")))
        .unwrap();
    f.write_all_at(&vec![0u8; FILE_BYTES], 0).unwrap();
    f.sync_all().unwrap();
    let buf = vec![0xa5u8; bytes];
    let mut offset = 0usize;
    move || {
        if offset + bytes > FILE_BYTES {
            offset = 0;
        }
        f.write_all_at(&buf, offset as u64).unwrap();
        f.sync_data().unwrap();
        offset += bytes;
    }
}

fn wal_append(dir: &Path, batch: usize) -> impl FnMut() {
    let (mut wal, _) = Wal::open(dir.join(format!("wal-{batch}")), WalOptions::default()).unwrap();
    let payload = Bytes::from(vec![0x5au8; ENTRY_BYTES]);
    let mut next = 1u64;
    let mut entries = Vec::with_capacity(batch);
    move || {
        entries.clear();
        entries.extend((0..batch as u64).map(|i| LogEntry {
            index: next + i,
            term: 1,
            kind: 0,
            data: payload.clone(),
        }));
        next += batch as u64;
        wal.append(&WriteBatch {
            hard_state: Some(HardState { term: 1, vote: 1, commit: next - 1 }),
            entries: &entries,
        })
        .unwrap();
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
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
    println!("directory: {} ({} s per case, {ENTRY_BYTES} B entries)", dir.path().display(), secs.as_secs_f64());

    // Two limits: an fsync of one entry, and an fsync of as many bytes as a 256-entry batch
    // writes (the fair ceiling for that batch size: the disk moves 64 KiB per sync either way).
    let mut ops: Vec<Box<dyn FnMut()>> =
        vec![Box::new(raw_fdatasync(dir.path(), ENTRY_BYTES)), Box::new(raw_fdatasync(dir.path(), 256 * ENTRY_BYTES))];
    ops.extend(BATCH_SIZES.map(|b| Box::new(wal_append(dir.path(), b)) as Box<dyn FnMut()>));
    let mut samples: Vec<Sample> =
        ops.iter().map(|_| Sample { ops: 0, elapsed: Duration::ZERO, lat: Vec::new() }).collect();
    for _ in 0..ROUNDS {
        for (op, s) in ops.iter_mut().zip(&mut samples) {
            run_slice(s, secs / ROUNDS, op);
        }
    }
    let raw_rate = samples[0].per_sec();
    let raw_64k_rate = samples[1].per_sec();
    println!();
    println!(
        "{:<22} {:>10} {:>12} {:>9} {:>10} {:>10} {:>13}",
        "case", "ops/s", "entries/s", "MB/s", "p50 us", "p99 us", "ops/fsync-max"
    );
    let mut ratio_256 = 0.0;
    for (i, s) in samples.iter_mut().enumerate() {
        let (name, batch) = match i {
            0 => (format!("raw {ENTRY_BYTES} B+fdatasync"), 1),
            1 => (format!("raw {} KiB+fdatasync", 256 * ENTRY_BYTES / 1024), 0),
            _ => (format!("wal append batch={}", BATCH_SIZES[i - 2]), BATCH_SIZES[i - 2]),
        };
        let rate = s.per_sec();
        let ratio = rate / raw_rate;
        if batch == 256 {
            ratio_256 = rate / raw_64k_rate;
        }
        let batch = batch.max(1) * if i == 1 { 256 } else { 1 };
        println!(
            "{:<22} {:>10.0} {:>12.0} {:>9.2} {:>10.0} {:>10.0} {:>13.2}",
            name,
            rate,
            rate * batch as f64,
            rate * (batch * ENTRY_BYTES) as f64 / 1e6,
            us(s.pct(0.5)),
            us(s.pct(0.99)),
            ratio
        );
    }
    println!();
    println!(
        "batch=256 sustains {:.0}% of the fdatasync-bound limit for the same bytes per sync (goal >= {:.0}%): {}",
        ratio_256 * 100.0,
        TARGET_RATIO * 100.0,
        if ratio_256 >= TARGET_RATIO { "met" } else { "NOT met" }
    );
    println!(
        "(against one-entry fsyncs it is {:.0}%: a 64 KiB write costs the disk more than a 256 B one)",
        samples[BATCH_SIZES.len() + 1].per_sec() / raw_rate * 100.0
    );
}
