//! Random op sequences applied to the store and to a simple model; every range result must agree,
//! at the current revision and at every retained historical revision.
use std::collections::BTreeMap;

use proptest::prelude::*;
use tally_mvcc::{Store, StoreConfig};
use tally_proto::etcdserverpb::*;

/// key -> (value, create, mod, version)
type State = BTreeMap<Vec<u8>, (Vec<u8>, i64, i64, i64)>;

#[derive(Clone, Debug)]
enum Op {
    Put(u8, u8),
    Del(u8, u8),
    TxnPuts(u8, u8, u8),
    Compact(u8),
}

fn key(k: u8) -> Vec<u8> {
    vec![b'a' + (k % 8)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u8>(), any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (any::<u8>(), 0u8..4).prop_map(|(k, w)| Op::Del(k, w)),
        1 => (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(a, b, v)| Op::TxnPuts(a, b, v)),
        1 => any::<u8>().prop_map(Op::Compact),
    ]
}

/// (key, value, create, mod, version)
type Row = (Vec<u8>, Vec<u8>, i64, i64, i64);

fn model_range(st: &State, lo: &[u8], hi: &[u8]) -> Vec<Row> {
    st.iter()
        .filter(|(k, _)| k.as_slice() >= lo && k.as_slice() < hi)
        .map(|(k, (v, c, m, ver))| (k.clone(), v.clone(), *c, *m, *ver))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn store_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut s = Store::new(StoreConfig::default());
        let mut rev = 1i64;
        let mut compacted = -1i64;
        let mut state = State::new();
        let mut history: Vec<(i64, State)> = vec![(1, state.clone())];
        for op in ops {
            match op {
                Op::Put(k, v) => {
                    s.put(&PutRequest { key: key(k), value: vec![v], ..Default::default() }).unwrap();
                    rev += 1;
                    let e = state.entry(key(k)).or_insert((vec![], rev, 0, 0));
                    *e = (vec![v], e.1, rev, e.3 + 1);
                }
                Op::Del(k, w) => {
                    let lo = key(k);
                    let hi = if w == 0 { vec![] } else { vec![lo[0] + w] };
                    let (r, _) = s.delete_range(&DeleteRangeRequest { key: lo.clone(), range_end: hi.clone(), prev_kv: false }).unwrap();
                    let victims: Vec<_> = state.keys().filter(|kk| if hi.is_empty() { **kk == lo } else { kk.as_slice() >= lo.as_slice() && kk.as_slice() < hi.as_slice() }).cloned().collect();
                    prop_assert_eq!(r.deleted, victims.len() as i64);
                    if !victims.is_empty() {
                        rev += 1;
                        for v in victims { state.remove(&v); }
                    }
                }
                Op::TxnPuts(a, b, v) => {
                    let (ka, kb) = (key(a), key(b));
                    let mut ops = vec![RequestOp { request: Some(request_op::Request::RequestPut(PutRequest { key: ka.clone(), value: vec![v], ..Default::default() })) }];
                    if ka != kb {
                        ops.push(RequestOp { request: Some(request_op::Request::RequestPut(PutRequest { key: kb.clone(), value: vec![v], ..Default::default() })) });
                    }
                    let (r, events) = s.txn(&TxnRequest { compare: vec![], success: ops, failure: vec![] }).unwrap();
                    rev += 1;
                    prop_assert_eq!(r.header.unwrap().revision, rev);
                    prop_assert_eq!(events.len(), if ka == kb { 1 } else { 2 });
                    for k in [ka, kb] {
                        let e = state.entry(k).or_insert((vec![], rev, 0, 0));
                        if e.2 != rev { *e = (vec![v], e.1, rev, e.3 + 1); }
                    }
                }
                Op::Compact(c) => {
                    let target = i64::from(c) % (rev + 2);
                    let res = s.compact(target);
                    if target <= compacted {
                        prop_assert_eq!(res.unwrap_err(), tally_mvcc::MvccError::Compacted);
                    } else if target > rev {
                        prop_assert_eq!(res.unwrap_err(), tally_mvcc::MvccError::FutureRev);
                    } else {
                        prop_assert!(res.is_ok());
                        compacted = target;
                    }
                }
            }
            prop_assert_eq!(s.revision(), rev);
            if history.last().unwrap().0 == rev { history.pop(); }
            history.push((rev, state.clone()));
            // check every revision: retained ones match, compacted ones error
            for (at, st) in &history {
                let at = *at;
                // the model's state at revision `at` is the last history entry with revision <= at
                for r in [at] {
                    let q = RangeRequest { key: vec![b'a'], range_end: vec![b'z'], revision: r, ..Default::default() };
                    let res = s.range(&q);
                    if r < compacted {
                        prop_assert_eq!(res.unwrap_err(), tally_mvcc::MvccError::Compacted);
                        continue;
                    }
                    let got: Vec<_> = res.unwrap().kvs.into_iter().map(|kv| (kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version)).collect();
                    prop_assert_eq!(got, model_range(st, b"a", b"z"), "at revision {}", r);
                }
            }
            // limit / count at current revision
            let q = RangeRequest { key: vec![b'a'], range_end: vec![0], limit: 2, ..Default::default() };
            let r = s.range(&q).unwrap();
            prop_assert_eq!(r.count, state.len() as i64);
            prop_assert_eq!(r.more, state.len() > 2);
        }
    }
}
