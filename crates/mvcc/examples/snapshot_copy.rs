//! What a node's own snapshot costs the driver thread: copying a state machine of N puts (the
//! driver's part) against encoding it (the background thread's part).
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
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let key = format!("{:08}", x % 1_000_000).into_bytes();
        let cmd = Command {
            client_id: 1000 + i,
            seq: 1,
            op: Some(Op::Put(PutRequest { key, value: vec![b'v'; 256], ..Default::default() })),
        };
        sm.apply(i, &cmd);
    }
    for _ in 0..3 {
        let t = Instant::now();
        let c = sm.clone();
        let whole = t.elapsed();
        drop(c);
        let t = Instant::now();
        let c = sm.store.clone();
        let store = t.elapsed();
        drop(c);
        let t = Instant::now();
        let s = sm.snapshot();
        let enc = t.elapsed();
        println!("{n} puts: copy {whole:?} (store alone {store:?}); encode {enc:?} ({} bytes)", s.len());
    }
}
