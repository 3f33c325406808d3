//! What a read asks of the state machine once it may be served (at once if serializable, or
//! when the driver says a ReadIndex was applied), evaluated on the caller's thread:
//! a Range, or a Txn without writes, which etcd also serves without going through the log.

use std::sync::RwLock;

use tally_mvcc::{AuthInfo, MvccError, StateMachine};
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
    /// The answer, if `who` may read what the query reads (checked under the same lock).
    pub fn answer(&self, sm: &RwLock<StateMachine>, who: &AuthInfo) -> Result<ReadAnswer, MvccError> {
        match self {
            ReadQuery::Range(req) => {
                let sm = sm.read().expect("sm lock");
                sm.auth.check_range(who, req)?;
                sm.store.range(req).map(ReadAnswer::Range)
            }
            ReadQuery::Txn(req) => {
                // A read lock, as for a range: the apply loop is not held up.
                let sm = sm.read().expect("sm lock");
                sm.auth.check_txn(who, req, &sm.store)?;
                sm.store.read_only_txn(req).map(ReadAnswer::Txn)
            }
        }
    }
}
