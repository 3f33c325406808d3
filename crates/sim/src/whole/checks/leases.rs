//! A kept-alive lease never expires early: no member applies a revoke the leader's lease
//! clock proposed (expiry) before the lease's TTL has run since the latest renewal a client
//! was told of. A renewal is dated by the request's sending, which is no later than the
//! leader's renewal it caused.

use std::collections::BTreeMap;

use super::Violation;

#[derive(Default)]
pub struct Leases {
    /// Per lease: its TTL and the latest acknowledged renewal's send time.
    renewed: BTreeMap<i64, (i64, u64)>,
    /// Leases already revoked (the first application decides).
    revoked: BTreeMap<i64, u64>,
    pub expiries: u64,
}

impl Leases {
    /// A grant or keep-alive sent at `sent_us` was acknowledged.
    pub fn renewed(&mut self, lease: i64, ttl_s: i64, sent_us: u64) {
        let entry = self.renewed.entry(lease).or_insert((ttl_s, sent_us));
        entry.1 = entry.1.max(sent_us);
    }

    pub fn revoked(&mut self, lease: i64, by_expiry: bool, now_us: u64, violations: &mut Vec<Violation>) {
        if self.revoked.insert(lease, now_us).is_some() || !by_expiry {
            return;
        }
        self.expiries += 1;
        let Some(&(ttl_s, sent_us)) = self.renewed.get(&lease) else { return };
        let due_us = sent_us + ttl_s as u64 * 1_000_000;
        if now_us < due_us {
            let detail = format!(
                "lease {lease} (TTL {ttl_s}s) was renewed at {:.3}s and expired at {:.3}s, {:.3}s early",
                sent_us as f64 / 1e6,
                now_us as f64 / 1e6,
                (due_us - now_us) as f64 / 1e6
            );
            violations.push(Violation { property: "a kept-alive lease never expires", time_us: now_us, detail });
        }
    }
}
