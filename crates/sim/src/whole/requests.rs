//! The etcd requests the simulator's clients send, built as the gRPC layer builds its
//! commands, and what their answers mean for the linearizability history. A key's absence is
//! recorded as the value 0 (written values start at 1), so deletes are writes of 0.

use tally_mvcc::CommandResponse;
use tally_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use tally_proto::etcdserverpb::request_op::Request as RequestOpKind;
use tally_proto::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, LeaseGrantRequest, LeaseRevokeRequest, PutRequest, RangeRequest,
    RequestOp, TxnRequest,
};
use tally_proto::tally_v1::command::Op;
use tally_proto::tally_v1::Command;

use crate::linearizability::Outcome;

pub const KEYS: u64 = 3;
/// The value the history records for an absent key.
pub const ABSENT: u64 = 0;

pub fn key_name(key: u64) -> Vec<u8> {
    format!("k{key}").into_bytes()
}

/// A write, as one log entry.
#[derive(Clone, Debug)]
pub enum Write {
    Put {
        key: u64,
        value: u64,
    },
    Delete {
        key: u64,
    },
    /// Sets `key` to `new` if it holds `expected` (`ABSENT`: if it does not exist).
    Cas {
        key: u64,
        expected: u64,
        new: u64,
    },
    Compact {
        revision: i64,
    },
    LeaseGrant {
        ttl: i64,
    },
    /// Puts `key` attached to `lease`.
    PutWithLease {
        key: Vec<u8>,
        lease: i64,
    },
    LeaseRevoke {
        lease: i64,
    },
    /// One step of the administrator's script ([`AUTH_SCRIPT`]).
    Auth(usize),
    /// A ZooKeeper session for the client's znode writes (4 s, ZooKeeper's shortest).
    ZkSession,
    /// A ZooKeeper client's write of znode `/k<key>` in `session`, so that the tree beside the
    /// store (sessions, ephemerals, their expiry) is replicated, snapshotted and compared too.
    /// `owner`: the connection it is sent on (0: not checked for SessionMoved).
    Zk {
        session: i64,
        owner: u64,
        key: u64,
        op: ZkOp,
    },
    /// A ZooKeeper client reattaching its session on connection `owner`.
    ZkAttach {
        session: i64,
        owner: u64,
    },
}

/// The simulated ZooKeeper clients' session timeout.
pub const ZK_SESSION_TIMEOUT_MS: i32 = 4000;

#[derive(Clone, Copy, Debug)]
pub enum ZkOp {
    Create,
    CreateEphemeral,
    /// A TTL node of 50 ms, which the leader deletes once it has been unmodified that long.
    CreateTtl,
    SetData,
    Delete,
}

/// The user the KV and lease clients act as once auth is on, and the administrator.
pub const USER: &str = "alice";
pub const ROOT: &str = "root";

/// Users without passwords (the simulator names its callers directly, as a verified token or
/// certificate would), alice allowed to read and write the clients' keys and lease keys, then
/// auth enabled: from then on every write is checked at apply on every member.
pub const AUTH_SCRIPT: usize = 9;

fn auth_step(step: usize) -> tally_proto::tally_v1::auth_command::Op {
    use tally_proto::authpb::{permission::Type, Permission, UserAddOptions};
    use tally_proto::etcdserverpb::{
        AuthEnableRequest, AuthRoleAddRequest, AuthRoleGrantPermissionRequest, AuthUserAddRequest,
        AuthUserGrantRoleRequest,
    };
    use tally_proto::tally_v1::auth_command::Op as A;
    let user = |name: &str| {
        let options = Some(UserAddOptions { no_password: true });
        A::UserAdd(AuthUserAddRequest { name: name.into(), options, ..Default::default() })
    };
    let grant =
        |user: &str, role: &str| A::UserGrantRole(AuthUserGrantRoleRequest { user: user.into(), role: role.into() });
    let permit = |key: &[u8], range_end: &[u8]| {
        let perm = Permission { perm_type: Type::Readwrite as i32, key: key.to_vec(), range_end: range_end.to_vec() };
        A::RoleGrantPermission(AuthRoleGrantPermissionRequest { name: "rw".into(), perm: Some(perm) })
    };
    match step {
        0 => user(ROOT),
        1 => A::RoleAdd(AuthRoleAddRequest { name: ROOT.into() }),
        2 => grant(ROOT, ROOT),
        3 => user(USER),
        4 => A::RoleAdd(AuthRoleAddRequest { name: "rw".into() }),
        5 => permit(b"k", b"l"),
        6 => permit(b"lease/", b"lease0"),
        7 => grant(USER, "rw"),
        _ => A::Enable(AuthEnableRequest {}),
    }
}

impl Write {
    /// The command `now_ms` (the receiving member's clock) stamps.
    pub fn command(&self, client_id: u64, seq: u64, now_ms: i64) -> Command {
        let op = match self {
            Write::Put { key, value } => {
                Op::Put(PutRequest { key: key_name(*key), value: value.to_string().into_bytes(), ..Default::default() })
            }
            Write::Delete { key } => Op::DeleteRange(DeleteRangeRequest { key: key_name(*key), ..Default::default() }),
            Write::Cas { key, expected, new } => Op::Txn(cas(*key, *expected, *new)),
            Write::Compact { revision } => Op::Compaction(CompactionRequest { revision: *revision, physical: false }),
            Write::LeaseGrant { ttl } => Op::LeaseGrant(LeaseGrantRequest { ttl: *ttl, id: 0 }),
            Write::PutWithLease { key, lease } => {
                Op::Put(PutRequest { key: key.clone(), value: b"alive".to_vec(), lease: *lease, ..Default::default() })
            }
            Write::LeaseRevoke { lease } => Op::LeaseRevoke(LeaseRevokeRequest { id: *lease }),
            Write::Auth(step) => Op::Auth(tally_proto::tally_v1::AuthCommand { op: Some(auth_step(*step)) }),
            Write::ZkSession => zk_command(
                tally_zk::ZkCommand::CreateSession { timeout_ms: ZK_SESSION_TIMEOUT_MS, password: [7; 16] },
                now_ms,
            ),
            Write::Zk { session, owner, key, op } => zk_op(*session, *owner, *key, *op, client_id ^ seq, now_ms),
            Write::ZkAttach { session, owner } => {
                zk_command(tally_zk::ZkCommand::Attach { session: *session, owner: *owner }, now_ms)
            }
        };
        Command { client_id, seq, op: Some(op), auth_user: self.user().into(), auth_revision: 0 }
    }

    /// Who sends it: compactions and the auth script need root.
    pub fn user(&self) -> &'static str {
        match self {
            Write::Compact { .. } | Write::Auth(_) => ROOT,
            _ => USER,
        }
    }

    /// What the history records for an applied answer (`Unknown` if it failed: a failed
    /// request changed nothing, which "unknown" allows too).
    pub fn outcome(&self, response: &CommandResponse) -> Outcome {
        match (self, response) {
            (Write::Put { .. } | Write::Delete { .. }, CommandResponse::Put(_) | CommandResponse::DeleteRange(_)) => {
                Outcome::Put
            }
            (Write::Cas { .. }, CommandResponse::Txn(t)) => Outcome::Cas(t.succeeded),
            _ => Outcome::Unknown,
        }
    }
}

fn zk_op(session: i64, owner: u64, key: u64, op: ZkOp, value: u64, now_ms: i64) -> Op {
    use tally_zk::proto::{Acl, CreateRequest, CreateTtlRequest, DeleteRequest, SetDataRequest, WriteOp};
    let path = format!("/k{key}");
    let data = Some(value.to_be_bytes().to_vec());
    let write = match op {
        ZkOp::Create => WriteOp::Create(CreateRequest { path, data, acl: Acl::open_unsafe(), flags: 0 }),
        ZkOp::CreateEphemeral => WriteOp::Create(CreateRequest { path, data, acl: Acl::open_unsafe(), flags: 1 }),
        ZkOp::CreateTtl => {
            WriteOp::CreateTtl(CreateTtlRequest { path, data, acl: Acl::open_unsafe(), flags: 5, ttl: 50 })
        }
        ZkOp::SetData => WriteOp::SetData(SetDataRequest { path, data, version: -1 }),
        ZkOp::Delete => WriteOp::Delete(DeleteRequest { path, version: -1 }),
    };
    let write = tally_zk::Write::One(write);
    zk_command(tally_zk::ZkCommand::Txn { session, owner, auth: Vec::new(), write }, now_ms)
}

/// `command` as the log carries it, with the proposer's clock (ctime, mtime).
fn zk_command(command: tally_zk::ZkCommand, now_ms: i64) -> Op {
    Op::Zk(tally_proto::tally_v1::ZkCommand { command: command.encode().into(), now_ms, ..Default::default() })
}

fn cas(key: u64, expected: u64, new: u64) -> TxnRequest {
    let key = key_name(key);
    let compare = if expected == ABSENT {
        Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Version as i32,
            key: key.clone(),
            target_union: Some(TargetUnion::Version(0)),
            ..Default::default()
        }
    } else {
        Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Value as i32,
            key: key.clone(),
            target_union: Some(TargetUnion::Value(expected.to_string().into_bytes())),
            ..Default::default()
        }
    };
    let put = PutRequest { key, value: new.to_string().into_bytes(), ..Default::default() };
    TxnRequest {
        compare: vec![compare],
        success: vec![RequestOp { request: Some(RequestOpKind::RequestPut(put)) }],
        failure: Vec::new(),
    }
}

/// A key's value in a state machine, as the history records it.
pub fn read_value(sm: &tally_mvcc::StateMachine, key: u64) -> u64 {
    let req = RangeRequest { key: key_name(key), ..Default::default() };
    let resp = sm.store.range(&req).expect("a range at the current revision");
    resp.kvs.first().map_or(ABSENT, |kv| {
        std::str::from_utf8(&kv.value).ok().and_then(|v| v.parse().ok()).expect("values the clients wrote")
    })
}
