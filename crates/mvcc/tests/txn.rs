mod common;
use common::*;
use tally_mvcc::MvccError;
use tally_proto::etcdserverpb::compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
use tally_proto::etcdserverpb::response_op::Response;
use tally_proto::etcdserverpb::*;

fn txn(s: &mut tally_mvcc::Store, t: TxnRequest) -> TxnResponse {
    s.txn(&t).unwrap().0
}

fn when(c: Compare) -> TxnRequest {
    TxnRequest { compare: vec![c], success: vec![], failure: vec![] }
}

#[test]
fn compare_every_target_and_result() {
    let mut s = store();
    s.lease_grant(9, 100).unwrap();
    put(&mut s, "k", "m"); // 2
    put_lease(&mut s, "k", "m", 9); // 3: create 2, mod 3, version 2, lease 9
    let check = |s: &mut tally_mvcc::Store, t: T, r: R, u: U| txn(s, when(cmp("k", t, r, u))).succeeded;
    for (t, eq, lo, hi) in [
        (T::Version, U::Version(2), U::Version(1), U::Version(3)),
        (T::Create, U::CreateRevision(2), U::CreateRevision(1), U::CreateRevision(3)),
        (T::Mod, U::ModRevision(3), U::ModRevision(2), U::ModRevision(4)),
        (T::Value, U::Value(b"m".to_vec()), U::Value(b"a".to_vec()), U::Value(b"z".to_vec())),
        (T::Lease, U::Lease(9), U::Lease(8), U::Lease(10)),
    ] {
        assert!(check(&mut s, t, R::Equal, eq.clone()), "{t:?} equal");
        assert!(!check(&mut s, t, R::NotEqual, eq.clone()), "{t:?} not equal");
        assert!(check(&mut s, t, R::NotEqual, lo.clone()));
        assert!(check(&mut s, t, R::Greater, lo.clone()), "{t:?} greater");
        assert!(!check(&mut s, t, R::Greater, eq.clone()));
        assert!(check(&mut s, t, R::Less, hi.clone()), "{t:?} less");
        assert!(!check(&mut s, t, R::Less, eq));
        assert!(!check(&mut s, t, R::Equal, hi));
    }
    // absent key: compares as zeros, except VALUE which always fails
    let absent = |s: &mut tally_mvcc::Store, t: T, r: R, u: U| txn(s, when(cmp("nope", t, r, u))).succeeded;
    assert!(absent(&mut s, T::Version, R::Equal, U::Version(0)));
    assert!(absent(&mut s, T::Create, R::Equal, U::CreateRevision(0)));
    assert!(absent(&mut s, T::Mod, R::Less, U::ModRevision(1)));
    assert!(!absent(&mut s, T::Value, R::NotEqual, U::Value(b"x".to_vec())));
    assert!(!absent(&mut s, T::Value, R::Equal, U::Value(vec![])));
    assert_eq!(s.revision(), 3, "read-only txns do not bump the revision");
}

#[test]
fn compare_over_a_range() {
    let mut s = store();
    put(&mut s, "p/a", "1");
    put(&mut s, "p/b", "1");
    put(&mut s, "p/b", "2");
    let mut c = cmp("p/", T::Version, R::Greater, U::Version(0));
    c.range_end = b"p0".to_vec();
    assert!(txn(&mut s, when(c.clone())).succeeded);
    c.target_union = Some(U::Version(1));
    assert!(!txn(&mut s, when(c.clone())).succeeded, "every key must satisfy");
    c.result = R::Less as i32;
    c.target_union = Some(U::Version(3));
    assert!(txn(&mut s, when(c)).succeeded);
    let mut empty = cmp("x/", T::Create, R::Equal, U::CreateRevision(0));
    empty.range_end = b"x0".to_vec();
    assert!(txn(&mut s, when(empty)).succeeded);
}

#[test]
fn branches_revisions_and_reads_see_earlier_writes() {
    let mut s = store();
    put(&mut s, "a", "1"); // 2
    let t = TxnRequest {
        compare: vec![cmp("a", T::Value, R::Equal, U::Value(b"1".to_vec()))],
        success: vec![op_get("b", ""), op_put("b", "2"), op_get("b", ""), op_put("c", "3"), op_del("zzz", "")],
        failure: vec![op_put("f", "x")],
    };
    let r = txn(&mut s, t.clone());
    assert!(r.succeeded);
    assert_eq!(r.header.unwrap().revision, 3);
    assert_eq!(s.revision(), 3, "one revision for the whole txn");
    let rr = |i: usize| match &r.responses[i].response {
        Some(Response::ResponseRange(x)) => x.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!((rr(0).kvs.len(), rr(0).header.unwrap().revision), (0, 2));
    assert_eq!(rr(2).kvs[0].value, b"2");
    assert_eq!(rr(2).header.unwrap().revision, 3);
    match &r.responses[3].response {
        Some(Response::ResponsePut(p)) => assert_eq!(p.header.unwrap().revision, 3),
        other => panic!("{other:?}"),
    }
    match &r.responses[4].response {
        Some(Response::ResponseDeleteRange(d)) => assert_eq!((d.deleted, d.header.unwrap().revision), (0, 3)),
        other => panic!("{other:?}"),
    }
    let (b, c) = (get(&s, "b").unwrap(), get(&s, "c").unwrap());
    assert_eq!((b.mod_revision, c.mod_revision), (3, 3));
    // failure branch
    let r = txn(&mut s, TxnRequest { compare: vec![cmp("a", T::Version, R::Equal, U::Version(5))], ..t });
    assert!(!r.succeeded);
    assert_eq!(r.responses.len(), 1);
    assert_eq!(get(&s, "f").unwrap().mod_revision, 4);
    // a txn whose delete removes nothing and has no other writes keeps the revision
    let r = txn(&mut s, TxnRequest { success: vec![op_del("none", "")], ..Default::default() });
    assert_eq!(r.header.unwrap().revision, 4);
    match &r.responses[0].response {
        Some(Response::ResponseDeleteRange(d)) => assert_eq!(d.header.unwrap().revision, 4),
        other => panic!("{other:?}"),
    }
}

#[test]
fn nested_txn_compares_see_the_state_before_the_txn() {
    // verified against etcd 3.5.1: the nested compare `version(n1) == 0` succeeds although the outer txn
    // put n1 first; the nested response's header is empty.
    let mut s = store();
    let inner = TxnRequest {
        compare: vec![cmp("n1", T::Version, R::Equal, U::Version(0))],
        success: vec![op_get("n1", "")],
        failure: vec![op_put("other", "x")],
    };
    let (r, events) =
        s.txn(&TxnRequest { success: vec![op_put("n1", "x"), op_txn(inner)], ..Default::default() }).unwrap();
    assert_eq!(r.header.unwrap().revision, 2);
    assert_eq!(events.len(), 1);
    match &r.responses[1].response {
        Some(Response::ResponseTxn(t)) => {
            assert!(t.succeeded);
            assert_eq!(t.header, Some(ResponseHeader::default()));
            match &t.responses[0].response {
                Some(Response::ResponseRange(rr)) => {
                    assert_eq!(rr.kvs[0].create_revision, 2);
                    assert_eq!(rr.header.unwrap().revision, 2);
                }
                other => panic!("{other:?}"),
            }
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn validation_errors() {
    let mut s = store();
    let e = |s: &mut tally_mvcc::Store, t: TxnRequest| s.txn(&t).unwrap_err();
    // The op count is the receiving member's check (`--max-txn-ops`), not the store's.
    let many = TxnRequest { success: (0..129).map(|i| op_put(&format!("k{i}"), "v")).collect(), ..Default::default() };
    assert_eq!(tally_mvcc::validate::check_txn(&many, 128), Err(MvccError::TooManyOps));
    assert_eq!(MvccError::TooManyOps.message(), "etcdserver: too many operations in txn request");
    assert!(tally_mvcc::validate::check_txn(&many, 129).is_ok());
    assert!(s.txn(&many).is_ok(), "the store applies what a member with a higher limit took");
    let dup = TxnRequest { success: vec![op_put("a", "1"), op_put("a", "2")], ..Default::default() };
    assert_eq!(e(&mut s, dup), MvccError::DuplicateKey);
    assert_eq!(MvccError::DuplicateKey.message(), "etcdserver: duplicate key given in txn request");
    let put_del = TxnRequest { success: vec![op_del("a", "c"), op_put("b", "2")], ..Default::default() };
    assert_eq!(e(&mut s, put_del), MvccError::DuplicateKey);
    // etcd quirk: a from-key delete ("\0") never conflicts
    let from_key = TxnRequest { success: vec![op_del("a", "\0"), op_put("q", "x")], ..Default::default() };
    assert!(s.txn(&from_key).is_ok());
    // the two branches are checked separately; a key put in both then/else of a nested txn is fine
    let branches =
        TxnRequest { success: vec![op_put("a", "1")], failure: vec![op_put("a", "2")], ..Default::default() };
    assert!(s.txn(&branches).is_ok());
    let nested_ok = TxnRequest {
        success: vec![op_txn(TxnRequest {
            success: vec![op_put("z", "1")],
            failure: vec![op_put("z", "2")],
            ..Default::default()
        })],
        ..Default::default()
    };
    assert!(s.txn(&nested_ok).is_ok());
    let nested_dup = TxnRequest {
        success: vec![op_put("z", "0"), op_txn(TxnRequest { success: vec![op_put("z", "1")], ..Default::default() })],
        ..Default::default()
    };
    assert_eq!(e(&mut s, nested_dup), MvccError::DuplicateKey);
    let empty_key = TxnRequest { success: vec![op_put("", "1")], ..Default::default() };
    assert_eq!(e(&mut s, empty_key), MvccError::EmptyKey);
    let empty_cmp = when(cmp("", T::Version, R::Equal, U::Version(0)));
    assert_eq!(e(&mut s, empty_cmp), MvccError::EmptyKey);
    let empty_op = TxnRequest { success: vec![RequestOp { request: None }], ..Default::default() };
    assert_eq!(e(&mut s, empty_op), MvccError::KeyNotFound);
}

#[test]
fn checks_run_against_the_chosen_branch_before_anything_is_written() {
    let mut s = store();
    put(&mut s, "a", "1"); // 2
    let rev = s.revision();
    let mut bad_lease = op_put("b", "1");
    if let Some(tally_proto::etcdserverpb::request_op::Request::RequestPut(p)) = &mut bad_lease.request {
        p.lease = 77;
    }
    let t = TxnRequest { success: vec![op_put("c", "1"), bad_lease.clone()], ..Default::default() };
    assert_eq!(s.txn(&t).unwrap_err(), MvccError::LeaseNotFound);
    assert_eq!(s.revision(), rev);
    assert!(get(&s, "c").is_none());
    // the bad op sits in the branch not taken: fine
    let t = TxnRequest {
        compare: vec![cmp("a", T::Version, R::Equal, U::Version(1))],
        success: vec![op_put("c", "1")],
        failure: vec![bad_lease],
    };
    assert!(s.txn(&t).is_ok());
    let future = TxnRequest {
        success: vec![
            op_put("d", "1"),
            RequestOp {
                request: Some(tally_proto::etcdserverpb::request_op::Request::RequestRange(RangeRequest {
                    revision: 99,
                    ..rng("a", "")
                })),
            },
        ],
        ..Default::default()
    };
    assert_eq!(s.txn(&future).unwrap_err(), MvccError::FutureRev);
    // verified against etcd 3.5.1: a negative revision inside a txn is "compacted" (plain Range reads current)
    let neg = TxnRequest {
        success: vec![RequestOp {
            request: Some(tally_proto::etcdserverpb::request_op::Request::RequestRange(RangeRequest {
                revision: -5,
                ..rng("a", "")
            })),
        }],
        ..Default::default()
    };
    assert_eq!(s.txn(&neg).unwrap_err(), MvccError::Compacted);
    assert!(s.range(&RangeRequest { revision: -5, ..rng("a", "") }).is_ok());
}

#[test]
fn watch_events_of_sibling_nested_txns_carry_the_key_before_the_txn() {
    // etcd's duplicate-key check lets a put in one nested txn and a delete of the same key in a
    // later sibling through. Its watch (3.5.1 and 3.5.35) gives the DELETE the key as of the
    // revision before the txn as prev_kv, not the put of the same txn, and a put that creates
    // the key none.
    let nested = |op: RequestOp| op_txn(TxnRequest { success: vec![op], ..Default::default() });
    let event_prev = |events: &[tally_proto::mvccpb::Event]| -> Vec<Option<Vec<u8>>> {
        events.iter().map(|e| e.prev_kv.as_ref().map(|kv| kv.value.clone())).collect()
    };
    let mut s = store();
    let put_then_delete =
        TxnRequest { success: vec![nested(op_put("k", "1")), nested(op_del("k", ""))], ..Default::default() };
    let (_, events) = s.txn(&put_then_delete).unwrap();
    assert_eq!(event_prev(&events), vec![None, None], "the key did not exist before the txn");
    put(&mut s, "k", "old");
    let rev = s.revision() + 1;
    let (_, events) = s.txn(&put_then_delete).unwrap();
    let old = Some(b"old".to_vec());
    assert_eq!(event_prev(&events), vec![old.clone(), old], "both carry the key before the txn");
    // A watcher catching up from history sees the same events.
    assert_eq!(s.events(b"k", b"", rev, rev).unwrap(), events);
}
