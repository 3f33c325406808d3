//! The state machine's cost per applied put, which every member pays for every write: puts of
//! new keys (the index grows: hash map insert plus ordered-set insert) and puts that overwrite
//! existing keys, into a store that already holds 200,000 keys or more. Building the command
//! is inside the measured loop; it is small against the apply.
//!
//!     cargo bench -p tally-mvcc --bench apply

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tally_mvcc::StateMachine;
use tally_proto::etcdserverpb::PutRequest;
use tally_proto::tally_v1::{command::Op, Command};

const FILLED: u64 = 200_000;
const BATCH: u64 = 10_000;

/// Random-looking 8-byte keys, like `tally bench put` writes.
///
/// A multiply (Fibonacci hashing), not `tally_raft::mix`: the top 32 bits of `i * 0x9e37...`
/// never repeat for consecutive `i` (checked to two million), so "put new keys" only adds keys;
/// `mix`'s top bits collide by chance (2 in the first 210,000), turning some into overwrites.
fn key(i: u64) -> Vec<u8> {
    let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    format!("{:08x}", x >> 32).into_bytes()
}

fn put(index: u64, key: Vec<u8>) -> Command {
    Command {
        client_id: 1_000_000 + index,
        seq: 1,
        op: Some(Op::Put(PutRequest { key, value: vec![b'v'; 256], ..Default::default() })),
        ..Default::default()
    }
}

fn filled() -> StateMachine {
    let mut sm = StateMachine::default();
    for i in 1..=FILLED {
        sm.apply(i, &put(i, key(i)));
    }
    sm
}

fn apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply");
    group.sample_size(10).throughput(Throughput::Elements(BATCH));
    // One store throughout (a clone would share every key's history and make each
    // overwrite copy it); it grows by BATCH keys per iteration of the first benchmark.
    let mut sm = filled();
    let mut next = FILLED + 1;
    group.bench_function("put new keys", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                sm.apply(next, &put(next, key(next)));
                next += 1;
            }
        })
    });
    group.bench_function("put existing keys", |b| {
        b.iter(|| {
            for i in 1..=BATCH {
                sm.apply(next, &put(next, key(i)));
                next += 1;
            }
        })
    });
    group.finish();
}

criterion_group!(benches, apply);
criterion_main!(benches);
