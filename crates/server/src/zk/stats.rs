//! The counters srvr, stat and mntr report, as ZooKeeper's ServerStats keeps them: packets
//! received and sent (notifications included), requests read but not yet answered, and each
//! request's latency from its arrival to its answer, in milliseconds.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

#[derive(Debug)]
pub struct ZkStats {
    received: AtomicU64,
    sent: AtomicU64,
    outstanding: AtomicI64,
    latency_count: AtomicU64,
    latency_total_us: AtomicU64,
    latency_min_us: AtomicU64,
    latency_max_us: AtomicU64,
}

impl Default for ZkStats {
    fn default() -> Self {
        Self {
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            outstanding: AtomicI64::new(0),
            latency_count: AtomicU64::new(0),
            latency_total_us: AtomicU64::new(0),
            latency_min_us: AtomicU64::new(u64::MAX),
            latency_max_us: AtomicU64::new(0),
        }
    }
}

/// A reading of the counters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reading {
    pub received: u64,
    pub sent: u64,
    pub outstanding: i64,
    pub latency_min_ms: u64,
    pub latency_avg_ms: f64,
    pub latency_max_ms: u64,
}

impl ZkStats {
    /// A request arrived: it is outstanding until answered or abandoned. Returns its arrival.
    pub fn request_received(&self) -> Instant {
        self.received.fetch_add(1, Relaxed);
        self.outstanding.fetch_add(1, Relaxed);
        Instant::now()
    }

    /// The request that arrived at `arrived` was answered.
    pub fn request_answered(&self, arrived: Instant) {
        let us = arrived.elapsed().as_micros().min(u64::MAX as u128) as u64;
        self.sent.fetch_add(1, Relaxed);
        self.outstanding.fetch_sub(1, Relaxed);
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_total_us.fetch_add(us, Relaxed);
        self.latency_min_us.fetch_min(us, Relaxed);
        self.latency_max_us.fetch_max(us, Relaxed);
    }

    /// `count` requests will never be answered: their connection ended.
    pub fn requests_abandoned(&self, count: u64) {
        self.outstanding.fetch_sub(count as i64, Relaxed);
    }

    /// A packet that answers no request of the count (a session's handshake, a notification).
    pub fn packet_received(&self) {
        self.received.fetch_add(1, Relaxed);
    }

    pub fn packet_sent(&self) {
        self.sent.fetch_add(1, Relaxed);
    }

    pub fn read(&self) -> Reading {
        let count = self.latency_count.load(Relaxed);
        let total_us = self.latency_total_us.load(Relaxed);
        let (min_us, max_us) = match count {
            0 => (0, 0),
            _ => (self.latency_min_us.load(Relaxed), self.latency_max_us.load(Relaxed)),
        };
        Reading {
            received: self.received.load(Relaxed),
            sent: self.sent.load(Relaxed),
            outstanding: self.outstanding.load(Relaxed).max(0),
            latency_min_ms: min_us / 1000,
            latency_avg_ms: if count == 0 { 0.0 } else { total_us as f64 / count as f64 / 1000.0 },
            latency_max_ms: max_us / 1000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_server_reports_zeros() {
        let r = ZkStats::default().read();
        assert_eq!((r.received, r.sent, r.outstanding, r.latency_min_ms, r.latency_max_ms), (0, 0, 0, 0, 0));
        assert_eq!(r.latency_avg_ms, 0.0);
    }

    #[test]
    fn requests_count_until_answered_with_their_latencies() {
        let stats = ZkStats::default();
        stats.packet_received();
        stats.packet_sent();
        let first = stats.request_received();
        let second = stats.request_received();
        stats.request_received();
        assert_eq!(stats.read().outstanding, 3);
        stats.requests_abandoned(1);
        std::thread::sleep(std::time::Duration::from_millis(2));
        stats.request_answered(first);
        stats.request_answered(second);
        stats.packet_sent();
        let r = stats.read();
        assert_eq!((r.received, r.sent, r.outstanding), (4, 4, 0));
        assert!(r.latency_min_ms >= 2 && r.latency_max_ms >= r.latency_min_ms, "{r:?}");
        assert!(r.latency_avg_ms >= 2.0, "{r:?}");
    }
}
