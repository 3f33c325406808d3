//! Sending a step to one system and turning its answer into comparable text.
//!
//! Normalisation (everything else is compared exactly):
//! * every response header loses `cluster_id`, `member_id`, `raft_term` (as `differential/exec.rs`
//!   does); its `revision` is kept: etcd puts the KV store's revision into auth responses too;
//! * a token from Authenticate is compared by shape: a simple token is `<16 letters>.<raft
//!   index>` and the index differs between clusters (`<simple-token>`), a JWT is three
//!   base64url parts (`<jwt>`); the token itself is kept per user for later steps;
//! * bodies that describe the servers rather than the data (Status, Hash, HashKV, alarms,
//!   members, snapshot bytes, defragment) are compared as "answered" only: the point is whether
//!   the caller is let in;
//! * an error is its gRPC code and message.

use std::collections::HashMap;
use std::time::Duration;

use tally_proto::etcdserverpb::auth_client::AuthClient;
use tally_proto::etcdserverpb::cluster_client::ClusterClient;
use tally_proto::etcdserverpb::kv_client::KvClient;
use tally_proto::etcdserverpb::lease_client::LeaseClient;
use tally_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use tally_proto::etcdserverpb::watch_client::WatchClient;
use tally_proto::etcdserverpb::watch_request::RequestUnion;
use tally_proto::etcdserverpb::*;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use super::ops::{Op, Step, Who};
use super::pretty;
use super::procs::channel;

/// A normalised answer: the response as text, or (gRPC code, message).
pub type Outcome = Result<String, (tonic::Code, String)>;

pub struct System {
    kv: KvClient<Channel>,
    lease: LeaseClient<Channel>,
    watch: WatchClient<Channel>,
    auth: AuthClient<Channel>,
    maint: MaintenanceClient<Channel>,
    cluster: ClusterClient<Channel>,
    /// The token last handed to each user by this system.
    tokens: HashMap<String, String>,
    /// A peer URL for MemberAdd (never started: etcd refuses the request).
    pub spare_peer: String,
}

fn status(s: tonic::Status) -> (tonic::Code, String) {
    (s.code(), s.message().to_string())
}

fn header(h: &mut Option<ResponseHeader>) {
    if let Some(h) = h {
        h.cluster_id = 0;
        h.member_id = 0;
        h.raft_term = 0;
    }
}

/// What a token looks like, for comparison across systems.
pub fn token_shape(token: &str) -> &'static str {
    let simple = token.split_once('.').is_some_and(|(p, i)| {
        p.len() == 16 && p.bytes().all(|b| b.is_ascii_alphabetic()) && !i.is_empty() && i.parse::<u64>().is_ok()
    });
    let b64url = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let parts: Vec<&str> = token.split('.').collect();
    if simple {
        "<simple-token>"
    } else if parts.len() == 3 && parts.iter().all(|p| b64url(p)) {
        "<jwt>"
    } else {
        "<unexpected token shape>"
    }
}

/// Runs a unary call: `$client.$method(request)`; the response header normalised, as text.
macro_rules! unary {
    ($self:ident, $who:expr, $client:ident, $method:ident, $msg:expr) => {{
        let req = $self.request($who, $msg);
        match $self.$client.$method(req).await {
            Ok(r) => {
                let mut r = r.into_inner();
                header(&mut r.header);
                Ok(pretty(&r))
            }
            Err(s) => Err(status(s)),
        }
    }};
}

/// Like `unary!`, but the body only counts as "answered".
macro_rules! answered {
    ($self:ident, $who:expr, $client:ident, $method:ident, $msg:expr) => {{
        let req = $self.request($who, $msg);
        $self.$client.$method(req).await.map(|_| concat!(stringify!($method), ": answered").to_string()).map_err(status)
    }};
}

impl System {
    pub fn new(url: &str, spare_peer: String) -> System {
        let ch = channel(url);
        System {
            kv: KvClient::new(ch.clone()),
            lease: LeaseClient::new(ch.clone()),
            watch: WatchClient::new(ch.clone()),
            auth: AuthClient::new(ch.clone()),
            maint: MaintenanceClient::new(ch.clone()),
            cluster: ClusterClient::new(ch),
            tokens: HashMap::new(),
            spare_peer,
        }
    }

    /// The token `who` sends, if any.
    pub fn token(&self, who: &Who) -> Option<String> {
        match who {
            Who::Anon => None,
            Who::User(name) => self.tokens.get(name).cloned(),
            Who::Bogus(t) => Some(t.to_string()),
        }
    }

    fn request<T>(&self, who: &Who, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        if let Some(t) = self.token(who) {
            req.metadata_mut().insert("token", t.parse().expect("token is ASCII"));
        }
        req
    }

    pub async fn run(&mut self, step: &Step) -> Outcome {
        let who = &step.who;
        match step.op.clone() {
            Op::AuthEnable => unary!(self, who, auth, auth_enable, AuthEnableRequest {}),
            Op::AuthDisable => unary!(self, who, auth, auth_disable, AuthDisableRequest {}),
            Op::AuthStatus => unary!(self, who, auth, auth_status, AuthStatusRequest {}),
            Op::Authenticate(r) => {
                let name = r.name.clone();
                let req = self.request(who, r);
                let mut resp = self.auth.authenticate(req).await.map_err(status)?.into_inner();
                header(&mut resp.header);
                let token = std::mem::take(&mut resp.token);
                resp.token = token_shape(&token).to_string();
                self.tokens.insert(name, token);
                Ok(pretty(&resp))
            }
            Op::UserAdd(r) => unary!(self, who, auth, user_add, r),
            Op::UserGet(r) => unary!(self, who, auth, user_get, r),
            Op::UserList => unary!(self, who, auth, user_list, AuthUserListRequest {}),
            Op::UserDelete(r) => unary!(self, who, auth, user_delete, r),
            Op::UserChangePassword(r) => unary!(self, who, auth, user_change_password, r),
            Op::UserGrantRole(r) => unary!(self, who, auth, user_grant_role, r),
            Op::UserRevokeRole(r) => unary!(self, who, auth, user_revoke_role, r),
            Op::RoleAdd(r) => unary!(self, who, auth, role_add, r),
            Op::RoleGet(r) => unary!(self, who, auth, role_get, r),
            Op::RoleList => unary!(self, who, auth, role_list, AuthRoleListRequest {}),
            Op::RoleDelete(r) => unary!(self, who, auth, role_delete, r),
            Op::RoleGrantPermission(r) => unary!(self, who, auth, role_grant_permission, r),
            Op::RoleRevokePermission(r) => unary!(self, who, auth, role_revoke_permission, r),
            Op::Range(r) => unary!(self, who, kv, range, r),
            Op::Put(r) => unary!(self, who, kv, put, r),
            Op::Delete(r) => unary!(self, who, kv, delete_range, r),
            Op::Txn(r) => {
                let req = self.request(who, r);
                let mut resp = self.kv.txn(req).await.map_err(status)?.into_inner();
                txn_headers(&mut resp);
                Ok(pretty(&resp))
            }
            Op::Compact(r) => unary!(self, who, kv, compact, r),
            Op::LeaseGrant(r) => unary!(self, who, lease, lease_grant, r),
            Op::LeaseRevoke(r) => unary!(self, who, lease, lease_revoke, r),
            Op::LeaseTtl(r) => {
                let req = self.request(who, r);
                let mut resp = self.lease.lease_time_to_live(req).await.map_err(status)?.into_inner();
                header(&mut resp.header);
                resp.keys.sort(); // etcd lists them in Go map order
                resp.ttl = resp.ttl.min(3600) / 60; // remaining TTL: minutes are stable
                Ok(pretty(&resp))
            }
            Op::Watch(r) => self.watch_first(who, r).await,
            Op::Status => answered!(self, who, maint, status, StatusRequest {}),
            Op::AlarmList => answered!(self, who, maint, alarm, AlarmRequest::default()),
            Op::Hash => answered!(self, who, maint, hash, HashRequest {}),
            Op::HashKv => answered!(self, who, maint, hash_kv, HashKvRequest { revision: 0 }),
            Op::Defragment => answered!(self, who, maint, defragment, DefragmentRequest {}),
            Op::Snapshot => {
                let req = self.request(who, SnapshotRequest {});
                let mut stream = self.maint.snapshot(req).await.map_err(status)?.into_inner();
                match stream.next().await {
                    Some(Ok(_)) => Ok("Snapshot: first chunk".into()),
                    Some(Err(s)) => Err(status(s)),
                    None => Ok("Snapshot: empty stream".into()),
                }
            }
            Op::MemberList => answered!(self, who, cluster, member_list, MemberListRequest::default()),
            Op::MemberAdd => {
                let msg = MemberAddRequest { peer_ur_ls: vec![self.spare_peer.clone()], is_learner: true };
                answered!(self, who, cluster, member_add, msg)
            }
        }
    }

    /// Opens a watch stream carrying `who`'s token, creates the watch, returns the first response.
    async fn watch_first(&mut self, who: &Who, create: WatchCreateRequest) -> Outcome {
        let msg = WatchRequest { request_union: Some(RequestUnion::CreateRequest(create)) };
        // The request is queued before the call: a Go server sends its response headers only
        // with its first message. The stream stays open until the answer is read.
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(msg).await.expect("queue");
        let req = self.request(who, tokio_stream::wrappers::ReceiverStream::new(rx));
        let mut stream = self.watch.watch(req).await.map_err(status)?.into_inner();
        let first = tokio::time::timeout(Duration::from_secs(10), stream.message()).await;
        drop(tx);
        match first {
            Ok(Ok(Some(mut r))) => {
                header(&mut r.header);
                Ok(pretty(&r))
            }
            Ok(Ok(None)) => Err((tonic::Code::Unavailable, "watch stream ended without a response".into())),
            Ok(Err(s)) => Err(status(s)),
            Err(_) => Err((tonic::Code::DeadlineExceeded, "no watch response within 10s".into())),
        }
    }
}

fn txn_headers(r: &mut TxnResponse) {
    use response_op::Response;
    header(&mut r.header);
    for op in &mut r.responses {
        match &mut op.response {
            Some(Response::ResponseRange(r)) => header(&mut r.header),
            Some(Response::ResponsePut(r)) => header(&mut r.header),
            Some(Response::ResponseDeleteRange(r)) => header(&mut r.header),
            Some(Response::ResponseTxn(r)) => txn_headers(r),
            None => {}
        }
    }
}
