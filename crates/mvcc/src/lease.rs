//! Leases as replicated state: id, granted TTL and attached keys. Expiry is decided elsewhere (the leader
//! proposes revokes); nothing here reads a clock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::error::MvccError;

/// etcd's `lease.MaxLeaseTTL` (seconds).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// A granted lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The lease id (never 0).
    pub id: i64,
    /// The granted TTL in seconds (after raising it to the minimum TTL).
    pub ttl: i64,
    /// Keys currently attached, in key order.
    pub keys: BTreeSet<Arc<[u8]>>,
}

/// All granted leases.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Lessor {
    pub(crate) leases: BTreeMap<i64, Lease>,
    /// State of the deterministic id generator for grants with id 0.
    pub(crate) id_seed: u64,
}

impl Lessor {
    pub(crate) fn lookup(&self, id: i64) -> Option<&Lease> {
        self.leases.get(&id)
    }

    /// Grants a lease as etcd's `lessor.Grant` does; `id == 0` picks a fresh positive id deterministically.
    pub(crate) fn grant(&mut self, id: i64, ttl: i64, min_ttl: i64) -> Result<&Lease, MvccError> {
        let id = if id == 0 {
            loop {
                self.id_seed = self.id_seed.wrapping_add(1);
                let candidate = (tally_raft::mix(self.id_seed) & (i64::MAX as u64)) as i64;
                if candidate != 0 && !self.leases.contains_key(&candidate) {
                    break candidate;
                }
            }
        } else {
            id
        };
        if ttl > MAX_LEASE_TTL {
            return Err(MvccError::LeaseTtlTooLarge);
        }
        if self.leases.contains_key(&id) {
            return Err(MvccError::LeaseExists);
        }
        let ttl = ttl.max(min_ttl);
        Ok(self.leases.entry(id).or_insert(Lease { id, ttl, keys: BTreeSet::new() }))
    }

    pub(crate) fn attach(&mut self, id: i64, key: &Arc<[u8]>) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.keys.insert(key.clone());
        }
    }

    pub(crate) fn detach(&mut self, id: i64, key: &[u8]) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.keys.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lease ids picked for `id == 0` are replicated state (every member and every snapshot must
    /// agree on them), so the generator's sequence is pinned here value by value.
    #[test]
    fn generated_lease_ids_are_pinned() {
        let mut lessor = Lessor::default();
        let ids: Vec<i64> = (0..3).map(|_| lessor.grant(0, 10, 2).unwrap().id).collect();
        assert_eq!(ids, [1_227_844_342_346_046_657, 1_682_153_688_901_572_302, 2_092_789_425_003_139_053]);
        assert_eq!(lessor.id_seed, 3);

        // A candidate that is already taken is skipped, and the seed still advances past it.
        let mut lessor = Lessor::default();
        lessor.grant(1_682_153_688_901_572_302, 10, 2).unwrap();
        assert_eq!(lessor.grant(0, 10, 2).unwrap().id, 1_227_844_342_346_046_657);
        assert_eq!(lessor.grant(0, 10, 2).unwrap().id, 2_092_789_425_003_139_053);
        assert_eq!(lessor.id_seed, 3);

        // The seed wraps around rather than overflowing.
        let mut lessor = Lessor { id_seed: u64::MAX, ..Lessor::default() };
        assert_eq!(lessor.grant(0, 10, 2).unwrap().id, 7_070_836_379_803_831_727);
        assert_eq!(lessor.id_seed, 0);
    }
}
