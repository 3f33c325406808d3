//! etcd's alarms (NOSPACE, CORRUPT), raised and cleared through the log like any write, so every
//! member agrees on them and they survive restarts and snapshots. While NOSPACE is raised,
//! writes that need space are refused (etcd's capped applier); while CORRUPT is raised, every
//! write is (etcd's corrupt applier).

use std::collections::BTreeSet;

use tally_proto::etcdserverpb::alarm_request::AlarmAction;
use tally_proto::etcdserverpb::request_op::Request as Op;
use tally_proto::etcdserverpb::{AlarmMember, AlarmRequest, AlarmResponse, AlarmType, PutRequest, TxnRequest};

/// The raised alarms, as (alarm type, member id).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Alarms {
    pub(crate) raised: BTreeSet<(i32, u64)>,
}

impl Alarms {
    /// etcd's `applierV3backend.Alarm`: GET lists the alarms of a type (NONE: all); ACTIVATE and
    /// DEACTIVATE answer with the alarm they added or removed, or with nothing.
    pub fn apply(&mut self, req: &AlarmRequest) -> AlarmResponse {
        let member = |(alarm, member_id): (i32, u64)| AlarmMember { member_id, alarm };
        let alarms = match AlarmAction::try_from(req.action) {
            Ok(AlarmAction::Get) => self.list(req.alarm),
            Ok(AlarmAction::Activate) if req.alarm != AlarmType::None as i32 => self
                .raised
                .insert((req.alarm, req.member_id))
                .then(|| member((req.alarm, req.member_id)))
                .into_iter()
                .collect(),
            Ok(AlarmAction::Deactivate) => self
                .raised
                .remove(&(req.alarm, req.member_id))
                .then(|| member((req.alarm, req.member_id)))
                .into_iter()
                .collect(),
            _ => Vec::new(),
        };
        AlarmResponse { header: None, alarms }
    }

    /// The alarms of type `alarm` (NONE: every alarm), by type then member.
    pub fn list(&self, alarm: i32) -> Vec<AlarmMember> {
        self.raised
            .iter()
            .filter(|(t, _)| alarm == AlarmType::None as i32 || *t == alarm)
            .map(|&(alarm, member_id)| AlarmMember { member_id, alarm })
            .collect()
    }

    pub fn is_raised(&self, alarm: AlarmType) -> bool {
        self.raised.iter().any(|(t, _)| *t == alarm as i32)
    }
}

/// etcd's estimate of a key's metadata in its quota (`kvOverhead`).
const KV_OVERHEAD: u64 = 256;
/// etcd's estimate of a lease in its quota (`leaseOverhead`).
pub const LEASE_COST: u64 = 64;

/// What a put costs against the space quota (etcd's `costPut`).
pub fn put_cost(p: &PutRequest) -> u64 {
    KV_OVERHEAD + p.key.len() as u64 + p.value.len() as u64
}

/// What a txn costs: the larger branch's puts, nested txns included (etcd's `costTxn`). A txn
/// that costs nothing is let through while NOSPACE is raised.
pub fn txn_cost(t: &TxnRequest) -> u64 {
    let branch = |ops: &[tally_proto::etcdserverpb::RequestOp]| -> u64 {
        ops.iter()
            .map(|op| match &op.request {
                Some(Op::RequestPut(p)) => put_cost(p),
                Some(Op::RequestTxn(inner)) => txn_cost(inner),
                _ => 0,
            })
            .sum()
    };
    branch(&t.success).max(branch(&t.failure))
}

#[cfg(test)]
mod tests {
    use tally_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RequestOp};
    use tally_proto::tally_v1::{command::Op as CommandOp, Command};

    use super::*;
    use crate::{CommandResponse, MvccError, StateMachine};

    fn command(op: CommandOp) -> Command {
        Command { op: Some(op), ..Default::default() }
    }

    #[test]
    fn nospace_survives_a_snapshot_and_refuses_only_writes_that_need_space() {
        let mut sm = StateMachine::default();
        sm.apply(1, &command(CommandOp::Alarm(req(AlarmAction::Activate, AlarmType::Nospace, 3))));
        let mut sm = StateMachine::restore(&sm.snapshot()).unwrap();
        assert!(sm.alarms.is_raised(AlarmType::Nospace));
        let put = PutRequest { key: b"a".to_vec(), ..Default::default() };
        let refused = CommandResponse::Error(MvccError::NoSpace);
        assert_eq!(sm.apply(2, &command(CommandOp::Put(put.clone()))).response, refused);
        let txn = TxnRequest { failure: vec![RequestOp { request: Some(Op::RequestPut(put)) }], ..Default::default() };
        assert_eq!(sm.apply(3, &command(CommandOp::Txn(txn))).response, refused);
        let delete = DeleteRangeRequest { key: b"a".to_vec(), ..Default::default() };
        assert!(matches!(
            sm.apply(4, &command(CommandOp::DeleteRange(delete))).response,
            CommandResponse::DeleteRange(_)
        ));
        sm.apply(5, &command(CommandOp::Alarm(req(AlarmAction::Deactivate, AlarmType::Nospace, 3))));
        let put = PutRequest { key: b"a".to_vec(), ..Default::default() };
        assert!(matches!(sm.apply(6, &command(CommandOp::Put(put))).response, CommandResponse::Put(_)));
    }

    fn req(action: AlarmAction, alarm: AlarmType, member_id: u64) -> AlarmRequest {
        AlarmRequest { action: action as i32, member_id, alarm: alarm as i32 }
    }

    fn put(key: &str, value_len: usize) -> RequestOp {
        let p = PutRequest { key: key.into(), value: vec![0; value_len], ..Default::default() };
        RequestOp { request: Some(Op::RequestPut(p)) }
    }

    #[test]
    fn txn_cost_is_the_larger_branch_of_puts_as_in_etcd() {
        let inner = TxnRequest { success: vec![put("b", 100)], ..Default::default() };
        let t = TxnRequest {
            success: vec![put("a", 10), RequestOp { request: Some(Op::RequestTxn(inner)) }],
            failure: vec![put("c", 50)],
            ..Default::default()
        };
        assert_eq!(txn_cost(&t), (256 + 1 + 10) + (256 + 1 + 100));
        assert_eq!(txn_cost(&TxnRequest::default()), 0);
    }

    #[test]
    fn alarms_are_raised_listed_and_cleared_as_etcd_does() {
        let mut a = Alarms::default();
        let raised = a.apply(&req(AlarmAction::Activate, AlarmType::Nospace, 7));
        assert_eq!(raised.alarms, [AlarmMember { member_id: 7, alarm: AlarmType::Nospace as i32 }]);
        assert!(a.apply(&req(AlarmAction::Activate, AlarmType::Nospace, 7)).alarms.is_empty(), "already raised");
        assert!(a.apply(&req(AlarmAction::Activate, AlarmType::None, 7)).alarms.is_empty());
        a.apply(&req(AlarmAction::Activate, AlarmType::Corrupt, 9));
        assert_eq!(a.apply(&req(AlarmAction::Get, AlarmType::None, 0)).alarms.len(), 2);
        assert_eq!(a.apply(&req(AlarmAction::Get, AlarmType::Corrupt, 0)).alarms.len(), 1);
        assert!(a.is_raised(AlarmType::Nospace));
        assert!(a.apply(&req(AlarmAction::Deactivate, AlarmType::Nospace, 8)).alarms.is_empty(), "not raised by 8");
        assert_eq!(a.apply(&req(AlarmAction::Deactivate, AlarmType::Nospace, 7)).alarms.len(), 1);
        assert!(!a.is_raised(AlarmType::Nospace));
    }
}
