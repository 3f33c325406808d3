//! Put and DeleteRange: etcd's `applierV3backend.Put` / `DeleteRange`, standalone or inside a txn.

use tally_proto::etcdserverpb::{DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse};
use tally_proto::mvccpb::Event;

use crate::error::MvccError;
use crate::store::{entry_to_kv, header, KeyRange, Store, WriteTxn};
use crate::validate;

impl Store {
    /// Applies a standalone Put (validated as etcd's gRPC layer does). Returns the response and its events.
    pub fn put(&mut self, p: &PutRequest) -> Result<(PutResponse, Vec<Event>), MvccError> {
        validate::check_put(p)?;
        self.check_put(p)?;
        let mut txn = self.begin_write();
        let resp = self.put_in(&mut txn, p);
        Ok((resp, self.end_write(txn)))
    }

    /// Applies a standalone DeleteRange (validated). Returns the response and its events.
    pub fn delete_range(&mut self, d: &DeleteRangeRequest) -> Result<(DeleteRangeResponse, Vec<Event>), MvccError> {
        validate::check_delete_range(d)?;
        let mut txn = self.begin_write();
        let resp = self.delete_range_in(&mut txn, d);
        Ok((resp, self.end_write(txn)))
    }

    /// etcd's `checkRequestPut`: the lease must exist, and ignore_value/ignore_lease need an existing key.
    pub(crate) fn check_put(&self, p: &PutRequest) -> Result<(), MvccError> {
        if p.lease != 0 && self.lessor.lookup(p.lease).is_none() {
            return Err(MvccError::LeaseNotFound);
        }
        if (p.ignore_value || p.ignore_lease) && self.current(&p.key).is_none() {
            return Err(MvccError::KeyNotFound);
        }
        Ok(())
    }

    /// etcd's txn pre-check (`checkRequestPut` in apply.go) asks in the other order than a
    /// plain Put: the previous key for ignore_value/ignore_lease first, then the lease.
    pub(crate) fn check_txn_put(&self, p: &PutRequest) -> Result<(), MvccError> {
        if (p.ignore_value || p.ignore_lease) && self.current(&p.key).is_none() {
            return Err(MvccError::KeyNotFound);
        }
        if p.lease != 0 && self.lessor.lookup(p.lease).is_none() {
            return Err(MvccError::LeaseNotFound);
        }
        Ok(())
    }

    fn current(&self, key: &[u8]) -> Option<tally_proto::mvccpb::KeyValue> {
        self.index.get(key).and_then(|h| h.current()).map(|e| entry_to_kv(key, e))
    }

    /// The write part of a Put, after `check_put` passed.
    pub(crate) fn put_in(&mut self, txn: &mut WriteTxn, p: &PutRequest) -> PutResponse {
        let prev = if p.ignore_value || p.ignore_lease || p.prev_kv { self.current(&p.key) } else { None };
        // (`check_put` guarantees `prev` exists when an ignore flag is set; txn validation forbids a txn from
        // deleting that key first. Should it be absent anyway, fall back deterministically to empty/none.)
        let value: &[u8] = match (&prev, p.ignore_value) {
            (Some(kv), true) => &kv.value,
            (None, true) => &[],
            (_, false) => &p.value,
        };
        let lease = match (&prev, p.ignore_lease) {
            (Some(kv), true) => kv.lease,
            (None, true) => 0,
            (_, false) => p.lease,
        };
        self.put_key(txn, &p.key, value, lease);
        PutResponse { header: header(txn.write_rev()), prev_kv: if p.prev_kv { prev } else { None } }
    }

    /// The write part of a DeleteRange.
    pub(crate) fn delete_range_in(&mut self, txn: &mut WriteTxn, d: &DeleteRangeRequest) -> DeleteRangeResponse {
        let kr = KeyRange::new(&d.key, &d.range_end);
        let prev_kvs = if d.prev_kv { self.live_in(kr) } else { Vec::new() };
        let deleted = self.delete_range_keys(txn, kr);
        let revision = if deleted != 0 || !txn.events.is_empty() { txn.write_rev() } else { txn.begin_rev };
        DeleteRangeResponse { header: header(revision), deleted, prev_kvs }
    }
}
