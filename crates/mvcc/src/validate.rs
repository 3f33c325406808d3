//! Request validation as etcd's gRPC layer does it before proposing (`api/v3rpc/key.go`).

use std::collections::BTreeSet;

use tally_proto::etcdserverpb::request_op::Request;
use tally_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest};

use crate::error::MvccError;

/// `checkRangeRequest`.
pub fn check_range(r: &RangeRequest) -> Result<(), MvccError> {
    if r.key.is_empty() {
        return Err(MvccError::EmptyKey);
    }
    Ok(())
}

/// `checkPutRequest`.
pub fn check_put(r: &PutRequest) -> Result<(), MvccError> {
    if r.key.is_empty() {
        return Err(MvccError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(MvccError::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(MvccError::LeaseProvided);
    }
    Ok(())
}

/// `checkDeleteRequest`.
pub fn check_delete_range(r: &DeleteRangeRequest) -> Result<(), MvccError> {
    if r.key.is_empty() {
        return Err(MvccError::EmptyKey);
    }
    Ok(())
}

/// etcd's full Txn check: `checkTxnRequest` then `checkIntervals` on both branches.
pub fn check_txn(r: &TxnRequest, max_txn_ops: usize) -> Result<(), MvccError> {
    check_txn_request(r, max_txn_ops as i64)?;
    check_intervals(&r.success)?;
    check_intervals(&r.failure)?;
    Ok(())
}

fn check_txn_request(r: &TxnRequest, max_txn_ops: i64) -> Result<(), MvccError> {
    let opc = r.compare.len().max(r.success.len()).max(r.failure.len()) as i64;
    if opc > max_txn_ops {
        return Err(MvccError::TooManyOps);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(MvccError::EmptyKey);
    }
    for op in r.success.iter().chain(&r.failure) {
        check_request_op(op, max_txn_ops - opc)?;
    }
    Ok(())
}

fn check_request_op(op: &RequestOp, max_txn_ops: i64) -> Result<(), MvccError> {
    match &op.request {
        Some(Request::RequestRange(r)) => check_range(r),
        Some(Request::RequestPut(r)) => check_put(r),
        Some(Request::RequestDeleteRange(r)) => check_delete_range(r),
        Some(Request::RequestTxn(t)) => check_txn_request(t, max_txn_ops),
        // empty op: etcd answers ErrGRPCKeyNotFound
        None => Err(MvccError::KeyNotFound),
    }
}

/// A delete interval in etcd's "string affine" order, where an empty end is +infinity.
struct Interval {
    begin: Vec<u8>,
    end: Option<Vec<u8>>, // None: a point interval [begin, begin+"\0")
}

impl Interval {
    fn contains_point(&self, k: &[u8]) -> bool {
        match &self.end {
            None => self.begin.as_slice() == k,
            // [b, e) ∩ [k, k\0) ≠ ∅  ⟺  b <= k && k < e  (e empty = +inf)
            Some(e) => self.begin.as_slice() <= k && (e.is_empty() || k < e.as_slice()),
        }
    }
}

fn intersects(dels: &[Interval], k: &[u8]) -> bool {
    dels.iter().any(|d| d.contains_point(k))
}

/// `checkIntervals`: puts may not overlap each other or deletes in the same branch, recursively.
fn check_intervals(reqs: &[RequestOp]) -> Result<(BTreeSet<Vec<u8>>, Vec<Interval>), MvccError> {
    let mut dels: Vec<Interval> = Vec::new();
    for req in reqs {
        if let Some(Request::RequestDeleteRange(d)) = &req.request {
            let end = if d.range_end.is_empty() { None } else { Some(d.range_end.clone()) };
            dels.push(Interval { begin: d.key.clone(), end });
        }
    }
    let mut puts: BTreeSet<Vec<u8>> = BTreeSet::new();
    for req in reqs {
        let Some(Request::RequestTxn(t)) = &req.request else { continue };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || intersects(&dels, k) {
                return Err(MvccError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        for k in &puts_else {
            // a key also put by the then-branch is fine: the branches are exclusive
            if puts.contains(k) && !puts_then.contains(k) {
                return Err(MvccError::DuplicateKey);
            }
            if intersects(&dels, k) {
                return Err(MvccError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for req in reqs {
        if let Some(Request::RequestPut(p)) = &req.request {
            if puts.contains(&p.key) || intersects(&dels, &p.key) {
                return Err(MvccError::DuplicateKey);
            }
            puts.insert(p.key.clone());
        }
    }
    Ok((puts, dels))
}
