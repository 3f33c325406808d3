//! Lease expiry, decided by the leader alone and carried out through the log: when a lease
//! runs out the leader proposes its revoke, so every replica deletes the same keys at the same
//! revision. A new leader restarts every lease's clock with an extra election timeout, so a
//! failover never makes a lease expire early (etcd's lessor Promote). The time comes from the
//! caller, so the simulator runs the clock in virtual time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long a proposed revoke may stay unapplied before it is proposed again.
const REVOKE_RETRY: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct LeaseClock {
    expiry: BTreeMap<i64, Instant>,
    revoking: BTreeMap<i64, Instant>,
}

fn ttl(seconds: i64) -> Duration {
    Duration::from_secs(seconds.max(0) as u64)
}

impl LeaseClock {
    /// Became leader: every lease gets its full TTL plus `extend`.
    pub fn promote(&mut self, now: Instant, leases: impl Iterator<Item = (i64, i64)>, extend: Duration) {
        self.promote_for(now, leases.map(|(id, secs)| (id, ttl(secs))), extend);
    }

    /// [`LeaseClock::promote`] with each life given as a duration.
    pub fn promote_for(&mut self, now: Instant, lives: impl Iterator<Item = (i64, Duration)>, extend: Duration) {
        self.expiry = lives.map(|(id, life)| (id, now + life + extend)).collect();
        self.revoking.clear();
    }

    /// The simulator's canary of a leader that forgets the grace: every lease is due now.
    pub fn promote_expired(&mut self, now: Instant, leases: impl Iterator<Item = i64>) {
        self.expiry = leases.map(|id| (id, now)).collect();
        self.revoking.clear();
    }

    /// Lost leadership: only the leader keeps time.
    pub fn demote(&mut self) {
        self.expiry.clear();
        self.revoking.clear();
    }

    pub fn granted(&mut self, now: Instant, id: i64, secs: i64) {
        self.granted_for(now, id, ttl(secs));
    }

    /// A lease (or ZooKeeper session) that lives `life` from now.
    pub fn granted_for(&mut self, now: Instant, id: i64, life: Duration) {
        self.expiry.insert(id, now + life);
        self.revoking.remove(&id);
    }

    pub fn revoked(&mut self, id: i64) {
        self.expiry.remove(&id);
        self.revoking.remove(&id);
    }

    /// A keep-alive: the lease lives another full TTL.
    pub fn renew(&mut self, now: Instant, id: i64, secs: i64) {
        self.granted_for(now, id, ttl(secs));
    }

    pub fn remaining(&self, now: Instant, id: i64) -> Option<Duration> {
        self.expiry.get(&id).map(|at| at.saturating_duration_since(now))
    }

    /// Leases past their expiry whose revoke is not already on its way.
    pub fn expired(&mut self, now: Instant) -> Vec<i64> {
        let due: Vec<i64> = self
            .expiry
            .iter()
            .filter(|(id, &at)| at <= now && self.revoking.get(id).is_none_or(|&sent| now >= sent + REVOKE_RETRY))
            .map(|(&id, _)| id)
            .collect();
        for &id in &due {
            self.revoking.insert(id, now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_reported_once_until_retry() {
        let mut clock = LeaseClock::default();
        let now = Instant::now();
        clock.granted(now, 1, 0);
        clock.granted(now, 2, 60);
        assert_eq!(clock.expired(now), vec![1]);
        assert!(clock.expired(now).is_empty(), "a revoke is already on its way");
        assert_eq!(clock.expired(now + REVOKE_RETRY), vec![1], "proposed again after the retry delay");
        clock.renew(now, 1, 60);
        assert!(clock.expired(now).is_empty());
        clock.revoked(2);
        assert_eq!(clock.remaining(now, 2), None);
    }

    #[test]
    fn promotion_extends_every_lease() {
        let mut clock = LeaseClock::default();
        let now = Instant::now();
        clock.promote(now, [(7, 1)].into_iter(), Duration::from_secs(5));
        assert_eq!(clock.remaining(now, 7), Some(Duration::from_secs(6)));
        clock.demote();
        assert_eq!(clock.remaining(now, 7), None);
    }
}
