//! etcd's space quota (`--quota-backend-bytes`): a write that would take the state machine past
//! it raises the NOSPACE alarm through the log and is refused; once raised, every member refuses
//! writes that need space until the alarm is disarmed (`etcdctl alarm disarm`), while reads,
//! deletes, compaction and lease revokes go on. Costs are etcd's estimates
//! (`tally_mvcc::put_cost`, `txn_cost`, `LEASE_COST`), the same the capped applier uses.

use tally_mvcc::MvccError;
use tally_proto::etcdserverpb::AlarmType;
use tonic::Status;

use super::context::Context;
use crate::client::errors;

/// etcd's default quota, 2 GiB.
pub const DEFAULT_QUOTA_BYTES: u64 = 2 << 30;

impl Context {
    /// Refuses a write of `cost` bytes that does not fit under the quota, raising NOSPACE first.
    pub async fn check_quota(&self, cost: u64) -> Result<(), Status> {
        let size = self.node.shared.metrics.db_size.load(std::sync::atomic::Ordering::Relaxed);
        if cost == 0 || size + cost < self.quota_bytes {
            return Ok(());
        }
        // As in etcd, the write is refused whether or not the alarm could be raised now.
        self.raise_alarm(self.member_id, AlarmType::Nospace).await;
        Err(errors::from_mvcc(&MvccError::NoSpace))
    }
}
