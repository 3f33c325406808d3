//! What a read asks of the state machine once it may be served (at once if serializable, or
//! when the driver says a ReadIndex was applied), evaluated on the caller's thread:
//! a Range, or a Txn without writes, which etcd also serves without going through the log.

use std::sync::RwLock;

use tally_mvcc::{MvccError, StateMachine};
use tally_proto::etcdserverpb::{RangeRequest, RangeResponse, TxnRequest, TxnResponse};

#[derive(Debug)]
pub enum ReadQuery {
    Range(RangeRequest),
    /// Only txns whose every op is a range come this way (kv::is_txn_readonly).
    Txn(TxnRequest),
}

#[derive(Debug)]
pub enum ReadAnswer {
    Range(RangeResponse),
    Txn(TxnResponse),
}

impl ReadQuery {
    pub fn answer(&self, sm: &RwLock<StateMachine>) -> Result<ReadAnswer, MvccError> {
        match self {
            ReadQuery::Range(req) => sm.read().expect("sm lock").store.range(req).map(ReadAnswer::Range),
            ReadQuery::Txn(req) => {
                // The store evaluates txns through its write path; without writes it changes
                // nothing (no revision, no events).
                let (resp, events) = sm.write().expect("sm lock").store.txn(req)?;
                debug_assert!(events.is_empty());
                Ok(ReadAnswer::Txn(resp))
            }
        }
    }
}
