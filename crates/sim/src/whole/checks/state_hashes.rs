//! Every member that applied index i has the same state at i: the same revision and the same
//! `HashKV` (etcd's hash of every key-value revision and the compaction point), and the same
//! whole state machine (leases, client sessions, auth, alarms too), compared by a hash of its
//! snapshot encoding.

use std::collections::BTreeMap;

use tally_mvcc::StateMachine;
use tally_raft::NodeId;

use super::Violation;

/// What is compared: (revision, compact revision, HashKV, hash of the whole state).
type Fingerprint = (i64, i64, u32, u64);

#[derive(Default)]
pub struct StateHashes {
    /// Per applied index: its fingerprint and the member that reported it.
    by_index: BTreeMap<u64, (Fingerprint, NodeId)>,
}

impl StateHashes {
    pub fn observe(&mut self, member: NodeId, sm: &StateMachine, now_us: u64, violations: &mut Vec<Violation>) {
        let index = sm.applied_index();
        // The ZooKeeper tree's own invariants: children and parents agree, every ephemeral's
        // session exists (no ephemeral outlives its session), stats match the nodes.
        if let Err(e) = sm.zk.check_invariants() {
            let detail = format!("member {member} at index {index}: ZooKeeper tree: {e}");
            violations.push(Violation { property: "the ZooKeeper tree is consistent", time_us: now_us, detail });
        }
        let whole = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::hash::DefaultHasher::new();
            sm.snapshot().hash(&mut hasher);
            hasher.finish()
        };
        let hash = match sm.hash_kv(0) {
            Ok(h) => (h.revision, h.compact_revision, h.hash, whole),
            Err(e) => {
                let detail = format!("member {member} at index {index}: HashKV failed: {e}");
                return violations.push(Violation { property: "state hashes agree", time_us: now_us, detail });
            }
        };
        let (first, by) = self.by_index.entry(index).or_insert((hash, member));
        if *first != hash {
            let detail = format!(
                "index {index}: member {member} has (revision, compacted, HashKV, state hash) {hash:?}, member {by} had {first:?}"
            );
            violations.push(Violation { property: "state hashes agree", time_us: now_us, detail });
        }
    }

    pub fn indexes(&self) -> usize {
        self.by_index.len()
    }
}
