//! Every record and message decodes to what was encoded, and malformed bytes are refused without
//! a panic.

use proptest::prelude::*;
use tally_zk::proto::*;

fn path() -> impl Strategy<Value = String> {
    "(/[a-z0-9é.]{0,4}){1,3}"
}

fn data() -> impl Strategy<Value = Option<Vec<u8>>> {
    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8))
}

fn id() -> impl Strategy<Value = Id> {
    ("[a-z]{0,6}", "[a-z:0-9]{0,8}").prop_map(|(scheme, id)| Id { scheme, id })
}

fn acls() -> impl Strategy<Value = Vec<Acl>> {
    proptest::collection::vec((any::<i32>(), id()).prop_map(|(perms, id)| Acl { perms, id }), 0..3)
}

fn stat() -> impl Strategy<Value = Stat> {
    (any::<[i64; 6]>(), any::<[i32; 5]>()).prop_map(|(l, i)| Stat {
        czxid: l[0],
        mzxid: l[1],
        ctime: l[2],
        mtime: l[3],
        version: i[0],
        cversion: i[1],
        aversion: i[2],
        ephemeral_owner: l[4],
        data_length: i[3],
        num_children: i[4],
        pzxid: l[5],
    })
}

fn names() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(path(), 0..3)
}

fn create() -> impl Strategy<Value = CreateRequest> {
    (path(), data(), acls(), 0..7i32).prop_map(|(path, data, acl, flags)| CreateRequest { path, data, acl, flags })
}

fn write_op() -> impl Strategy<Value = WriteOp> {
    prop_oneof![
        create().prop_map(WriteOp::Create),
        create().prop_map(WriteOp::Create2),
        create().prop_map(WriteOp::CreateContainer),
        (create(), any::<i64>()).prop_map(|(c, ttl)| WriteOp::CreateTtl(CreateTtlRequest {
            path: c.path,
            data: c.data,
            acl: c.acl,
            flags: c.flags,
            ttl
        })),
        (path(), any::<i32>()).prop_map(|(path, version)| WriteOp::Delete(DeleteRequest { path, version })),
        (path(), data(), any::<i32>()).prop_map(|(path, data, version)| WriteOp::SetData(SetDataRequest {
            path,
            data,
            version
        })),
        (path(), any::<i32>()).prop_map(|(path, version)| WriteOp::Check(CheckVersionRequest { path, version })),
    ]
}

fn watched() -> impl Strategy<Value = WatchedPathRequest> {
    (path(), any::<bool>()).prop_map(|(path, watch)| WatchedPathRequest { path, watch })
}

fn path_request() -> impl Strategy<Value = PathRequest> {
    path().prop_map(|path| PathRequest { path })
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        write_op().prop_map(Request::Write),
        (path(), acls(), any::<i32>())
            .prop_map(|(path, acl, version)| Request::Write(WriteOp::SetAcl(SetAclRequest { path, acl, version }))),
        proptest::collection::vec(write_op(), 0..4).prop_map(Request::Multi),
        proptest::collection::vec(
            prop_oneof![watched().prop_map(ReadOp::GetData), watched().prop_map(ReadOp::GetChildren)],
            0..4
        )
        .prop_map(Request::MultiRead),
        watched().prop_map(Request::Exists),
        watched().prop_map(Request::GetData),
        watched().prop_map(Request::GetChildren),
        watched().prop_map(Request::GetChildren2),
        path_request().prop_map(Request::GetAcl),
        path_request().prop_map(Request::GetAllChildrenNumber),
        path_request().prop_map(Request::GetEphemerals),
        path_request().prop_map(Request::Sync),
        Just(Request::Ping),
        Just(Request::CloseSession),
        Just(Request::WhoAmI),
        (any::<i32>(), "[a-z]{0,6}", proptest::collection::vec(any::<u8>(), 0..8))
            .prop_map(|(auth_type, scheme, auth)| Request::Auth(AuthPacket { auth_type, scheme, auth })),
        (any::<i64>(), names(), names(), names()).prop_map(|(z, d, e, c)| Request::SetWatches(SetWatches {
            relative_zxid: z,
            data_watches: d,
            exist_watches: e,
            child_watches: c
        })),
        (any::<i64>(), names(), names(), names(), names(), names()).prop_map(|(z, d, e, c, p, r)| {
            Request::SetWatches2(SetWatches2 {
                relative_zxid: z,
                data_watches: d,
                exist_watches: e,
                child_watches: c,
                persistent_watches: p,
                persistent_recursive_watches: r,
            })
        }),
        (path(), 0..2i32).prop_map(|(path, mode)| Request::AddWatch(AddWatchRequest { path, mode })),
        (path(), 1..4i32).prop_map(|(path, t)| Request::CheckWatches(WatchesRequest { path, watcher_type: t })),
        (path(), 1..4i32).prop_map(|(path, t)| Request::RemoveWatches(WatchesRequest { path, watcher_type: t })),
    ]
}

fn op_result() -> impl Strategy<Value = OpResult> {
    prop_oneof![
        path().prop_map(|path| OpResult::Create { path }),
        (path(), stat()).prop_map(|(path, stat)| OpResult::Create2 { path, stat }),
        Just(OpResult::Delete),
        stat().prop_map(|stat| OpResult::SetData { stat }),
        Just(OpResult::Check),
        (data(), stat()).prop_map(|(data, stat)| OpResult::GetData { data, stat }),
        names().prop_map(|children| OpResult::GetChildren { children }),
        any::<i32>().prop_map(|err| OpResult::Error { err }),
    ]
}

/// A response with the op code whose reply it is.
fn response() -> impl Strategy<Value = (i32, Response)> {
    prop_oneof![
        Just((op::DELETE, Response::Empty)),
        path().prop_map(|path| (op::CREATE, Response::Create { path })),
        (path(), stat()).prop_map(|(path, stat)| (op::CREATE_TTL, Response::Create2 { path, stat })),
        stat().prop_map(|s| (op::EXISTS, Response::Stat(s))),
        (data(), stat()).prop_map(|(data, stat)| (op::GET_DATA, Response::GetData { data, stat })),
        (acls(), stat()).prop_map(|(acl, stat)| (op::GET_ACL, Response::GetAcl { acl, stat })),
        names().prop_map(|children| (op::GET_CHILDREN, Response::GetChildren { children })),
        (names(), stat()).prop_map(|(children, stat)| (op::GET_CHILDREN2, Response::GetChildren2 { children, stat })),
        any::<i32>().prop_map(|n| (op::GET_ALL_CHILDREN_NUMBER, Response::AllChildrenNumber(n))),
        path().prop_map(|path| (op::SYNC, Response::Sync { path })),
        proptest::collection::vec(op_result(), 0..4).prop_map(|r| (op::MULTI, Response::Multi(r))),
        Just((op::ADD_WATCH, Response::AddWatch)),
        names().prop_map(|e| (op::GET_EPHEMERALS, Response::Ephemerals(e))),
        proptest::collection::vec(
            ("[a-z]{0,5}", "[a-z]{0,5}").prop_map(|(auth_scheme, user)| ClientInfo { auth_scheme, user }),
            0..3
        )
        .prop_map(|i| (op::WHO_AM_I, Response::WhoAmI(i))),
    ]
}

proptest! {
    #[test]
    fn requests_round_trip(request in request()) {
        let decoded = Request::decode(request.op_code(), &request.encode());
        prop_assert_eq!(decoded, Ok(request));
    }

    #[test]
    fn responses_round_trip((op_code, response) in response()) {
        prop_assert_eq!(Response::decode(op_code, &response.encode()), Ok(response));
    }

    #[test]
    fn records_round_trip(s in stat(), acl in acls(), event in (any::<i32>(), any::<i32>(), path())) {
        prop_assert_eq!(decode::<Stat>(&encode(&s)), Ok(s));
        prop_assert_eq!(decode::<Vec<Acl>>(&encode(&acl)), Ok(acl));
        let event = WatcherEvent { event_type: event.0, state: event.1, path: event.2 };
        prop_assert_eq!(decode::<WatcherEvent>(&encode(&event)), Ok(event));
    }

    #[test]
    fn connect_round_trips(
        v in any::<i32>(), z in any::<i64>(), t in any::<i32>(), s in any::<i64>(),
        password in proptest::collection::vec(any::<u8>(), 0..20), read_only in any::<bool>(),
    ) {
        let request = ConnectRequest {
            protocol_version: v, last_zxid_seen: z, timeout_ms: t, session_id: s, password: password.clone(), read_only,
        };
        prop_assert_eq!(decode::<ConnectRequest>(&encode(&request)), Ok(request));
        let response = ConnectResponse { protocol_version: v, timeout_ms: t, session_id: s, password, read_only };
        prop_assert_eq!(decode::<ConnectResponse>(&encode(&response)), Ok(response));
    }

    /// Any prefix of a valid body, and any garbage, decodes to a value or an error: never a panic.
    #[test]
    fn malformed_bodies_do_not_panic(request in request(), cut in any::<prop::sample::Index>(), junk in proptest::collection::vec(any::<u8>(), 0..64), op_code in -12..110i32) {
        let body = request.encode();
        let _ = Request::decode(request.op_code(), &body[..cut.index(body.len() + 1)]);
        let _ = Request::decode(op_code, &junk);
        let _ = Response::decode(op_code, &junk);
        let _ = decode::<ConnectRequest>(&junk);
    }
}

/// `zk.create("/a", "x".getBytes(), OPEN_ACL_UNSAFE, PERSISTENT)` from the Java client, xid 1.
#[test]
fn java_create_request_byte_for_byte() {
    let mut frame = encode(&RequestHeader { xid: 1, op: op::CREATE });
    let request = Request::Write(WriteOp::Create(CreateRequest {
        path: "/a".into(),
        data: Some(b"x".to_vec()),
        acl: Acl::open_unsafe(),
        flags: 0,
    }));
    frame.extend(request.encode());
    #[rustfmt::skip]
    let expected: Vec<u8> = [
        &[0, 0, 0, 1, 0, 0, 0, 1][..],                   // xid 1, op create
        &[0, 0, 0, 2, b'/', b'a'],                       // path
        &[0, 0, 0, 1, b'x'],                             // data
        &[0, 0, 0, 1],                                   // one ACL
        &[0, 0, 0, 31],                                  // perms ALL
        &[0, 0, 0, 5, b'w', b'o', b'r', b'l', b'd'],     // scheme
        &[0, 0, 0, 6, b'a', b'n', b'y', b'o', b'n', b'e'], // id
        &[0, 0, 0, 0],                                   // flags
    ].concat();
    assert_eq!(frame, expected);
    let header: RequestHeader = decode(&frame).unwrap();
    assert_eq!(Request::decode(header.op, &frame[8..]), Ok(request));
}

/// getData("/a", watch) and its reply: a null buffer as -1 and a 68-byte Stat.
#[test]
fn get_data_byte_for_byte() {
    let request = Request::GetData(WatchedPathRequest { path: "/a".into(), watch: true });
    assert_eq!(request.encode(), [0, 0, 0, 2, b'/', b'a', 1]);
    let body = Response::GetData { data: None, stat: Stat::default() }.encode();
    assert_eq!(body.len(), 4 + 68);
    assert_eq!(body[..4], [0xff; 4]);
}

#[test]
fn unknown_ops_and_reconfig_are_not_decoded() {
    assert_eq!(Request::decode(op::RECONFIG, &[]), Err(DecodeError::UnknownOp(op::RECONFIG)));
    assert_eq!(Request::decode(op::SASL, &[]), Err(DecodeError::UnknownOp(op::SASL)));
    assert_eq!(Request::decode(9999, &[]), Err(DecodeError::UnknownOp(9999)));
}

#[test]
fn add_watch_reply_is_an_error_response_of_zero() {
    assert_eq!(Response::AddWatch.encode(), [0, 0, 0, 0]);
}
