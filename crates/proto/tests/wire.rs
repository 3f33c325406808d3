//! Wire-compatibility tests: golden encodings derived by hand from etcd v3.5's field numbers, gRPC paths, and
//! round trips of Tally's peer messages.

use prost::Message;
use tally_proto::etcdserverpb::{
    compare, range_request, request_op, watch_create_request, watch_request, CompactionRequest, Compare,
    DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest, RequestOp, ResponseHeader, TxnRequest,
    WatchCreateRequest, WatchRequest,
};
use tally_proto::mvccpb::{event, Event, KeyValue};
use tally_proto::tally_v1::{
    command, paxos_message, raft_message, Accepted, Append, AppendResp, Command, ConfState, ConflictHint, Entry,
    EntryKind, PaxosMessage, PeerBatch, PeerRejection, RaftMessage, ReadIndexResp, Snapshot, SnapshotMeta,
};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

/// Asserts `msg` encodes to exactly `expected` (hex, space separated) and decodes back to itself.
fn assert_golden<M: Message + Default + PartialEq + std::fmt::Debug>(msg: &M, expected: &str) {
    let got = msg.encode_to_vec();
    assert_eq!(hex(&got), expected, "encoding of {msg:?}");
    let back = M::decode(got.as_slice()).expect("decode");
    assert_eq!(&back, msg);
}

#[test]
fn put_request_golden() {
    let put = PutRequest { key: b"foo".to_vec(), value: b"bar".to_vec(), prev_kv: true, ..Default::default() };
    assert_golden(&put, "0a 03 66 6f 6f 12 03 62 61 72 20 01");

    // lease=3, ignore_value=5, ignore_lease=6; lease 0x1234 is varint b4 24.
    let put =
        PutRequest { key: b"k".to_vec(), lease: 0x1234, ignore_value: true, ignore_lease: true, ..Default::default() };
    assert_golden(&put, "0a 01 6b 18 b4 24 28 01 30 01");
}

#[test]
fn range_request_golden() {
    let req = RangeRequest {
        key: b"a".to_vec(),
        range_end: b"b".to_vec(),
        limit: 10,
        revision: 5,
        sort_order: range_request::SortOrder::Descend as i32,
        sort_target: range_request::SortTarget::Mod as i32,
        serializable: true,
        keys_only: true,
        count_only: true,
        min_mod_revision: 6,
        max_mod_revision: 7,
        min_create_revision: 8,
        max_create_revision: 9,
    };
    assert_golden(&req, "0a 01 61 12 01 62 18 0a 20 05 28 02 30 03 38 01 40 01 48 01 50 06 58 07 60 08 68 09");
    // Enum numbers as in etcd.
    assert_eq!(range_request::SortOrder::None as i32, 0);
    assert_eq!(range_request::SortOrder::Ascend as i32, 1);
    assert_eq!(range_request::SortTarget::Key as i32, 0);
    assert_eq!(range_request::SortTarget::Version as i32, 1);
    assert_eq!(range_request::SortTarget::Create as i32, 2);
    assert_eq!(range_request::SortTarget::Value as i32, 4);
}

#[test]
fn response_header_golden() {
    let h = ResponseHeader { cluster_id: 1, member_id: 2, revision: 3, raft_term: 4 };
    assert_golden(&h, "08 01 10 02 18 03 20 04");
}

#[test]
fn compare_golden() {
    let c = Compare {
        result: compare::CompareResult::NotEqual as i32,
        target: compare::CompareTarget::Value as i32,
        key: b"k".to_vec(),
        range_end: b"z".to_vec(),
        target_union: Some(compare::TargetUnion::Value(b"v".to_vec())),
    };
    // value = field 7 (3a); range_end = field 64, tag (64<<3)|2 = 514 = varint 82 04.
    assert_golden(&c, "08 03 10 03 1a 01 6b 3a 01 76 82 04 01 7a");

    // A oneof member set to its default value is still on the wire: etcd's "version == 0" (key absent) guard.
    let c = Compare {
        target: compare::CompareTarget::Version as i32,
        key: b"k".to_vec(),
        target_union: Some(compare::TargetUnion::Version(0)),
        ..Default::default()
    };
    assert_golden(&c, "1a 01 6b 20 00");

    for (t, n) in [
        (compare::CompareTarget::Version, 0),
        (compare::CompareTarget::Create, 1),
        (compare::CompareTarget::Mod, 2),
        (compare::CompareTarget::Value, 3),
        (compare::CompareTarget::Lease, 4),
    ] {
        assert_eq!(t as i32, n);
    }
    for (r, n) in [
        (compare::CompareResult::Equal, 0),
        (compare::CompareResult::Greater, 1),
        (compare::CompareResult::Less, 2),
        (compare::CompareResult::NotEqual, 3),
    ] {
        assert_eq!(r as i32, n);
    }
    // Other oneof members: create_revision=5, mod_revision=6, lease=8.
    let c = Compare { target_union: Some(compare::TargetUnion::CreateRevision(1)), ..Default::default() };
    assert_golden(&c, "28 01");
    let c = Compare { target_union: Some(compare::TargetUnion::ModRevision(1)), ..Default::default() };
    assert_golden(&c, "30 01");
    let c = Compare { target_union: Some(compare::TargetUnion::Lease(1)), ..Default::default() };
    assert_golden(&c, "40 01");
}

#[test]
fn txn_request_golden() {
    let txn = TxnRequest {
        compare: vec![Compare {
            key: b"k".to_vec(),
            target_union: Some(compare::TargetUnion::Version(0)),
            ..Default::default()
        }],
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                ..Default::default()
            })),
        }],
        failure: vec![RequestOp {
            request: Some(request_op::Request::RequestRange(RangeRequest { key: b"k".to_vec(), ..Default::default() })),
        }],
    };
    assert_golden(&txn, "0a 05 1a 01 6b 20 00 12 08 12 06 0a 01 6b 12 01 76 1a 05 0a 03 0a 01 6b");

    // request_delete_range = 3, request_txn = 4.
    let op = RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(DeleteRangeRequest {
            key: b"k".to_vec(),
            prev_kv: true,
            ..Default::default()
        })),
    };
    assert_golden(&op, "1a 05 0a 01 6b 18 01");
    let op = RequestOp { request: Some(request_op::Request::RequestTxn(TxnRequest::default())) };
    assert_golden(&op, "22 00");
}

#[test]
fn key_value_golden() {
    let kv = KeyValue {
        key: b"foo".to_vec(),
        create_revision: 2,
        mod_revision: 3,
        version: 1,
        value: b"bar".to_vec(),
        lease: 0x1234,
    };
    assert_golden(&kv, "0a 03 66 6f 6f 10 02 18 03 20 01 2a 03 62 61 72 30 b4 24");

    let ev = Event {
        r#type: event::EventType::Delete as i32,
        kv: Some(KeyValue { key: b"a".to_vec(), ..Default::default() }),
        prev_kv: Some(KeyValue { key: b"a".to_vec(), version: 1, ..Default::default() }),
    };
    assert_golden(&ev, "08 01 12 03 0a 01 61 1a 05 0a 01 61 20 01");
}

#[test]
fn watch_create_request_golden() {
    let create = WatchCreateRequest {
        key: b"a".to_vec(),
        range_end: b"b".to_vec(),
        start_revision: 100,
        progress_notify: true,
        filters: vec![
            watch_create_request::FilterType::Noput as i32,
            watch_create_request::FilterType::Nodelete as i32,
        ],
        prev_kv: true,
        watch_id: 7,
        fragment: true,
    };
    // filters (field 5) are a packed repeated enum, as proto3 and etcd's gogo code emit.
    let body = "0a 01 61 12 01 62 18 64 20 01 2a 02 00 01 30 01 38 07 40 01";
    assert_golden(&create, body);
    let req = WatchRequest { request_union: Some(watch_request::RequestUnion::CreateRequest(create)) };
    assert_golden(&req, &format!("0a 14 {body}"));

    // Decoders must also accept the unpacked form of the repeated enum.
    let unpacked = [0x28u8, 0x00, 0x28, 0x01];
    let decoded = WatchCreateRequest::decode(&unpacked[..]).unwrap();
    assert_eq!(decoded.filters, vec![0, 1]);

    // cancel_request = 2 (watch_id = 1), progress_request = 3.
    let cancel = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CancelRequest(
            tally_proto::etcdserverpb::WatchCancelRequest { watch_id: 7 },
        )),
    };
    assert_golden(&cancel, "12 02 08 07");
    let progress =
        WatchRequest { request_union: Some(watch_request::RequestUnion::ProgressRequest(Default::default())) };
    assert_golden(&progress, "1a 00");
}

#[test]
fn lease_grant_request_golden() {
    let req = LeaseGrantRequest { ttl: 60, id: 0x10 };
    assert_golden(&req, "08 3c 10 10");
    // int64 negatives are 10-byte varints (not zigzag).
    let req = LeaseGrantRequest { ttl: 0, id: -1 };
    assert_golden(&req, "10 ff ff ff ff ff ff ff ff ff 01");
}

#[test]
fn generated_service_paths() {
    let etcd = include_str!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs"));
    let lock = include_str!(concat!(env!("OUT_DIR"), "/v3lockpb.rs"));
    let election = include_str!(concat!(env!("OUT_DIR"), "/v3electionpb.rs"));
    let services: &[(&str, &str, &[&str])] = &[
        (etcd, "etcdserverpb.KV", &["Range", "Put", "DeleteRange", "Txn", "Compact"]),
        (etcd, "etcdserverpb.Watch", &["Watch"]),
        (
            etcd,
            "etcdserverpb.Lease",
            &["LeaseGrant", "LeaseRevoke", "LeaseKeepAlive", "LeaseTimeToLive", "LeaseLeases"],
        ),
        (etcd, "etcdserverpb.Cluster", &["MemberAdd", "MemberRemove", "MemberUpdate", "MemberList", "MemberPromote"]),
        (
            etcd,
            "etcdserverpb.Maintenance",
            &["Alarm", "Status", "Defragment", "Hash", "HashKV", "Snapshot", "MoveLeader", "Downgrade"],
        ),
        (
            etcd,
            "etcdserverpb.Auth",
            &[
                "AuthEnable",
                "AuthDisable",
                "AuthStatus",
                "Authenticate",
                "UserAdd",
                "UserGet",
                "UserList",
                "UserDelete",
                "UserChangePassword",
                "UserGrantRole",
                "UserRevokeRole",
                "RoleAdd",
                "RoleGet",
                "RoleList",
                "RoleDelete",
                "RoleGrantPermission",
                "RoleRevokePermission",
            ],
        ),
        (lock, "v3lockpb.Lock", &["Lock", "Unlock"]),
        (election, "v3electionpb.Election", &["Campaign", "Proclaim", "Leader", "Observe", "Resign"]),
    ];
    for (src, service, methods) in services {
        for m in *methods {
            let path = format!("\"/{service}/{m}\"");
            // Once in the client (request path) and once in the server's routing match.
            assert_eq!(src.matches(&path).count(), 2, "{path} in client and server");
        }
    }

    use tally_proto::etcdserverpb::{
        auth_server, cluster_server, kv_server, lease_server, maintenance_server, watch_server,
    };
    assert_eq!(kv_server::SERVICE_NAME, "etcdserverpb.KV");
    assert_eq!(watch_server::SERVICE_NAME, "etcdserverpb.Watch");
    assert_eq!(lease_server::SERVICE_NAME, "etcdserverpb.Lease");
    assert_eq!(cluster_server::SERVICE_NAME, "etcdserverpb.Cluster");
    assert_eq!(maintenance_server::SERVICE_NAME, "etcdserverpb.Maintenance");
    assert_eq!(auth_server::SERVICE_NAME, "etcdserverpb.Auth");
    assert_eq!(tally_proto::v3lockpb::lock_server::SERVICE_NAME, "v3lockpb.Lock");
    assert_eq!(tally_proto::v3electionpb::election_server::SERVICE_NAME, "v3electionpb.Election");
}

#[test]
fn raft_message_round_trip() {
    let entries = vec![
        Entry { term: 3, index: 10, kind: EntryKind::Normal as i32, data: Default::default() },
        Entry {
            term: 3,
            index: 11,
            kind: EntryKind::Normal as i32,
            data: Command {
                client_id: 42,
                seq: 7,
                op: Some(command::Op::Put(PutRequest {
                    key: b"foo".to_vec(),
                    value: b"bar".to_vec(),
                    ..Default::default()
                })),
                ..Default::default()
            }
            .encode_to_vec()
            .into(),
        },
        Entry { term: 3, index: 12, kind: EntryKind::ConfChange as i32, data: vec![1, 2, 3].into() },
    ];
    let msg = RaftMessage {
        from: 1,
        to: 2,
        term: 3,
        body: Some(raft_message::Body::Append(Append { prev_index: 9, prev_term: 2, entries, commit: 10 })),
    };
    let wire = msg.encode_to_vec();
    let back = RaftMessage::decode(bytes::Bytes::from(wire.clone())).unwrap();
    assert_eq!(back, msg);
    // from=1, to=2, term=3, then body field 8 (append), length-delimited.
    assert_eq!(&wire[..8], &[0x08, 0x01, 0x10, 0x02, 0x18, 0x03, 0x42, (wire.len() - 8) as u8]);

    let Some(raft_message::Body::Append(append)) = &back.body else { panic!("body: {:?}", back.body) };
    let cmd = Command::decode(append.entries[1].data.clone()).unwrap();
    assert_eq!((cmd.client_id, cmd.seq), (42, 7));
    assert!(matches!(cmd.op, Some(command::Op::Put(ref p)) if p.key == b"foo"));
    assert_eq!(append.entries[2].kind(), EntryKind::ConfChange);

    // A batch with the other shapes: rejection hints, optional fields and snapshots.
    let batch = PeerBatch {
        messages: vec![
            msg,
            RaftMessage {
                from: 2,
                to: 1,
                term: 3,
                body: Some(raft_message::Body::AppendResp(AppendResp {
                    index: 0,
                    reject: Some(ConflictHint { term: None, first_index: 5 }),
                })),
            },
            RaftMessage {
                from: 2,
                to: 1,
                term: 3,
                body: Some(raft_message::Body::ReadIndexResp(ReadIndexResp { ctx: "c".into(), index: Some(0) })),
            },
            RaftMessage {
                from: 1,
                to: 3,
                term: 3,
                body: Some(raft_message::Body::Snapshot(Snapshot {
                    meta: Some(SnapshotMeta {
                        index: 12,
                        term: 3,
                        conf: Some(ConfState { voters: vec![1, 2, 3], learners: vec![4], ..Default::default() }),
                    }),
                    data: vec![0xAA; 100].into(),
                })),
            },
        ],
        rejected: Some(PeerRejection { reason: "member 9 was removed".into() }),
        forwarded: vec![cmd.clone()],
        paxos: vec![PaxosMessage {
            from: 1,
            to: 2,
            ballot_round: 4,
            ballot_node: 1,
            body: Some(paxos_message::Body::Accepted(Accepted { through: 9, gap: Some(0) })),
        }],
    };
    let back = PeerBatch::decode(batch.encode_to_vec().as_slice()).unwrap();
    assert_eq!(back, batch);
    // `optional` distinguishes an explicit zero from absence.
    let Some(raft_message::Body::ReadIndexResp(r)) = &back.messages[2].body else { panic!() };
    assert_eq!(r.index, Some(0));
    let Some(raft_message::Body::AppendResp(r)) = &back.messages[1].body else { panic!() };
    assert_eq!(r.reject.as_ref().unwrap().term, None);

    // Command's other ops use etcd's request types.
    for op in [
        command::Op::DeleteRange(DeleteRangeRequest::default()),
        command::Op::Txn(TxnRequest::default()),
        command::Op::Compaction(CompactionRequest { revision: 5, physical: true }),
        command::Op::LeaseGrant(LeaseGrantRequest { ttl: 5, id: 1 }),
        command::Op::LeaseRevoke(tally_proto::etcdserverpb::LeaseRevokeRequest { id: 1 }),
    ] {
        let cmd = Command { client_id: 1, seq: 2, op: Some(op), ..Default::default() };
        assert_eq!(Command::decode(cmd.encode_to_vec().as_slice()).unwrap(), cmd);
    }
}
