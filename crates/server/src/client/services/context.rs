//! What every service shares: the node handle, identity for response headers, request ids
//! for exactly-once, and submitting writes (which the driver hands to the leader if need be).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tally_mvcc::{AuthInfo, AuthStore, CommandResponse, MvccError, StateMachine};
use tally_proto::etcdserverpb::{
    alarm_request, request_op, AlarmRequest, AlarmType, RangeRequest, RangeResponse, ResponseHeader, TxnRequest,
    TxnResponse,
};
use tally_proto::tally_v1::{command::Op, Command};
use tally_raft::NodeId;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::Status;

use super::read_query::{ReadAnswer, ReadQuery};
use crate::client::auth::Authenticator;
use crate::client::errors;
use crate::node::driver::{NodeHandle, ProposeOutcome, ReadOutcome};
use crate::peer::transport::PeerDirectory;
use tally_node::cluster::ClusterSpec;
use tally_node::members::Members;
use tally_node::request_ids::RequestIds;

/// How long a client request may take, retries and forwarding included (etcd: 5 s + election).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(7);
/// How long one attempt waits before proposing again with the same request id.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// The pause before proposing again when no leader is known (or we were it).
pub const RETRY_DELAY: Duration = Duration::from_millis(20);
/// gRPC metadata carrying a client's own request identity, so a client retry is applied once.
pub const CLIENT_ID_HEADER: &str = "tally-client-id";
pub const SEQ_HEADER: &str = "tally-seq";

/// Everything a [`Context`] is built from.
pub struct ContextParts {
    pub node: NodeHandle,
    pub sm: Arc<RwLock<StateMachine>>,
    pub members: Arc<RwLock<Members>>,
    pub member_id: NodeId,
    pub name: String,
    pub client_urls: Vec<String>,
    pub spec: ClusterSpec,
    pub directory: PeerDirectory,
    pub quota_bytes: u64,
    pub max_request_bytes: usize,
    pub max_txn_ops: usize,
    pub auth: Authenticator,
    pub member_tls: Option<crate::tls::ChannelConnector>,
}

pub struct Context {
    pub node: NodeHandle,
    /// The state machine, for reads that need no round through the driver.
    pub sm: Arc<RwLock<StateMachine>>,
    /// The replicated member table.
    pub members: Arc<RwLock<Members>>,
    pub member_id: NodeId,
    pub name: String,
    pub client_urls: Vec<String>,
    pub spec: ClusterSpec,
    pub directory: PeerDirectory,
    /// `--quota-backend-bytes`: the state machine size writes may not take it past.
    pub quota_bytes: u64,
    /// `--max-request-bytes`: the largest KV request accepted.
    pub max_request_bytes: usize,
    /// `--max-txn-ops`: the most ops a txn taken here may have.
    pub max_txn_ops: usize,
    /// Who is calling, and the Auth service's work besides the log.
    pub auth: Authenticator,
    /// Request ids minted here for clients that bring none: unique per request.
    request_ids: RequestIds,
    /// gRPC channels to other members' client URLs, for what only the leader serves (lease
    /// keep-alives and the like).
    channels: Mutex<HashMap<String, Channel>>,
    /// TLS for the https ones.
    member_tls: Option<crate::tls::ChannelConnector>,
}

impl Context {
    pub fn new(parts: ContextParts) -> Arc<Self> {
        let ContextParts {
            node,
            sm,
            members,
            member_id,
            name,
            client_urls,
            spec,
            directory,
            quota_bytes,
            max_request_bytes,
            max_txn_ops,
            auth,
            member_tls,
        } = parts;
        Arc::new(Self {
            node,
            sm,
            members,
            member_id,
            name,
            client_urls,
            spec,
            directory,
            quota_bytes,
            max_request_bytes,
            max_txn_ops,
            auth,
            request_ids: RequestIds::new(member_id),
            channels: Mutex::new(HashMap::new()),
            member_tls,
        })
    }

    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.spec.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: self.node.shared.term.load(Ordering::Relaxed),
        }
    }

    pub fn current_revision(&self) -> i64 {
        self.sm.read().expect("sm lock").store.revision()
    }

    /// Range: linearizable (ReadIndex, retried until the request deadline) unless the request
    /// asks for serializable, which reads the local state.
    pub async fn range(&self, req: RangeRequest, who: &AuthInfo) -> Result<RangeResponse, Status> {
        let serializable = req.serializable;
        match self.read(ReadQuery::Range(req), serializable, who).await? {
            ReadAnswer::Range(resp) => Ok(resp),
            ReadAnswer::Txn(_) => Err(Status::internal("a range was answered with a txn")),
        }
    }

    /// A txn without writes, served like a range instead of through the log (as etcd does):
    /// serializable if every op is a serializable range, else after a ReadIndex.
    pub async fn read_only_txn(&self, req: TxnRequest, who: &AuthInfo) -> Result<TxnResponse, Status> {
        // etcd's isTxnSerializable.
        let serializable = req
            .success
            .iter()
            .chain(&req.failure)
            .all(|op| matches!(&op.request, Some(request_op::Request::RequestRange(r)) if r.serializable));
        match self.read(ReadQuery::Txn(req), serializable, who).await? {
            ReadAnswer::Txn(resp) => Ok(resp),
            ReadAnswer::Range(_) => Err(Status::internal("a txn was answered with a range")),
        }
    }

    /// A read as `who` may make it: permissions checked against the same state it reads
    /// (etcd's `doSerialize`).
    async fn read(&self, query: ReadQuery, serializable: bool, who: &AuthInfo) -> Result<ReadAnswer, Status> {
        // Serializable: local state, no round through the driver or the leader.
        if !serializable {
            self.linearizable_barrier().await?;
        }
        query.answer(&self.sm, who).map_err(|e| errors::from_mvcc(&e))
    }

    /// Returns once this member's state reflects every write acknowledged before the call
    /// (ReadIndex); a read of the local state after it is linearizable.
    pub async fn linearizable_barrier(&self) -> Result<(), Status> {
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        loop {
            // The driver answers every attempt, `Lost` after its own attempt timeout: no timer here.
            match self.node.read_barrier().await {
                Some(ReadOutcome::Ready) => return Ok(()),
                Some(ReadOutcome::NoLeader | ReadOutcome::Lost) if Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await
                }
                Some(ReadOutcome::NoLeader) => return Err(errors::no_leader()),
                Some(ReadOutcome::Lost) => return Err(errors::timeout()),
                None => return Err(errors::stopped()),
            }
        }
    }

    /// Keeps the revision the state machine set and fills in who answered.
    pub fn fill_header(&self, header: &mut Option<ResponseHeader>) {
        let revision = header.as_ref().map_or(0, |h| h.revision);
        *header = Some(self.header(revision));
    }

    /// Who sent a request (see [`Authenticator::caller`]).
    pub async fn caller<T>(&self, request: &tonic::Request<T>) -> Result<AuthInfo, Status> {
        self.auth.caller(request.metadata(), request.extensions()).await.map_err(|e| errors::from_mvcc(&e))
    }

    /// Asks the local auth state whether `who` may do something (reads, and what etcd checks
    /// before proposing).
    pub fn check_auth(&self, check: impl FnOnce(&AuthStore) -> Result<(), MvccError>) -> Result<(), Status> {
        check(&self.sm.read().expect("sm lock").auth).map_err(|e| errors::from_mvcc(&e))
    }

    /// etcd's `IsAdminPermitted`, before proposing.
    pub fn check_admin(&self, who: &AuthInfo) -> Result<(), Status> {
        self.check_auth(|auth| auth.check_admin(who))
    }

    /// etcd's `requireAuthInfo`: with auth on, some credentials (any user's).
    pub fn require_credentials(&self, who: &AuthInfo) -> Result<(), Status> {
        self.check_auth(|auth| match auth.is_enabled() && who.revision == 0 {
            true => Err(MvccError::UserEmpty),
            false => Ok(()),
        })
    }

    /// `message` for another member to answer, with the caller's credentials.
    pub fn forwarded<T>(&self, from: &MetadataMap, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        for key in crate::client::auth::TOKEN_KEYS {
            if let Some(token) = from.get(key) {
                request.metadata_mut().insert(key, token.clone());
            }
        }
        request
    }

    /// A request id minted here, unique across the cluster.
    pub fn new_request_id(&self) -> u64 {
        self.request_ids.next()
    }

    /// A command for `op` with the client's request identity and `who` sent it.
    pub fn command(&self, metadata: &MetadataMap, who: &AuthInfo, op: Op) -> Command {
        let (client_id, seq) = self.request_identity(metadata);
        Command { client_id, seq, op: Some(op), auth_user: who.user.clone(), auth_revision: who.revision }
    }

    /// The client's own (id, seq) from metadata, or a fresh unique id for this request.
    pub fn request_identity(&self, metadata: &MetadataMap) -> (u64, u64) {
        let get = |key: &str| metadata.get(key).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        match (get(CLIENT_ID_HEADER), get(SEQ_HEADER)) {
            (Some(client), Some(seq)) if client != 0 => (client, seq),
            _ => (self.request_ids.next(), 1),
        }
    }

    /// Replicates `op` as `who` sent it (its permissions are checked at apply) and waits for
    /// its result; a refusal is the client's error.
    pub async fn replicate(&self, metadata: &MetadataMap, who: &AuthInfo, op: Op) -> Result<CommandResponse, Status> {
        match self.submit(self.command(metadata, who, op)).await? {
            CommandResponse::Error(e) => Err(errors::from_mvcc(&e)),
            response => Ok(response),
        }
    }

    /// Replicates a command and waits for its result. The driver proposes it here if we lead,
    /// or hands it to the leader over the peer connection; either way the answer comes from our
    /// own apply. Retried (with the same request id) across leader changes and lost attempts.
    pub async fn submit(&self, cmd: Command) -> Result<CommandResponse, Status> {
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        let mut last_leader = None;
        while Instant::now() < deadline {
            let attempt = tokio::time::timeout(ATTEMPT_TIMEOUT, self.node.propose(cmd.clone())).await;
            match attempt {
                Ok(Some(ProposeOutcome::Applied(response))) => return Ok(response),
                // The leader changed under a pending attempt: try again through the new one.
                Ok(Some(ProposeOutcome::NotLeader(Some(leader)))) if leader != self.member_id => {
                    last_leader = Some(leader)
                }
                Ok(Some(ProposeOutcome::NotLeader(leader))) => {
                    last_leader = leader;
                    tokio::time::sleep(RETRY_DELAY).await;
                }
                Ok(None) => return Err(errors::stopped()),
                Err(_elapsed) => {}
            }
        }
        Err(if last_leader.is_none() { errors::no_leader() } else { errors::timeout() })
    }

    /// Raises `alarm` for `member_id` through the log; a failure is logged (the callers refuse
    /// or report what raised it either way).
    pub async fn raise_alarm(&self, member_id: NodeId, alarm: AlarmType) {
        let raise =
            AlarmRequest { action: alarm_request::AlarmAction::Activate as i32, member_id, alarm: alarm as i32 };
        let cmd =
            Command { client_id: self.request_ids.next(), seq: 1, op: Some(Op::Alarm(raise)), ..Default::default() };
        if let Err(e) = self.submit(cmd).await {
            tracing::warn!("raising the {} alarm failed: {}", alarm.as_str_name(), e.message());
        }
    }

    /// A channel to the leader's client URL (as it announced in its peer hello).
    pub fn leader_channel(&self, leader: NodeId) -> Result<Channel, Status> {
        self.member_channel(leader).ok_or_else(errors::no_leader)
    }

    /// A channel to member `id`'s client URL (as it announced in its peer hello).
    pub fn member_channel(&self, id: NodeId) -> Option<Channel> {
        let url = self.directory.read().expect("lock").get(&id).and_then(|p| p.client_urls.first().cloned())?;
        let mut channels = self.channels.lock().expect("lock");
        if let Some(channel) = channels.get(&url) {
            return Some(channel.clone());
        }
        let endpoint =
            tonic::transport::Endpoint::from_shared(url.clone()).ok()?.connect_timeout(Duration::from_secs(1));
        let channel = match &self.member_tls {
            Some(tls) if crate::tls::is_https(&url) => endpoint.connect_with_connector_lazy(tls.clone()),
            _ => endpoint.connect_lazy(),
        };
        channels.insert(url, channel.clone());
        Some(channel)
    }

    /// A copy of the state machine to read at length off its lock (cheap: it shares the key
    /// histories), with its revision.
    pub fn state_copy(&self) -> (tally_mvcc::SnapshotCopy, i64) {
        let sm = self.sm.read().expect("sm lock");
        (sm.copy_for_snapshot(), sm.store.revision())
    }

    /// The store's HashKV at `revision` (0: now), computed off the lock from a copy; with the
    /// current revision.
    pub async fn hash_kv(&self, revision: i64) -> Result<(tally_mvcc::KvHash, i64), Status> {
        let (copy, current) = self.state_copy();
        let hashed = tokio::task::spawn_blocking(move || copy.hash_kv(revision))
            .await
            .map_err(|e| Status::internal(format!("hashing: {e}")))?;
        Ok((hashed.map_err(|e| errors::from_mvcc(&e))?, current))
    }
}
