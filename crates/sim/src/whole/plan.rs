//! A run's faults, drawn from its seed.

use crate::rng::Rng;

#[derive(Clone, Debug)]
pub struct Plan {
    pub drop: f64,
    pub duplicate: f64,
    pub delay_base_us: u64,
    pub delay_jitter_us: u64,
    pub partitions: bool,
    pub crashes: bool,
    /// Members added (as learners, then promoted) and removed through the node's API.
    pub membership: bool,
    /// Leadership handed over (transfer, and a stopping leader's step-down).
    pub transfers: bool,
    /// Chance, per call into a member, that its disk fails within the next few writes.
    pub disk_failures: f64,
    /// Chance, per connection reset announcement, that a live leader's link resets.
    pub spurious_resets: bool,
    pub fault_every_us: u64,
    pub snapshot_count: u64,
    /// The size-aware schedule (1.0), or etcd's (0.0).
    pub snapshot_log_ratio: f64,
    pub kv_clients: u64,
    pub lease_clients: u64,
    pub watchers: u64,
    /// ZooKeeper clients that pipeline their writes (several in flight on one connection).
    pub zk_pipelines: u64,
    /// An administrator enables auth early on; clients then write as a user with permissions.
    pub auth: bool,
}

impl Plan {
    pub fn draw(rng: &mut Rng) -> Self {
        let lossy = rng.chance(0.5);
        Plan {
            drop: if lossy { rng.pick(&[0.01, 0.05, 0.15]) } else { 0.0 },
            duplicate: if lossy { rng.pick(&[0.0, 0.02, 0.1]) } else { 0.0 },
            delay_base_us: rng.pick(&[100, 500, 2_000]),
            delay_jitter_us: rng.pick(&[100, 2_000, 10_000]),
            partitions: rng.chance(0.5),
            crashes: rng.chance(0.6),
            membership: rng.chance(0.3),
            transfers: rng.chance(0.3),
            disk_failures: if rng.chance(0.3) { 0.01 } else { 0.0 },
            spurious_resets: rng.chance(0.3),
            fault_every_us: rng.pick(&[150_000, 400_000, 1_000_000]),
            snapshot_count: rng.pick(&[10, 40, 200, 1_000_000]),
            snapshot_log_ratio: rng.pick(&[0.0, 1.0]),
            kv_clients: rng.range(2, 6),
            lease_clients: rng.range(0, 3),
            watchers: rng.range(1, 3),
            auth: rng.chance(0.5),
            zk_pipelines: rng.range(0, 2),
        }
    }
}
