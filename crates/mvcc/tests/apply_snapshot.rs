mod common;
use tally_mvcc::{CommandResponse, MvccError, SnapshotError, StateMachine, StoreConfig};
use tally_proto::etcdserverpb::*;
use tally_proto::tally_v1::{command::Op, Command};

fn cmd(client_id: u64, seq: u64, op: Op) -> Command {
    Command { client_id, seq, op: Some(op), ..Default::default() }
}
fn put_op(k: &str, v: &str) -> Op {
    Op::Put(PutRequest { key: k.into(), value: v.into(), ..Default::default() })
}

#[test]
fn retries_return_the_cached_response_without_reapplying() {
    let mut sm = StateMachine::default();
    let a = sm.apply(1, &cmd(7, 1, put_op("k", "v1")));
    assert!(a.fresh);
    assert_eq!(a.events.len(), 1);
    assert_eq!(a.revision, 2);
    let b = sm.apply(2, &cmd(7, 1, put_op("k", "v1")));
    assert!(!b.fresh);
    assert_eq!(b.response, a.response);
    assert!(b.events.is_empty());
    assert_eq!(sm.store.revision(), 2, "not applied twice");
    assert_eq!(sm.applied_index(), 2);
    // older seq: stale
    sm.apply(3, &cmd(7, 2, put_op("k", "v2")));
    let c = sm.apply(4, &cmd(7, 1, put_op("k", "v1")));
    assert_eq!(c.response, CommandResponse::Error(MvccError::StaleSequence));
    assert!(!c.fresh);
    // errors are cached too
    let e = sm.apply(5, &cmd(7, 3, Op::LeaseRevoke(LeaseRevokeRequest { id: 5 })));
    assert_eq!(e.response, CommandResponse::Error(MvccError::LeaseNotFound));
    assert_eq!(sm.apply(6, &cmd(7, 3, put_op("x", "y"))).response, e.response);
    // client 0 bypasses dedup
    sm.apply(7, &cmd(0, 1, put_op("z", "1")));
    let r = sm.apply(8, &cmd(0, 1, put_op("z", "1")));
    assert!(r.fresh);
    assert_eq!(sm.store.revision(), 5);
    // already applied indexes are ignored
    let old = sm.apply(8, &cmd(0, 1, put_op("z", "1")));
    assert_eq!((old.response, old.fresh), (CommandResponse::Noop, false));
    assert_eq!(sm.store.revision(), 5);
    sm.apply_noop(9);
    assert_eq!(sm.applied_index(), 9);
}

#[test]
fn session_table_is_bounded_lru() {
    let mut sm = StateMachine::new(StoreConfig { sessions_max: 2, ..Default::default() });
    sm.apply(1, &cmd(1, 1, put_op("a", "1")));
    sm.apply(2, &cmd(2, 1, put_op("b", "1")));
    sm.apply(3, &cmd(1, 1, put_op("a", "1"))); // retry touches client 1
    sm.apply(4, &cmd(3, 1, put_op("c", "1"))); // evicts client 2
    assert_eq!(sm.sessions().len(), 2);
    assert!(sm.sessions().get(2).is_none());
    assert!(sm.sessions().get(1).is_some());
    // documented hazard: client 2's retry now applies again
    assert!(sm.apply(5, &cmd(2, 1, put_op("b", "1"))).fresh);
}

#[test]
fn least_recently_used_session_is_evicted_the_same_after_a_snapshot() {
    let mut sm = StateMachine::new(StoreConfig { sessions_max: 3, ..Default::default() });
    let mut index = 0;
    let mut apply = |sm: &mut StateMachine, client: u64, seq: u64| {
        index += 1;
        sm.apply(index, &cmd(client, seq, put_op(&format!("k{client}"), &format!("{seq}"))));
    };
    // Client 1 is used again and again (each use leaves a stale recency record behind).
    apply(&mut sm, 1, 1);
    apply(&mut sm, 2, 1);
    apply(&mut sm, 3, 1);
    for seq in 2..500 {
        apply(&mut sm, 1, seq);
    }
    apply(&mut sm, 3, 2);
    let mut restored = StateMachine::restore(&sm.snapshot()).expect("restore");
    assert_eq!(restored, sm);
    // Client 2 is the least recently used, on both.
    for m in [&mut sm, &mut restored] {
        m.apply(1000, &cmd(4, 1, put_op("k4", "1")));
        assert!(m.sessions().get(2).is_none());
        assert!([1, 3, 4].iter().all(|&c| m.sessions().get(c).is_some()));
    }
    assert_eq!(sm.snapshot(), restored.snapshot());
}

#[test]
fn all_command_kinds_apply() {
    let mut sm = StateMachine::default();
    let g = sm.apply(1, &cmd(1, 1, Op::LeaseGrant(LeaseGrantRequest { ttl: 10, id: 0 })));
    let CommandResponse::LeaseGrant(g) = g.response else { panic!() };
    assert!(g.id > 0);
    sm.apply(2, &cmd(1, 2, Op::Put(PutRequest { key: "l".into(), lease: g.id, ..Default::default() })));
    sm.apply(3, &cmd(1, 3, put_op("m", "1")));
    let t =
        sm.apply(4, &cmd(1, 4, Op::Txn(TxnRequest { success: vec![common::op_put("n", "1")], ..Default::default() })));
    assert!(matches!(t.response, CommandResponse::Txn(_)));
    let d = sm.apply(5, &cmd(1, 5, Op::DeleteRange(DeleteRangeRequest { key: "m".into(), ..Default::default() })));
    assert!(matches!(d.response, CommandResponse::DeleteRange(DeleteRangeResponse { deleted: 1, .. })));
    let c = sm.apply(6, &cmd(1, 6, Op::Compaction(CompactionRequest { revision: 3, physical: false })));
    assert!(matches!(c.response, CommandResponse::Compaction(_)));
    let r = sm.apply(7, &cmd(1, 7, Op::LeaseRevoke(LeaseRevokeRequest { id: g.id })));
    assert_eq!(r.events.len(), 1);
    assert_eq!(r.revision, 6);
    assert!(matches!(
        sm.apply(8, &Command { client_id: 1, seq: 8, op: None, ..Default::default() }).response,
        CommandResponse::Noop
    ));
}

fn busy_state_machine() -> StateMachine {
    let mut sm = StateMachine::default();
    let mut i = 0;
    let mut next = || {
        i += 1;
        i
    };
    sm.apply(next(), &cmd(1, 1, Op::LeaseGrant(LeaseGrantRequest { ttl: 10, id: 42 })));
    for n in 0..50u64 {
        let k = format!("key{}", n % 17);
        sm.apply(next(), &cmd(2 + n % 3, n + 1, put_op(&k, &format!("v{n}"))));
        if n % 7 == 0 {
            sm.apply(next(), &cmd(0, 0, Op::DeleteRange(DeleteRangeRequest { key: k.into(), ..Default::default() })));
        }
    }
    sm.apply(next(), &cmd(9, 1, Op::Put(PutRequest { key: "leased".into(), lease: 42, ..Default::default() })));
    sm.apply(next(), &cmd(9, 2, Op::Compaction(CompactionRequest { revision: 20, physical: false })));
    sm.apply(
        next(),
        &cmd(9, 3, Op::Txn(TxnRequest { success: vec![common::op_get("key1", "")], ..Default::default() })),
    );
    sm.apply(next(), &cmd(10, 1, Op::LeaseRevoke(LeaseRevokeRequest { id: 1 })));
    sm
}

#[test]
fn snapshot_round_trip() {
    let sm = busy_state_machine();
    let snap = sm.snapshot();
    let back = StateMachine::restore(&snap).unwrap();
    assert_eq!(back, sm);
    assert_eq!(back.snapshot(), snap);
    assert_eq!(back.size_bytes(), sm.size_bytes());
    assert!(sm.size_bytes() > 0);
    assert_eq!(back.store.lease(42).unwrap().keys.len(), 1);
    // the restored machine behaves identically
    let (mut a, mut b) = (sm, back);
    for (i, c) in [
        cmd(9, 3, put_op("x", "y")),
        cmd(11, 1, put_op("x", "z")),
        cmd(1, 2, Op::LeaseRevoke(LeaseRevokeRequest { id: 42 })),
    ]
    .iter()
    .enumerate()
    {
        let idx = a.applied_index() + 1 + i as u64;
        assert_eq!(a.apply(idx, c), b.apply(idx, c));
    }
    assert_eq!(a, b);
}

#[test]
fn corrupt_snapshots_are_rejected() {
    let snap = busy_state_machine().snapshot();
    assert_eq!(StateMachine::restore(&[]).unwrap_err(), SnapshotError::BadMagic);
    assert_eq!(StateMachine::restore(b"garbage garbage garbage").unwrap_err(), SnapshotError::BadMagic);
    let mut v = snap.clone();
    v[8] = 99;
    assert_eq!(StateMachine::restore(&v).unwrap_err(), SnapshotError::UnsupportedVersion(99));
    for pos in [12, snap.len() / 3, snap.len() / 2, snap.len() - 5, snap.len() - 1] {
        let mut v = snap.clone();
        v[pos] ^= 0x40;
        assert!(StateMachine::restore(&v).is_err(), "flip at {pos}");
    }
    for len in [13, 20, snap.len() / 2, snap.len() - 1] {
        assert!(StateMachine::restore(&snap[..len]).is_err(), "truncated to {len}");
    }
}

#[test]
fn a_copy_for_snapshot_encodes_as_the_state_machine_and_ignores_later_writes() {
    let mut sm = busy_state_machine();
    let copy = sm.copy_for_snapshot();
    let expected = sm.snapshot();
    // Writes after the copy (new keys, overwrites, deletes) must not reach it.
    let next = sm.applied_index() + 1;
    sm.apply(next, &cmd(9001, 1, put_op("zz-new-key", "v")));
    sm.apply(next + 1, &cmd(9001, 2, put_op("key1", "overwritten")));
    sm.apply(next + 2, &cmd(9001, 3, Op::DeleteRange(DeleteRangeRequest { key: "key2".into(), ..Default::default() })));
    let mut encoded = Vec::new();
    copy.snapshot_into(&mut encoded);
    assert!(encoded == expected, "the copy's snapshot differs from the state machine's at the copy");
    assert_ne!(sm.snapshot(), expected);
}
