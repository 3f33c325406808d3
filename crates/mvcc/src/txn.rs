//! Transactions: etcd's `applierV3backend.Txn` — compares evaluated up front against the state before the
//! txn (nested ones too), checks, then the chosen branches applied as one write transaction; or, for a
//! txn without writes, read on a shared borrow ([`Store::read_only_txn`]).

use std::cmp::Ordering;

use tally_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use tally_proto::etcdserverpb::request_op::Request;
use tally_proto::etcdserverpb::response_op::Response;
use tally_proto::etcdserverpb::{Compare, RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse};
use tally_proto::mvccpb::{Event, KeyValue};

use crate::error::MvccError;
use crate::store::{header, KeyRange, Store, WriteTxn};
use crate::validate;

/// The outcome of a txn's compares, and of its nested txns' (in the chosen branch, in order).
#[derive(Debug)]
struct Path {
    succeeded: bool,
    children: Vec<Path>,
}

fn branch(rt: &TxnRequest, succeeded: bool) -> &[RequestOp] {
    if succeeded {
        &rt.success
    } else {
        &rt.failure
    }
}

/// etcd's `isTxnReadonly`: no put or delete anywhere in either branch, recursively.
pub(crate) fn is_txn_readonly(rt: &TxnRequest) -> bool {
    rt.success.iter().chain(&rt.failure).all(|op| match &op.request {
        Some(Request::RequestPut(_)) | Some(Request::RequestDeleteRange(_)) => false,
        Some(Request::RequestTxn(t)) => is_txn_readonly(t),
        _ => true,
    })
}

/// etcd's `compareKV`.
fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    let target = CompareTarget::try_from(c.target).ok();
    let ord = match target {
        Some(CompareTarget::Value) => {
            let v: &[u8] = match &c.target_union {
                Some(TargetUnion::Value(v)) => v,
                _ => &[],
            };
            kv.value.as_slice().cmp(v)
        }
        Some(CompareTarget::Create) => {
            let r = match c.target_union {
                Some(TargetUnion::CreateRevision(r)) => r,
                _ => 0,
            };
            kv.create_revision.cmp(&r)
        }
        Some(CompareTarget::Mod) => {
            let r = match c.target_union {
                Some(TargetUnion::ModRevision(r)) => r,
                _ => 0,
            };
            kv.mod_revision.cmp(&r)
        }
        Some(CompareTarget::Version) => {
            let r = match c.target_union {
                Some(TargetUnion::Version(r)) => r,
                _ => 0,
            };
            kv.version.cmp(&r)
        }
        Some(CompareTarget::Lease) => {
            let r = match c.target_union {
                Some(TargetUnion::Lease(r)) => r,
                _ => 0,
            };
            kv.lease.cmp(&r)
        }
        None => Ordering::Equal,
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ord == Ordering::Equal,
        Ok(CompareResult::NotEqual) => ord != Ordering::Equal,
        Ok(CompareResult::Greater) => ord == Ordering::Greater,
        Ok(CompareResult::Less) => ord == Ordering::Less,
        Err(_) => true,
    }
}

impl Store {
    /// etcd's `applyCompare`: every key in range must satisfy the compare; an absent key compares as a
    /// zero KeyValue, except that a VALUE compare on no keys fails.
    fn apply_compare(&self, c: &Compare) -> bool {
        let kvs = self.live_in(KeyRange::new(&c.key, &c.range_end));
        if kvs.is_empty() {
            if c.target == CompareTarget::Value as i32 {
                return false;
            }
            return compare_kv(c, &KeyValue::default());
        }
        kvs.iter().all(|kv| compare_kv(c, kv))
    }

    fn compare_to_path(&self, rt: &TxnRequest) -> Path {
        let succeeded = rt.compare.iter().all(|c| self.apply_compare(c));
        let children = branch(rt, succeeded)
            .iter()
            .filter_map(|op| match &op.request {
                Some(Request::RequestTxn(t)) => Some(self.compare_to_path(t)),
                _ => None,
            })
            .collect();
        Path { succeeded, children }
    }

    fn check_requests(
        &self,
        rt: &TxnRequest,
        path: &Path,
        f: &dyn Fn(&Store, &RequestOp) -> Result<(), MvccError>,
    ) -> Result<(), MvccError> {
        let mut children = path.children.iter();
        for op in branch(rt, path.succeeded) {
            if let Some(Request::RequestTxn(t)) = &op.request {
                let child = children.next().expect("path has one entry per nested txn");
                self.check_requests(t, child, f)?;
                continue;
            }
            f(self, op)?;
        }
        Ok(())
    }

    fn check_request_range(&self, op: &RequestOp) -> Result<(), MvccError> {
        let Some(Request::RequestRange(r)) = &op.request else { return Ok(()) };
        if r.revision == 0 {
            Ok(())
        } else if r.revision > self.current_rev {
            Err(MvccError::FutureRev)
        } else if r.revision < self.compact_rev {
            Err(MvccError::Compacted)
        } else {
            Ok(())
        }
    }

    /// Applies a Txn (validated as etcd's gRPC layer does, but for the number of ops: that limit
    /// is `--max-txn-ops` of the member that took the request, as in etcd, so that members with
    /// different limits, or snapshots from older ones, apply the same log alike). Returns the
    /// response and the events of its writes.
    pub fn txn(&mut self, rt: &TxnRequest) -> Result<(TxnResponse, Vec<Event>), MvccError> {
        validate::check_txn(rt, i64::MAX as usize)?;
        let is_write = !is_txn_readonly(rt);
        let path = self.compare_to_path(rt);
        if is_write {
            self.check_requests(rt, &path, &|s, op| match &op.request {
                Some(Request::RequestPut(p)) => s.check_txn_put(p),
                _ => Ok(()),
            })?;
        }
        self.check_requests(rt, &path, &|s, op| s.check_request_range(op))?;
        let mut txn = self.begin_write();
        let mut resp = self.apply_txn(&mut txn, rt, &path);
        let rev = txn.read_rev();
        let events = self.end_write(txn);
        resp.header = header(rev);
        Ok((resp, events))
    }

    /// Evaluates a txn without writes (no put or delete range, nested txns included) on a shared
    /// borrow, so that reads may serve it under the state machine's read lock: the same response
    /// as [`Store::txn`] gives it (header revision, compares, range responses, nested txns) and the
    /// same errors, in the same order (validation, then a range at a future or compacted revision
    /// in the chosen branches).
    ///
    /// # Panics
    ///
    /// If the txn has a put or a delete range anywhere (the caller decides it is read-only first).
    pub fn read_only_txn(&self, rt: &TxnRequest) -> Result<TxnResponse, MvccError> {
        assert!(is_txn_readonly(rt), "read_only_txn: the txn writes");
        validate::check_txn(rt, i64::MAX as usize)?;
        let path = self.compare_to_path(rt);
        self.check_requests(rt, &path, &|s, op| s.check_request_range(op))?;
        let mut resp = self.read_txn(rt, &path);
        // Without writes, reads in a write transaction see the current revision.
        resp.header = header(self.current_rev);
        Ok(resp)
    }

    /// `apply_txn` for a txn without writes.
    fn read_txn(&self, rt: &TxnRequest, path: &Path) -> TxnResponse {
        let mut children = path.children.iter();
        let ops = branch(rt, path.succeeded);
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match &op.request {
                Some(Request::RequestRange(r)) => {
                    // checked above; cannot fail
                    Some(Response::ResponseRange(self.range_at(r, self.current_rev).unwrap_or_default()))
                }
                Some(Request::RequestTxn(t)) => {
                    let child = children.next().expect("path has one entry per nested txn");
                    Some(Response::ResponseTxn(self.read_txn(t, child)))
                }
                Some(Request::RequestPut(_) | Request::RequestDeleteRange(_)) => {
                    unreachable!("read_only_txn checked that the txn has no writes")
                }
                None => None,
            };
            responses.push(ResponseOp { response });
        }
        TxnResponse { header: Some(ResponseHeader::default()), succeeded: path.succeeded, responses }
    }

    fn apply_txn(&mut self, txn: &mut WriteTxn, rt: &TxnRequest, path: &Path) -> TxnResponse {
        let mut children = path.children.iter();
        let ops = branch(rt, path.succeeded);
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match &op.request {
                Some(Request::RequestRange(r)) => {
                    // checked above; cannot fail
                    Some(Response::ResponseRange(self.range_at(r, txn.read_rev()).unwrap_or_default()))
                }
                Some(Request::RequestPut(p)) => Some(Response::ResponsePut(self.put_in(txn, p))),
                Some(Request::RequestDeleteRange(d)) => {
                    Some(Response::ResponseDeleteRange(self.delete_range_in(txn, d)))
                }
                Some(Request::RequestTxn(t)) => {
                    let child = children.next().expect("path has one entry per nested txn");
                    Some(Response::ResponseTxn(self.apply_txn(txn, t, child)))
                }
                None => None,
            };
            responses.push(ResponseOp { response });
        }
        // nested txns carry an empty header, as etcd's `newTxnResp`; the caller sets the top-level one
        TxnResponse { header: Some(ResponseHeader::default()), succeeded: path.succeeded, responses }
    }
}

#[cfg(test)]
mod tests;
