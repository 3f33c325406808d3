#![allow(dead_code)]
use tally_mvcc::{Store, StoreConfig};
use tally_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use tally_proto::etcdserverpb::request_op::Request;
use tally_proto::etcdserverpb::*;
use tally_proto::mvccpb::KeyValue;

pub fn store() -> Store {
    Store::new(StoreConfig::default())
}

pub fn put(s: &mut Store, k: &str, v: &str) -> i64 {
    s.put(&PutRequest { key: k.into(), value: v.into(), ..Default::default() }).unwrap().0.header.unwrap().revision
}

pub fn put_lease(s: &mut Store, k: &str, v: &str, lease: i64) -> i64 {
    s.put(&PutRequest { key: k.into(), value: v.into(), lease, ..Default::default() })
        .unwrap()
        .0
        .header
        .unwrap()
        .revision
}

pub fn del(s: &mut Store, k: &str, end: &str) -> (i64, i64) {
    let r =
        s.delete_range(&DeleteRangeRequest { key: k.into(), range_end: end.into(), ..Default::default() }).unwrap().0;
    (r.deleted, r.header.unwrap().revision)
}

pub fn get(s: &Store, k: &str) -> Option<KeyValue> {
    s.range(&RangeRequest { key: k.into(), ..Default::default() }).unwrap().kvs.pop()
}

pub fn rng(k: &str, end: &str) -> RangeRequest {
    RangeRequest { key: k.into(), range_end: end.into(), ..Default::default() }
}

pub fn keys(r: &RangeResponse) -> Vec<String> {
    r.kvs.iter().map(|kv| String::from_utf8(kv.key.clone()).unwrap()).collect()
}

pub fn op_put(k: &str, v: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestPut(PutRequest { key: k.into(), value: v.into(), ..Default::default() })),
    }
}
pub fn op_get(k: &str, end: &str) -> RequestOp {
    RequestOp { request: Some(Request::RequestRange(rng(k, end))) }
}
pub fn op_del(k: &str, end: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
            key: k.into(),
            range_end: end.into(),
            ..Default::default()
        })),
    }
}
pub fn op_txn(t: TxnRequest) -> RequestOp {
    RequestOp { request: Some(Request::RequestTxn(t)) }
}

pub fn cmp(k: &str, target: CompareTarget, result: CompareResult, u: TargetUnion) -> Compare {
    Compare { key: k.into(), target: target as i32, result: result as i32, target_union: Some(u), range_end: vec![] }
}
