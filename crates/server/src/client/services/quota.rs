//! etcd's space quota (`--quota-backend-bytes`): a write that would take the state machine past
//! it raises the NOSPACE alarm through the log and is refused; once raised, every member refuses
//! writes that need space until the alarm is disarmed (`etcdctl alarm disarm`), while reads,
//! deletes, compaction and lease revokes go on. Costs are etcd's estimates.

use tally_proto::etcdserverpb::request_op::Request as RequestOp;
use tally_proto::etcdserverpb::{alarm_request, AlarmRequest, AlarmType, PutRequest, TxnRequest};
use tally_proto::tally_v1::{command::Op, Command};
use tonic::Status;

use super::context::Context;

/// etcd's default quota, 2 GiB.
pub const DEFAULT_QUOTA_BYTES: u64 = 2 << 30;
/// etcd's estimate of a key's metadata, and of a lease.
const KV_OVERHEAD: u64 = 256;
pub const LEASE_COST: u64 = 64;

pub fn put_cost(p: &PutRequest) -> u64 {
    KV_OVERHEAD + p.key.len() as u64 + p.value.len() as u64
}

/// The larger branch's puts, nested txns included (etcd's `costTxn`).
pub fn txn_cost(t: &TxnRequest) -> u64 {
    let branch = |ops: &[tally_proto::etcdserverpb::RequestOp]| -> u64 {
        ops.iter()
            .map(|op| match &op.request {
                Some(RequestOp::RequestPut(p)) => put_cost(p),
                Some(RequestOp::RequestTxn(inner)) => txn_cost(inner),
                _ => 0,
            })
            .sum()
    };
    branch(&t.success).max(branch(&t.failure))
}

impl Context {
    /// Refuses a write of `cost` bytes that does not fit under the quota, raising NOSPACE first.
    pub async fn check_quota(&self, cost: u64) -> Result<(), Status> {
        let size = self.node.shared.metrics.db_size.load(std::sync::atomic::Ordering::Relaxed);
        if cost == 0 || size + cost < self.quota_bytes {
            return Ok(());
        }
        let raise = AlarmRequest {
            action: alarm_request::AlarmAction::Activate as i32,
            member_id: self.member_id,
            alarm: AlarmType::Nospace as i32,
        };
        let cmd = Command { client_id: self.request_ids.next(), seq: 1, op: Some(Op::Alarm(raise)) };
        // As in etcd, the write is refused whether or not the alarm could be raised now.
        if let Err(e) = self.submit(cmd).await {
            tracing::warn!("raising the NOSPACE alarm failed: {}", e.message());
        }
        Err(Status::resource_exhausted("etcdserver: mvcc: database space exceeded"))
    }
}

#[cfg(test)]
mod tests {
    use tally_proto::etcdserverpb::RequestOp as Op;

    use super::*;

    fn put(key: &str, value_len: usize) -> Op {
        let p = PutRequest { key: key.into(), value: vec![0; value_len], ..Default::default() };
        Op { request: Some(RequestOp::RequestPut(p)) }
    }

    #[test]
    fn txn_cost_is_the_larger_branch_of_puts_as_in_etcd() {
        let inner = TxnRequest { success: vec![put("b", 100)], ..Default::default() };
        let t = TxnRequest {
            success: vec![put("a", 10), Op { request: Some(RequestOp::RequestTxn(inner)) }],
            failure: vec![put("c", 50)],
            ..Default::default()
        };
        assert_eq!(txn_cost(&t), (256 + 1 + 10) + (256 + 1 + 100));
        assert_eq!(txn_cost(&TxnRequest::default()), 0);
    }
}
