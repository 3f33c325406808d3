//! Throughput of the core alone: three nodes in memory, messages delivered synchronously, no
//! I/O. Each iteration proposes a batch of 256-byte commands on the leader and runs the
//! cluster until every node has applied them (a heartbeat carries the last commit index);
//! criterion reports committed entries per second.

use std::collections::VecDeque;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tally_raft::{Config, Message, Persisted, Raft, Role};

struct Cluster {
    nodes: Vec<Raft>,
    queue: VecDeque<Message>,
}

impl Cluster {
    fn new() -> Self {
        let nodes = (1..=3).map(|id| Raft::new(Config::new(id), Persisted::bootstrap([1, 2, 3])).unwrap()).collect();
        let mut cluster = Self { nodes, queue: VecDeque::new() };
        cluster.run();
        cluster.nodes[0].campaign();
        cluster.run_and_flush();
        assert_eq!(cluster.nodes[0].role(), Role::Leader);
        cluster
    }

    /// Runs to quiet, then lets a heartbeat carry the final commit index to the followers.
    fn run_and_flush(&mut self) -> usize {
        let mut applied = self.run();
        for _ in 0..Config::new(1).heartbeat_tick {
            self.nodes[0].tick();
        }
        applied += self.run();
        applied
    }

    /// Handles every Ready and delivers every message until the cluster is quiet.
    fn run(&mut self) -> usize {
        let mut applied = 0;
        loop {
            for node in &mut self.nodes {
                while node.has_ready() {
                    let ready = node.ready();
                    self.queue.extend(ready.messages);
                    self.queue.extend(ready.persisted_messages);
                    applied += ready.committed_entries.len();
                    node.advance();
                }
            }
            let Some(m) = self.queue.pop_front() else { return applied };
            self.nodes[m.to as usize - 1].step(m).unwrap();
        }
    }
}

fn commit_throughput(c: &mut Criterion) {
    let payload = Bytes::from(vec![7u8; 256]);
    let mut group = c.benchmark_group("commit");
    for batch in [1u64, 16, 256, 4096] {
        group.throughput(Throughput::Elements(batch));
        group.bench_with_input(BenchmarkId::new("3 nodes, batch", batch), &batch, |b, &batch| {
            let mut cluster = Cluster::new();
            b.iter(|| {
                for _ in 0..batch {
                    cluster.nodes[0].propose(payload.clone()).unwrap();
                }
                let applied = cluster.run_and_flush();
                assert_eq!(applied as u64, 3 * batch);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, commit_throughput);
criterion_main!(benches);
