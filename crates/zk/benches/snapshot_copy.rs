//! What a snapshot's copy of the znode tree costs the Raft thread, and what the writes after it
//! cost: on a tree of ~140 MB as a snapshot (40k children of 1 KB under /big, and 300k of 200
//! bytes three levels down under /deep), the clone, the first create under /big while the clone is alive, and
//! create and setData throughput with no clone; and the snapshot's encoding, on the snapshot
//! thread.
//!
//!     cargo bench -p tally-zk --bench snapshot_copy

use std::hint::black_box;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use tally_zk::proto::{Acl, CreateRequest, DeleteRequest, SetDataRequest, WriteOp};
use tally_zk::{Outcome, Write, ZkCommand, ZkState};

const BIG_CHILDREN: usize = 40_000;
const BIG_DATA_BYTES: usize = 1024;
/// /deep/aNN/bNN/cNNN: 20 x 25 x 600 leaves.
const DEEP_FANOUT: [usize; 3] = [20, 25, 600];
const DEEP_DATA_BYTES: usize = 200;

/// A state and the zxid and session its next write uses.
struct Tree {
    state: ZkState,
    zxid: i64,
    session: i64,
}

impl Tree {
    fn build() -> Tree {
        let mut tree = Tree { state: ZkState::new(), zxid: 1, session: 0 };
        let created = tree.apply(ZkCommand::CreateSession { timeout_ms: 30_000, password: [0; 16] });
        let Outcome::SessionCreated { session } = created else { panic!("no session: {created:?}") };
        tree.session = session;
        tree.create("/big".into(), 0);
        for i in 0..BIG_CHILDREN {
            tree.create(format!("/big/n{i:06}"), BIG_DATA_BYTES);
        }
        tree.create("/deep".into(), 0);
        for a in 0..DEEP_FANOUT[0] {
            tree.create(format!("/deep/a{a:02}"), 0);
            for b in 0..DEEP_FANOUT[1] {
                tree.create(format!("/deep/a{a:02}/b{b:02}"), 0);
                for c in 0..DEEP_FANOUT[2] {
                    tree.create(format!("/deep/a{a:02}/b{b:02}/c{c:03}"), DEEP_DATA_BYTES);
                }
            }
        }
        let snapshot_mb = tree.state.encode_snapshot().len() >> 20;
        eprintln!("tree: {} nodes, snapshot {snapshot_mb} MB, process RSS {} MB", tree.state.node_count(), rss_mb());
        tree
    }

    fn apply(&mut self, command: ZkCommand) -> Outcome {
        let outcome = self.state.apply(self.zxid, 1_000, &command).outcome;
        self.zxid += 1;
        outcome
    }

    fn write(&mut self, op: WriteOp) {
        let outcome =
            self.apply(ZkCommand::Txn { session: self.session, owner: 0, auth: vec![], write: Write::One(op) });
        assert!(matches!(outcome, Outcome::Reply(Ok(_))), "{outcome:?}");
    }

    fn create(&mut self, path: String, data_bytes: usize) {
        let data = Some(vec![7; data_bytes]);
        self.write(WriteOp::Create(CreateRequest { path, data, acl: Acl::open_unsafe(), flags: 0 }));
    }

    fn set_data(&mut self, path: String) {
        self.write(WriteOp::SetData(SetDataRequest { path, data: Some(vec![8; BIG_DATA_BYTES]), version: -1 }));
    }

    fn delete(&mut self, path: String) {
        self.write(WriteOp::Delete(DeleteRequest { path, version: -1 }));
    }
}

fn rss_mb() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    (pages * 4096) >> 20
}

fn snapshot_copy(c: &mut Criterion) {
    let mut tree = Tree::build();
    let mut group = c.benchmark_group("zk_snapshot");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    // The snapshot thread drops the copy, not the Raft thread.
    group.bench_function("clone", |b| b.iter_with_large_drop(|| tree.state.clone()));
    // On the snapshot thread, which lists the nodes in path order.
    group.bench_function("encode", |b| b.iter_with_large_drop(|| tree.state.encode_snapshot()));
    let mut next = 0;
    group.bench_function("first_create_under_big_after_clone", |b| {
        b.iter_custom(|iters| {
            time_after_clone(&mut tree, iters, |tree| {
                next += 1;
                tree.create(format!("/big/x{next:08}"), BIG_DATA_BYTES);
            })
        })
    });
    let mut i = 0;
    group.bench_function("first_set_data_after_clone", |b| {
        b.iter_custom(|iters| {
            time_after_clone(&mut tree, iters, |tree| {
                i = (i + 7919) % BIG_CHILDREN;
                tree.set_data(format!("/big/n{i:06}"));
            })
        })
    });
    group.finish();

    let mut group = c.benchmark_group("zk_apply");
    // A batch creates under a fresh parent, then deletes what it made, so the tree keeps its size.
    let mut batch = 0;
    group.bench_function("create", |b| {
        b.iter_custom(|iters| {
            batch += 1;
            tree.create(format!("/batch{batch}"), 0);
            let start = Instant::now();
            for i in 0..iters {
                tree.create(format!("/batch{batch}/n{i}"), BIG_DATA_BYTES);
            }
            let spent = start.elapsed();
            (0..iters).for_each(|i| tree.delete(format!("/batch{batch}/n{i}")));
            tree.delete(format!("/batch{batch}"));
            spent
        })
    });
    let mut i = 0;
    group.bench_function("set_data", |b| {
        b.iter_batched(
            || {
                i = (i + 7919) % BIG_CHILDREN;
                format!("/big/n{i:06}")
            },
            |path| tree.set_data(path),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// The time `write` takes `iters` times, each right after a clone that it outlives.
fn time_after_clone(tree: &mut Tree, iters: u64, mut write: impl FnMut(&mut Tree)) -> Duration {
    let mut spent = Duration::ZERO;
    for _ in 0..iters {
        let copy = tree.state.clone();
        let start = Instant::now();
        write(tree);
        spent += start.elapsed();
        drop(black_box(copy));
    }
    spent
}

criterion_group!(benches, snapshot_copy);
criterion_main!(benches);
