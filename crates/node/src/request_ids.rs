//! Request ids minted by this member for requests that bring none. They must never repeat,
//! across requests or across restarts: the state machine treats a repeated (client id, seq)
//! as a retry and answers it from its session table without applying it. Each id is a
//! SplitMix64 output of a per-boot seed (member id, boot time in ns, process id) plus a
//! counter: distinct within a boot by construction, and across boots except with
//! probability ~2^-64 per pair.

use std::sync::atomic::{AtomicU64, Ordering};

use tally_raft::mix;

pub struct RequestIds {
    seed: u64,
    counter: AtomicU64,
}

impl RequestIds {
    pub fn new(member_id: u64) -> Self {
        Self::with_seed(Self::boot_seed(member_id))
    }

    /// A seed of this boot of this member: its id, the time in ns and the process id.
    pub fn boot_seed(member_id: u64) -> u64 {
        let boot = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        member_id ^ mix(boot.as_nanos() as u64) ^ mix((std::process::id() as u64) << 17)
    }

    /// Ids from a given seed: a boot's own ([`RequestIds::new`]), or the simulator's.
    pub fn with_seed(seed: u64) -> Self {
        Self { seed: mix(seed), counter: AtomicU64::new(0) }
    }

    /// A fresh client id (never 0, which means "no identity").
    pub fn next(&self) -> u64 {
        // SplitMix64 is a bijection of its counter, so distinct counters give distinct ids.
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        mix(self.seed.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15))).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ_within_and_across_boots() {
        let a = RequestIds::new(7);
        let first: Vec<u64> = (0..1000).map(|_| a.next()).collect();
        let mut sorted = first.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), first.len());
        // A restart of the same member moments later (same second) mints other ids.
        let b = RequestIds::new(7);
        assert!(!first.contains(&b.next()));
    }
}
