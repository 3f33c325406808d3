//! The member's own counters and timings, bumped on the hot path with atomics only; the
//! `ops` layer reads and exposes them under etcd's metric names.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex};

use tally_raft::NodeId;

use crate::histogram::AtomicHistogram;

#[derive(Debug)]
pub struct Metrics {
    pub has_leader: AtomicI64,
    pub is_leader: AtomicI64,
    pub leader_changes: AtomicU64,
    pub proposals_committed: AtomicU64,
    pub proposals_applied: AtomicU64,
    pub proposals_pending: AtomicI64,
    pub proposals_failed: AtomicU64,
    /// Appending a batch to the write-ahead log, its fdatasync included.
    pub wal_fsync: AtomicHistogram,
    /// Writing a state machine snapshot to disk (etcd's backend commit is its equivalent:
    /// where the state machine becomes durable).
    pub snapshot_save: AtomicHistogram,
    pub snapshot_bytes: AtomicU64,
    /// Early campaigns started because the leader's connection was reset (its process died).
    pub fast_elections: AtomicU64,
    /// The state machine's size after the last apply, for the quota check without its lock.
    pub db_size: AtomicU64,
    /// A leader's heartbeat round trips, by follower (etcd's prober measures the same path).
    pub peer_round_trip: Mutex<BTreeMap<NodeId, Arc<AtomicHistogram>>>,
    /// Linearizable reads confirmed by one ReadIndex round, summed, and the rounds.
    pub read_index_reads: AtomicU64,
    pub read_index_rounds: AtomicU64,
    /// Times a ZooKeeper connection's writes in flight were proposed again under a new client
    /// id, the exactly-once table having forgotten the connection (`zk::pipeline`).
    pub zk_start_overs: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            has_leader: AtomicI64::new(0),
            is_leader: AtomicI64::new(0),
            leader_changes: AtomicU64::new(0),
            proposals_committed: AtomicU64::new(0),
            proposals_applied: AtomicU64::new(0),
            proposals_pending: AtomicI64::new(0),
            proposals_failed: AtomicU64::new(0),
            wal_fsync: AtomicHistogram::disk_seconds(),
            snapshot_save: AtomicHistogram::disk_seconds(),
            snapshot_bytes: AtomicU64::new(0),
            fast_elections: AtomicU64::new(0),
            db_size: AtomicU64::new(0),
            peer_round_trip: Mutex::new(BTreeMap::new()),
            read_index_reads: AtomicU64::new(0),
            read_index_rounds: AtomicU64::new(0),
            zk_start_overs: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// The histogram of heartbeat round trips to `peer` (callers keep it: one lookup per peer).
    pub fn peer_round_trip(&self, peer: NodeId) -> Arc<AtomicHistogram> {
        let mut histograms = self.peer_round_trip.lock().expect("metrics lock");
        histograms.entry(peer).or_insert_with(|| Arc::new(AtomicHistogram::round_trip_seconds())).clone()
    }
}
