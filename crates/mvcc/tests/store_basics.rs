mod common;
use common::*;
use tally_mvcc::{GrpcCode, MvccError};
use tally_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use tally_proto::etcdserverpb::*;
use tally_proto::mvccpb::event::EventType;

#[test]
fn revision_and_version_arithmetic() {
    let mut s = store();
    assert_eq!(s.revision(), 1);
    assert_eq!(put(&mut s, "a", "1"), 2);
    assert_eq!(put(&mut s, "a", "2"), 3);
    let kv = get(&s, "a").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
    assert_eq!(del(&mut s, "a", ""), (1, 4));
    assert!(get(&s, "a").is_none());
    // deleting nothing does not bump the revision
    assert_eq!(del(&mut s, "a", ""), (0, 4));
    assert_eq!(del(&mut s, "zz", "zzz"), (0, 4));
    assert_eq!(s.revision(), 4);
    assert_eq!(put(&mut s, "a", "3"), 5);
    let kv = get(&s, "a").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version, kv.value.as_slice()), (5, 5, 1, &b"3"[..]));
}

#[test]
fn put_options_and_errors() {
    let mut s = store();
    let bad = |r: PutRequest, s: &mut tally_mvcc::Store| s.put(&r).unwrap_err();
    assert_eq!(bad(PutRequest::default(), &mut s), MvccError::EmptyKey);
    let iv = PutRequest { key: "k".into(), ignore_value: true, ..Default::default() };
    assert_eq!(bad(iv.clone(), &mut s), MvccError::KeyNotFound);
    assert_eq!(MvccError::KeyNotFound.message(), "etcdserver: key not found");
    assert_eq!(MvccError::KeyNotFound.code(), GrpcCode::InvalidArgument);
    let il = PutRequest { key: "k".into(), ignore_lease: true, ..Default::default() };
    assert_eq!(bad(il.clone(), &mut s), MvccError::KeyNotFound);
    let ivv = PutRequest { key: "k".into(), value: "x".into(), ignore_value: true, ..Default::default() };
    assert_eq!(bad(ivv, &mut s), MvccError::ValueProvided);
    let ill = PutRequest { key: "k".into(), lease: 5, ignore_lease: true, ..Default::default() };
    assert_eq!(bad(ill, &mut s), MvccError::LeaseProvided);
    let l = PutRequest { key: "k".into(), lease: 5, ..Default::default() };
    assert_eq!(bad(l, &mut s), MvccError::LeaseNotFound);
    assert_eq!(MvccError::LeaseNotFound.message(), "etcdserver: requested lease not found");
    assert_eq!(MvccError::LeaseNotFound.code(), GrpcCode::NotFound);
    assert_eq!(s.revision(), 1, "failed puts change nothing");

    s.lease_grant(5, 60).unwrap();
    put_lease(&mut s, "k", "v1", 5);
    // ignore_value keeps the value, sets new lease 0 -> detaches
    let (r, ev) =
        s.put(&PutRequest { key: "k".into(), ignore_value: true, prev_kv: true, ..Default::default() }).unwrap();
    assert_eq!(r.prev_kv.as_ref().unwrap().value, b"v1");
    assert_eq!(r.prev_kv.as_ref().unwrap().lease, 5);
    let kv = get(&s, "k").unwrap();
    assert_eq!((kv.value.as_slice(), kv.lease, kv.version), (&b"v1"[..], 0, 2));
    assert!(s.lease(5).unwrap().keys.is_empty());
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].r#type, EventType::Put as i32);
    assert_eq!(ev[0].prev_kv.as_ref().unwrap().version, 1);
    // ignore_lease keeps the lease
    put_lease(&mut s, "k", "v2", 5);
    s.put(&PutRequest { key: "k".into(), value: "v3".into(), ignore_lease: true, ..Default::default() }).unwrap();
    let kv = get(&s, "k").unwrap();
    assert_eq!((kv.value.as_slice(), kv.lease), (&b"v3"[..], 5));
    assert_eq!(s.lease(5).unwrap().keys.len(), 1);
    // prev_kv absent for a new key
    let (r, _) = s.put(&PutRequest { key: "new".into(), prev_kv: true, ..Default::default() }).unwrap();
    assert!(r.prev_kv.is_none());
}

#[test]
fn delete_range_prev_kv_and_events() {
    let mut s = store();
    for k in ["a", "b", "c", "d"] {
        put(&mut s, k, k);
    }
    let (r, ev) =
        s.delete_range(&DeleteRangeRequest { key: "b".into(), range_end: "d".into(), prev_kv: true }).unwrap();
    assert_eq!(r.deleted, 2);
    assert_eq!(r.header.unwrap().revision, 6);
    assert_eq!(r.prev_kvs.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(), vec![b"b".to_vec(), b"c".to_vec()]);
    assert_eq!(ev.len(), 2);
    assert!(ev.iter().all(|e| e.r#type == EventType::Delete as i32));
    let kv = ev[0].kv.as_ref().unwrap();
    assert_eq!((kv.key.as_slice(), kv.mod_revision, kv.create_revision, kv.version), (&b"b"[..], 6, 0, 0));
    assert_eq!(ev[1].prev_kv.as_ref().unwrap().value, b"c");
    // from-key delete
    assert_eq!(del(&mut s, "a", "\0"), (2, 7));
    assert_eq!(s.range(&rng("\0", "\0")).unwrap().count, 0);
}

fn setup_range() -> tally_mvcc::Store {
    let mut s = store();
    put(&mut s, "foo", "3"); // 2
    put(&mut s, "foo/a", "1"); // 3
    put(&mut s, "foo/b", "2"); // 4
    put(&mut s, "foo/a", "9"); // 5  foo/a v2
    put(&mut s, "fop", "0"); // 6
    put(&mut s, "zoo", "5"); // 7
    s
}

#[test]
fn range_single_prefix_fromkey() {
    let s = setup_range();
    assert_eq!(keys(&s.range(&rng("foo", "")).unwrap()), vec!["foo"]);
    assert_eq!(keys(&s.range(&rng("foo/", "foo0")).unwrap()), vec!["foo/a", "foo/b"]);
    assert_eq!(keys(&s.range(&rng("fop", "\0")).unwrap()), vec!["fop", "zoo"]);
    assert_eq!(keys(&s.range(&rng("\0", "\0")).unwrap()).len(), 5);
    // range_end <= key: empty
    let r = s.range(&rng("z", "a")).unwrap();
    assert_eq!((r.kvs.len(), r.count), (0, 0));
    let r = s.range(&rng("zoo", "zoo")).unwrap();
    assert_eq!(r.count, 0);
    assert_eq!(s.range(&rng("", "")).unwrap_err(), MvccError::EmptyKey);
    let r = s.range(&rng("missing", "")).unwrap();
    assert_eq!((r.kvs.len(), r.count, r.more, r.header.unwrap().revision), (0, 0, false, 7));
}

#[test]
fn range_limit_more_count() {
    let s = setup_range();
    let r = s.range(&RangeRequest { limit: 2, ..rng("a", "\0") }).unwrap();
    assert_eq!(keys(&r), vec!["foo", "foo/a"]);
    assert!(r.more);
    assert_eq!(r.count, 5);
    let r = s.range(&RangeRequest { limit: 5, ..rng("a", "\0") }).unwrap();
    assert!(!r.more);
    assert_eq!(r.kvs.len(), 5);
    let r = s.range(&RangeRequest { count_only: true, limit: 1, ..rng("a", "\0") }).unwrap();
    assert_eq!((r.kvs.len(), r.count, r.more), (0, 5, false));
    let r = s.range(&RangeRequest { keys_only: true, ..rng("foo", "") }).unwrap();
    assert!(r.kvs[0].value.is_empty());
    assert_eq!(r.kvs[0].mod_revision, 2);
    // filters: count stays the pre-filter total, `more` is computed after filtering
    let r = s.range(&RangeRequest { min_mod_revision: 4, limit: 2, ..rng("a", "\0") }).unwrap();
    assert_eq!(keys(&r), vec!["foo/a", "foo/b"]);
    assert_eq!((r.count, r.more), (5, true));
    let r = s.range(&RangeRequest { max_mod_revision: 4, ..rng("a", "\0") }).unwrap();
    assert_eq!(keys(&r), vec!["foo", "foo/b"]);
    let r = s.range(&RangeRequest { min_create_revision: 3, max_create_revision: 6, ..rng("a", "\0") }).unwrap();
    assert_eq!(keys(&r), vec!["foo/a", "foo/b", "fop"]);
    assert_eq!(r.count, 5);
}

#[test]
fn range_sorting() {
    let s = setup_range();
    let q = |order: SortOrder, target: SortTarget| {
        keys(
            &s.range(&RangeRequest { sort_order: order as i32, sort_target: target as i32, ..rng("a", "\0") }).unwrap(),
        )
    };
    assert_eq!(q(SortOrder::Descend, SortTarget::Key), vec!["zoo", "fop", "foo/b", "foo/a", "foo"]);
    assert_eq!(q(SortOrder::Ascend, SortTarget::Value), vec!["fop", "foo/b", "foo", "zoo", "foo/a"]);
    // target != KEY with order NONE sorts ascending
    assert_eq!(q(SortOrder::None, SortTarget::Value), vec!["fop", "foo/b", "foo", "zoo", "foo/a"]);
    assert_eq!(q(SortOrder::Descend, SortTarget::Create), vec!["zoo", "fop", "foo/b", "foo/a", "foo"]);
    assert_eq!(q(SortOrder::Descend, SortTarget::Mod), vec!["zoo", "fop", "foo/a", "foo/b", "foo"]);
    // version ties keep key order (stable)
    assert_eq!(q(SortOrder::Descend, SortTarget::Version), vec!["foo/a", "foo", "foo/b", "fop", "zoo"]);
    assert_eq!(q(SortOrder::Ascend, SortTarget::Version), vec!["foo", "foo/b", "fop", "zoo", "foo/a"]);
    // sorting happens before the limit
    let r = s
        .range(&RangeRequest {
            sort_order: SortOrder::Descend as i32,
            sort_target: SortTarget::Key as i32,
            limit: 1,
            ..rng("a", "\0")
        })
        .unwrap();
    assert_eq!((keys(&r), r.more, r.count), (vec!["zoo".to_string()], true, 5));
}

#[test]
fn historical_reads_and_errors() {
    let mut s = setup_range();
    del(&mut s, "foo", ""); // 8
    put(&mut s, "foo", "new"); // 9
    let at = |s: &tally_mvcc::Store, rev| s.range(&RangeRequest { revision: rev, ..rng("foo", "") });
    assert!(at(&s, 1).unwrap().kvs.is_empty());
    assert_eq!(at(&s, 2).unwrap().kvs[0].value, b"3");
    assert_eq!(at(&s, 7).unwrap().kvs[0].value, b"3");
    assert!(at(&s, 8).unwrap().kvs.is_empty());
    let kv = at(&s, 9).unwrap().kvs[0].clone();
    assert_eq!((kv.create_revision, kv.version), (9, 1));
    // header revision is the current revision, not the requested one
    assert_eq!(at(&s, 2).unwrap().header.unwrap().revision, 9);
    assert_eq!(at(&s, 10).unwrap_err(), MvccError::FutureRev);
    assert_eq!(MvccError::FutureRev.message(), "etcdserver: mvcc: required revision is a future revision");
    assert_eq!(MvccError::FutureRev.code(), GrpcCode::OutOfRange);
    // negative revision reads the current revision
    assert_eq!(at(&s, -3).unwrap().kvs[0].value, b"new");
    let r = s.range(&RangeRequest { revision: 4, ..rng("foo/", "foo0") }).unwrap();
    assert_eq!(r.kvs[0].value, b"1");
    assert_eq!(r.kvs[0].version, 1);
}

#[test]
fn compaction() {
    let mut s = store();
    put(&mut s, "a", "1"); // 2
    put(&mut s, "a", "2"); // 3
    put(&mut s, "b", "1"); // 4
    del(&mut s, "b", ""); // 5
    put(&mut s, "c", "1"); // 6
    del(&mut s, "c", ""); // 7
    put(&mut s, "c", "2"); // 8
    assert_eq!(s.compact(9).unwrap_err(), MvccError::FutureRev);
    let before: Vec<_> =
        (5..=8).map(|rev| s.range(&RangeRequest { revision: rev, ..rng("a", "\0") }).unwrap()).collect();
    let resp = s.compact(5).unwrap();
    assert_eq!(resp.header.unwrap().revision, 8);
    assert_eq!(s.revision(), 8, "compaction is not a write");
    assert_eq!(s.compact_revision(), 5);
    assert_eq!(s.compact(5).unwrap_err(), MvccError::Compacted);
    assert_eq!(s.compact(3).unwrap_err(), MvccError::Compacted);
    assert_eq!(MvccError::Compacted.message(), "etcdserver: mvcc: required revision has been compacted");
    assert_eq!(MvccError::Compacted.code(), GrpcCode::OutOfRange);
    for (i, rev) in (5..=8).enumerate() {
        assert_eq!(s.range(&RangeRequest { revision: rev, ..rng("a", "\0") }).unwrap(), before[i]);
    }
    assert_eq!(s.range(&RangeRequest { revision: 4, ..rng("a", "") }).unwrap_err(), MvccError::Compacted);
    // "b" was deleted at exactly 5: its tombstone stays (etcd 3.5.13+) until a later compaction
    assert_eq!(s.index_len(), 3);
    let kv = get(&s, "a").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
    s.compact(8).unwrap();
    assert_eq!(s.index_len(), 2, "b is gone entirely");
    assert_eq!(get(&s, "c").unwrap().value, b"2");
    assert_eq!(get(&s, "a").unwrap().value, b"2");
}

#[test]
fn compaction_on_fresh_store_matches_etcd() {
    // etcd's compactMainRev starts at -1: compacting revision 0 or 1 of an empty store succeeds once.
    let mut s = store();
    assert_eq!(s.compact_revision(), -1);
    s.compact(1).unwrap();
    assert_eq!(s.compact(1).unwrap_err(), MvccError::Compacted);
    assert_eq!(s.compact(2).unwrap_err(), MvccError::FutureRev);
}

#[test]
fn leases_grant_revoke() {
    let mut s = store();
    let g = s.lease_grant(7, 1).unwrap();
    assert_eq!((g.id, g.ttl), (7, 2), "ttl raised to the minimum");
    assert_eq!(s.lease_grant(7, 10).unwrap_err(), MvccError::LeaseExists);
    assert_eq!(s.lease_grant(8, tally_mvcc::MAX_LEASE_TTL + 1).unwrap_err(), MvccError::LeaseTtlTooLarge);
    let auto = s.lease_grant(0, 30).unwrap();
    assert!(auto.id > 0);
    assert_ne!(auto.id, 7);
    put_lease(&mut s, "x", "1", 7); // 2
    put_lease(&mut s, "y", "1", 7); // 3
    put_lease(&mut s, "z", "1", auto.id); // 4
    put(&mut s, "w", "1"); // 5
    assert_eq!(s.lease(7).unwrap().keys.len(), 2);
    del(&mut s, "y", ""); // 6: detaches
    assert_eq!(s.lease(7).unwrap().keys.len(), 1);
    put_lease(&mut s, "a", "1", 7); // 7
    put_lease(&mut s, "b", "1", 7); // 8
    let (resp, events) = s.lease_revoke(7).unwrap();
    assert_eq!(resp.header.unwrap().revision, 9);
    assert_eq!(s.revision(), 9, "one revision for all attached keys");
    let ks: Vec<_> = events.iter().map(|e| e.kv.as_ref().unwrap().key.clone()).collect();
    assert_eq!(ks, vec![b"a".to_vec(), b"b".to_vec(), b"x".to_vec()]);
    assert!(events.iter().all(|e| e.kv.as_ref().unwrap().mod_revision == 9));
    assert!(get(&s, "x").is_none() && get(&s, "a").is_none());
    assert!(get(&s, "z").is_some() && get(&s, "w").is_some());
    assert!(s.lease(7).is_none());
    assert_eq!(s.lease_revoke(7).unwrap_err(), MvccError::LeaseNotFound);
    // revoking a lease without keys does not bump the revision
    s.lease_grant(11, 5).unwrap();
    let (resp, events) = s.lease_revoke(11).unwrap();
    assert_eq!((resp.header.unwrap().revision, events.len()), (9, 0));
}

#[test]
fn live_keys_counts_what_a_full_range_counts() {
    let count = |s: &tally_mvcc::Store| {
        let every = RangeRequest { key: vec![0], range_end: vec![0], count_only: true, ..Default::default() };
        s.range(&every).unwrap().count as u64
    };
    let mut s = store();
    put(&mut s, "a", "1");
    put(&mut s, "a", "2"); // an update: no new key
    put(&mut s, "b", "1");
    put(&mut s, "c", "1");
    assert_eq!((s.live_keys(), count(&s)), (3, 3));
    del(&mut s, "b", "");
    del(&mut s, "b", ""); // already gone
    assert_eq!((s.live_keys(), count(&s)), (2, 2));
    put(&mut s, "b", "again"); // back
    let lease = s.lease_grant(0, 60).unwrap().id;
    s.put(&PutRequest { key: b"l1".to_vec(), lease, ..Default::default() }).unwrap();
    s.put(&PutRequest { key: b"l2".to_vec(), lease, ..Default::default() }).unwrap();
    assert_eq!((s.live_keys(), count(&s)), (5, 5));
    s.lease_revoke(lease).unwrap();
    assert_eq!((s.live_keys(), count(&s)), (3, 3));
    del(&mut s, "a", "z"); // a range: a, b, c
    s.compact(s.revision()).unwrap();
    assert_eq!((s.live_keys(), count(&s)), (0, 0));
    put(&mut s, "d", "1");
    let mut sm = tally_mvcc::StateMachine::default();
    sm.store = s;
    let back = tally_mvcc::StateMachine::restore(&sm.snapshot()).unwrap();
    assert_eq!(back.store.live_keys(), 1, "counted again on restore");
}
