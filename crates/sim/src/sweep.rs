//! What both sweeps (core and whole-node) share: seeds spread over threads, and a failure
//! printed with the command that replays it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tally_sim::checker::Violation;

/// Runs `run` for seeds `start..start + seeds` on `threads` threads and hands each report to
/// `take` (one at a time), which says whether the seed failed. Returns how many failed.
pub fn sweep<R>(
    start: u64,
    seeds: u64,
    threads: usize,
    run: impl Fn(u64) -> R + Sync,
    take: impl FnMut(R) -> bool + Send,
) -> usize {
    let next = AtomicU64::new(start);
    let end = start + seeds;
    let take = Mutex::new((take, 0usize));
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= end {
                    break;
                }
                let report = run(seed);
                let mut take = take.lock().unwrap();
                if (take.0)(report) {
                    take.1 += 1;
                }
            });
        }
    });
    take.into_inner().unwrap().1
}

/// One line per violation of `seed` (`run` describes the run), then the command that replays it.
pub fn print_failure(seed: u64, run: &str, violations: &[Violation], replay: &str) {
    for v in violations {
        println!(
            "seed {seed}: VIOLATION of {} at {:.3} ms ({run}): {}",
            v.property,
            v.time_us as f64 / 1000.0,
            v.detail
        );
    }
    println!("  replay: {replay}");
}
