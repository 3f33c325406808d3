//! A ZooKeeper session never expires while its client is heard from: no leader closes a
//! session for silence (its `ZkSessionExpired` report) within the session's timeout after a
//! leader of the newest term heard the client (a ping reached it, directly or forwarded).
//! Pings a deposed leader took do not count: its successor never heard them, as ZooKeeper
//! does not hear a client whose server is cut off from the quorum. Whatever a predecessor
//! heard, a new leader's grace (a timeout and an election timeout from its promotion) covers.

use std::collections::BTreeMap;

use super::Violation;

#[derive(Default)]
pub struct ZkSessions {
    /// Per session: when a leader of the newest term last heard its client.
    heard: BTreeMap<i64, u64>,
    pub expiries: u64,
}

impl ZkSessions {
    pub fn heard(&mut self, session: i64, now_us: u64) {
        self.heard.insert(session, now_us);
    }

    pub fn expired(&mut self, session: i64, timeout_ms: i32, now_us: u64, violations: &mut Vec<Violation>) {
        self.expiries += 1;
        let Some(&heard_us) = self.heard.get(&session) else { return };
        let due_us = heard_us + timeout_ms as u64 * 1_000;
        if now_us < due_us {
            let detail = format!(
                "session {session:#x} ({timeout_ms} ms) was heard from by the leader at {:.3}s and expired at {:.3}s, {:.3}s early",
                heard_us as f64 / 1e6,
                now_us as f64 / 1e6,
                (due_us - now_us) as f64 / 1e6
            );
            violations.push(Violation {
                property: "a session never expires while its client is heard from",
                time_us: now_us,
                detail,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expiry_within_the_timeout_of_a_ping_is_caught() {
        let mut sessions = ZkSessions::default();
        let mut violations = Vec::new();
        sessions.heard(7, 1_000_000);
        sessions.expired(7, 4000, 4_999_999, &mut violations);
        assert_eq!(violations.len(), 1);
        sessions.expired(7, 4000, 5_000_000, &mut violations);
        sessions.expired(8, 4000, 1, &mut violations);
        assert_eq!((violations.len(), sessions.expiries), (1, 3));
    }
}
