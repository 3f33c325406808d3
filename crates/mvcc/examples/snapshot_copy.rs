//! What a node's own snapshot costs the driver thread: copying a state machine of N puts (the
//! driver's part), and the writes right after it, against encoding the copy (the background
//! thread's part, which sorts the keys).
//!
//!     cargo run --release -p tally-mvcc --example snapshot_copy -- 200000

use std::time::Instant;
use tally_mvcc::StateMachine;
use tally_proto::etcdserverpb::PutRequest;
use tally_proto::tally_v1::{command::Op, Command};

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let mut sm = StateMachine::default();
    let mut x = 1u64;
    for i in 1..=n {
        sm.apply(i, &put_random(i, &mut x));
    }
    let mut next = n + 1;
    for _ in 0..3 {
        let t = Instant::now();
        let c = sm.copy_for_snapshot();
        let whole = t.elapsed();
        // What the copy costs the writes that follow while it is alive: each write copies the
        // shards it changes that the copy still shares.
        let t = Instant::now();
        let mut slowest = std::time::Duration::ZERO;
        for i in next..next + 2_000 {
            let one = Instant::now();
            sm.apply(i, &put_random(i, &mut x));
            slowest = slowest.max(one.elapsed());
        }
        next += 2_000;
        let after = t.elapsed();
        let t = Instant::now();
        let mut s = Vec::new();
        c.snapshot_into(&mut s);
        let enc = t.elapsed();
        drop(c);
        println!(
            "{n} puts: copy {whole:?}; the next 2000 puts with the copy alive {after:?} (slowest {slowest:?}); encode {enc:?} ({} bytes)",
            s.len()
        );
    }
}

/// A put of a random key out of a million, with its own client id (as every etcd request).
fn put_random(i: u64, x: &mut u64) -> Command {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    let key = format!("{:08}", *x % 1_000_000).into_bytes();
    Command {
        client_id: 1000 + i,
        seq: 1,
        op: Some(Op::Put(PutRequest { key, value: vec![b'v'; 256], ..Default::default() })),
        ..Default::default()
    }
}
