//! Bytes to and from each peer and failed sends, for etcd's `etcd_network_peer_*` metrics:
//! atomics per peer, looked up once per connection, not per frame.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tally_raft::NodeId;

#[derive(Debug, Default)]
pub struct SentCounters {
    pub bytes: AtomicU64,
    /// Frames dropped (a full backlog, a lost connection's queue) and failed connection attempts.
    pub failures: AtomicU64,
}

#[derive(Debug, Default)]
pub struct PeerTraffic {
    sent: Mutex<BTreeMap<NodeId, Arc<SentCounters>>>,
    received: Mutex<BTreeMap<NodeId, Arc<AtomicU64>>>,
}

impl PeerTraffic {
    pub fn to(&self, peer: NodeId) -> Arc<SentCounters> {
        self.sent.lock().expect("traffic lock").entry(peer).or_default().clone()
    }

    pub fn from(&self, peer: NodeId) -> Arc<AtomicU64> {
        self.received.lock().expect("traffic lock").entry(peer).or_default().clone()
    }

    /// Bytes sent to each peer, as (peer, bytes).
    pub fn sent_bytes(&self) -> Vec<(NodeId, u64)> {
        self.sent.lock().expect("traffic lock").iter().map(|(id, c)| (*id, c.bytes.load(Ordering::Relaxed))).collect()
    }

    /// Failed sends to each peer, as (peer, failures).
    pub fn sent_failures(&self) -> Vec<(NodeId, u64)> {
        let sent = self.sent.lock().expect("traffic lock");
        sent.iter().map(|(id, c)| (*id, c.failures.load(Ordering::Relaxed))).collect()
    }

    /// Bytes received from each peer, as (peer, bytes).
    pub fn received_bytes(&self) -> Vec<(NodeId, u64)> {
        self.received.lock().expect("traffic lock").iter().map(|(id, b)| (*id, b.load(Ordering::Relaxed))).collect()
    }
}
