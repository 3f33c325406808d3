//! Whether a KV or lease request may run, as etcd's auth applier and read path decide it: every
//! key a request reads or writes, every compare and op of a txn (nested ones too), and the keys
//! attached to a lease it writes under or revokes.

use tally_proto::etcdserverpb::{request_op, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest};

use super::{Access, AuthInfo, AuthStore};
use crate::error::MvccError;
use crate::store::Store;

type Result = std::result::Result<(), MvccError>;

impl AuthStore {
    /// A range (etcd checks it before reading).
    pub fn check_range(&self, who: &AuthInfo, r: &RangeRequest) -> Result {
        self.check(who, Access::Read, &r.key, &r.range_end)
    }

    /// etcd's `checkPutAuth`.
    pub fn check_put(&self, who: &AuthInfo, r: &PutRequest, store: &Store) -> Result {
        self.check(who, Access::Write, &r.key, &[])?;
        self.check_lease_writes(who, r.lease, store)?;
        if r.prev_kv {
            self.check(who, Access::Read, &r.key, &[])?;
        }
        Ok(())
    }

    /// A delete, and its read when it returns the deleted pairs.
    pub fn check_delete(&self, who: &AuthInfo, r: &DeleteRangeRequest) -> Result {
        self.check(who, Access::Write, &r.key, &r.range_end)?;
        if r.prev_kv {
            self.check(who, Access::Read, &r.key, &r.range_end)?;
        }
        Ok(())
    }

    /// etcd's `checkTxnAuth`: compares, then both branches, whichever runs.
    pub fn check_txn(&self, who: &AuthInfo, r: &TxnRequest, store: &Store) -> Result {
        for c in &r.compare {
            self.check(who, Access::Read, &c.key, &c.range_end)?;
        }
        self.check_ops(who, &r.success, store)?;
        self.check_ops(who, &r.failure, store)
    }

    fn check_ops(&self, who: &AuthInfo, ops: &[RequestOp], store: &Store) -> Result {
        for op in ops {
            match &op.request {
                Some(request_op::Request::RequestRange(r)) => self.check_range(who, r)?,
                Some(request_op::Request::RequestPut(r)) => self.check_put(who, r, store)?,
                Some(request_op::Request::RequestDeleteRange(r)) => {
                    // etcd checks the read of a delete with prev_kv first, here.
                    if r.prev_kv {
                        self.check(who, Access::Read, &r.key, &r.range_end)?;
                    }
                    self.check(who, Access::Write, &r.key, &r.range_end)?;
                }
                Some(request_op::Request::RequestTxn(t)) => self.check_txn(who, t, store)?,
                None => {}
            }
        }
        Ok(())
    }

    /// etcd's `checkLeasePuts`: writing under (or revoking) a lease writes every key attached to
    /// it; root may always.
    pub fn check_lease_writes(&self, who: &AuthInfo, lease: i64, store: &Store) -> Result {
        self.check_lease_keys(who, lease, store, Access::Write)
    }

    /// etcd's `checkLeaseTimeToLive`: reading a lease reads its keys; root may always.
    pub fn check_lease_reads(&self, who: &AuthInfo, lease: i64, store: &Store) -> Result {
        self.check_lease_keys(who, lease, store, Access::Read)
    }

    fn check_lease_keys(&self, who: &AuthInfo, lease: i64, store: &Store, access: Access) -> Result {
        let Some(lease) = store.lease(lease) else { return Ok(()) };
        if self.check_admin(who).is_ok() {
            return Ok(());
        }
        lease.keys.iter().try_for_each(|key| self.check(who, access, key, &[]))
    }
}
