//! `Store::read_only_txn` answers exactly as `Store::txn` (the write path) does, on random stores
//! and random txns without writes: same response, encoded byte for byte, same error, and the
//! write path changes nothing either.

use std::cell::RefCell;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use prost::Message;
use tally_proto::etcdserverpb::compare::TargetUnion;
use tally_proto::etcdserverpb::request_op::Request;
use tally_proto::etcdserverpb::response_op::Response;
use tally_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, TxnResponse,
};

use crate::error::MvccError;
use crate::store::{Store, StoreConfig};

/// What builds a random store's history.
#[derive(Clone, Debug)]
enum Write {
    Put { key: u8, value: u8, lease: u8 },
    Delete { key: u8, width: u8 },
    Compact { back: u8 },
    Grant { lease: u8 },
}

/// One of six keys, or (for 6 and 7) one the store never has.
fn key(k: u8) -> Vec<u8> {
    vec![b'a' + k % 8]
}

/// A range end for `key`: exactly the key, every key from it ("\0"), or up to `width` keys on.
fn range_end(k: u8, width: u8) -> Vec<u8> {
    match width % 5 {
        0 => Vec::new(),
        1 => vec![0],
        w => vec![b'a' + k % 8 + w - 1],
    }
}

fn write() -> impl Strategy<Value = Write> {
    prop_oneof![
        8 => (0u8..6, any::<u8>(), prop_oneof![3 => Just(0u8), 1 => 1u8..4]).prop_map(|(key, value, lease)| Write::Put { key, value, lease }),
        2 => (0u8..6, 0u8..5).prop_map(|(key, width)| Write::Delete { key, width }),
        1 => (0u8..6).prop_map(|back| Write::Compact { back }),
        1 => (1u8..4).prop_map(|lease| Write::Grant { lease }),
    ]
}

fn build(writes: &[Write]) -> Store {
    let mut s = Store::new(StoreConfig::default());
    for w in writes {
        match *w {
            Write::Put { key: k, value, lease } => {
                // A lease that was never granted is refused; the store is unchanged then.
                let _ = s.put(&PutRequest {
                    key: key(k),
                    value: vec![value],
                    lease: i64::from(lease),
                    ..Default::default()
                });
            }
            Write::Delete { key: k, width } => {
                let d = DeleteRangeRequest { key: key(k), range_end: range_end(k, width), ..Default::default() };
                s.delete_range(&d).expect("delete");
            }
            Write::Compact { back } => {
                let _ = s.compact(s.revision() - i64::from(back));
            }
            Write::Grant { lease } => {
                let _ = s.lease_grant(i64::from(lease), 100);
            }
        }
    }
    s
}

/// A revision to read at: 0 (now), negative, or anything from before the oldest retained one
/// to past the newest.
fn revision() -> impl Strategy<Value = i64> {
    prop_oneof![12 => Just(0i64), 1 => Just(-1i64), 8 => 1i64..16, 1 => 16i64..48]
}

fn range() -> impl Strategy<Value = RangeRequest> {
    let shape = (0u8..80, 0u8..5, revision(), 0i64..4, 0i32..4, 0i32..6);
    let flags =
        (any::<bool>(), prop::bool::weighted(0.2), any::<bool>(), vec(prop_oneof![9 => Just(0i64), 1 => 0i64..40], 4));
    (shape, flags).prop_map(
        |((k, width, revision, limit, sort_order, sort_target), (keys_only, count_only, serializable, f))| {
            RangeRequest {
                // 8: no key at all, which validation refuses
                key: if k == 8 { Vec::new() } else { key(k) },
                range_end: range_end(k, width),
                limit,
                revision,
                sort_order,
                sort_target,
                serializable,
                keys_only,
                count_only,
                min_mod_revision: f[0],
                max_mod_revision: f[1],
                min_create_revision: f[2],
                max_create_revision: f[3],
            }
        },
    )
}

fn compare() -> impl Strategy<Value = Compare> {
    let union = prop_oneof![
        1 => Just(None),
        2 => (0i64..40).prop_map(|v| Some(TargetUnion::Version(v % 6))),
        2 => (0i64..40).prop_map(|r| Some(TargetUnion::CreateRevision(r))),
        2 => (0i64..40).prop_map(|r| Some(TargetUnion::ModRevision(r))),
        2 => any::<u8>().prop_map(|v| Some(TargetUnion::Value(vec![v]))),
        1 => Just(Some(TargetUnion::Value(Vec::new()))),
        2 => (0i64..4).prop_map(|l| Some(TargetUnion::Lease(l))),
    ];
    // results and targets past etcd's enums too
    (0u8..8, 0u8..5, 0i32..5, 0i32..6, union).prop_map(|(k, width, result, target, target_union)| Compare {
        result,
        target,
        key: key(k),
        range_end: range_end(k, width),
        target_union,
    })
}

/// A txn whose ops are ranges, nested txns (up to `depth` deep) and the odd empty op.
fn txn(depth: u32) -> BoxedStrategy<TxnRequest> {
    let op = if depth == 0 {
        prop_oneof![
            80 => range().prop_map(|r| RequestOp { request: Some(Request::RequestRange(r)) }),
            1 => Just(RequestOp { request: None }),
        ]
        .boxed()
    } else {
        prop_oneof![
            60 => range().prop_map(|r| RequestOp { request: Some(Request::RequestRange(r)) }),
            12 => txn(depth - 1).prop_map(|t| RequestOp { request: Some(Request::RequestTxn(t)) }),
            1 => Just(RequestOp { request: None }),
        ]
        .boxed()
    };
    (vec(compare(), 0..3), vec(op.clone(), 0..4), vec(op, 0..4))
        .prop_map(|(compare, success, failure)| TxnRequest { compare, success, failure })
        .boxed()
}

/// How often each outcome came up, so that the generator is seen to reach them all.
#[derive(Debug, Default)]
struct Seen {
    succeeded: usize,
    failed: usize,
    nested: usize,
    /// Key-values answered by top-level ranges.
    kvs: usize,
    errors: std::collections::BTreeMap<String, usize>,
}

fn has_nested(resp: &TxnResponse) -> bool {
    resp.responses.iter().any(|r| matches!(r.response, Some(Response::ResponseTxn(_))))
}

fn kvs(resp: &TxnResponse) -> usize {
    let ranges = resp.responses.iter().filter_map(|r| match &r.response {
        Some(Response::ResponseRange(range)) => Some(range.kvs.len()),
        _ => None,
    });
    ranges.sum()
}

const STORES: u32 = 4000;

#[test]
fn read_only_txn_answers_as_the_write_path() {
    let seen = RefCell::new(Seen::default());
    let config = Config { cases: STORES, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let cases = (vec(write(), 0..48), vec(txn(2), 1..10));
    runner
        .run(&cases, |(writes, txns)| {
            let store = build(&writes);
            for t in &txns {
                let mut written = store.clone();
                let expected: Result<TxnResponse, MvccError> = written.txn(t).map(|(resp, events)| {
                    assert!(events.is_empty(), "a txn without writes wrote");
                    resp
                });
                prop_assert_eq!(&written, &store, "the write path changed the store");
                let got = store.read_only_txn(t);
                prop_assert_eq!(
                    got.as_ref().map(Message::encode_to_vec),
                    expected.as_ref().map(Message::encode_to_vec)
                );
                prop_assert_eq!(&got, &expected);
                let mut seen = seen.borrow_mut();
                match &got {
                    Ok(resp) if resp.succeeded => seen.succeeded += 1,
                    Ok(_) => seen.failed += 1,
                    Err(e) => *seen.errors.entry(format!("{e:?}")).or_default() += 1,
                }
                seen.nested += usize::from(got.as_ref().is_ok_and(has_nested));
                seen.kvs += got.as_ref().map_or(0, kvs);
            }
            Ok(())
        })
        .unwrap();
    let seen = seen.into_inner();
    assert!(seen.succeeded > 0 && seen.failed > 0 && seen.nested > 0 && seen.kvs > 0, "{seen:?}");
    for e in ["FutureRev", "Compacted", "EmptyKey"] {
        assert!(seen.errors.contains_key(e), "never {e}: {seen:?}");
    }
    println!("{seen:?}");
}

#[test]
#[should_panic(expected = "the txn writes")]
fn read_only_txn_refuses_a_txn_with_writes() {
    let put = RequestOp { request: Some(Request::RequestPut(PutRequest { key: key(0), ..Default::default() })) };
    let nested = TxnRequest { success: vec![put], ..Default::default() };
    let rt =
        TxnRequest { failure: vec![RequestOp { request: Some(Request::RequestTxn(nested)) }], ..Default::default() };
    let _ = Store::default().read_only_txn(&rt);
}
