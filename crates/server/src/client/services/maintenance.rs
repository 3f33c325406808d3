//! The etcd Maintenance service: Status, Alarm, MoveLeader, Snapshot, Hash and HashKV.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tally_mvcc::CommandResponse;
use tally_proto::etcdserverpb::alarm_request::AlarmAction;
use tally_proto::etcdserverpb::maintenance_server::Maintenance;
use tally_proto::etcdserverpb::*;
use tally_proto::tally_v1::command::Op;
use tonic::{Request, Response, Status};

use super::context::Context;
use crate::client::errors;
use crate::node::backup;

/// The etcd release whose behaviour Tally matches (the newest 3.5.x, what the differential test
/// compares against: `scripts/etcd-ref`). Clients compare it to enable features: Kubernetes
/// 1.31+ serves consistent reads from its watch cache only from etcd 3.5.13 on, which relies
/// on progress notifications as 3.5.13 sends them.
pub const ETCD_API_VERSION: &str = "3.5.35";
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(5);
/// etcd's snapshot blob size.
const SNAPSHOT_BLOB_BYTES: usize = 32 * 1024;

pub struct MaintenanceService {
    ctx: Arc<Context>,
}

impl MaintenanceService {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!("{what} is not supported by Tally yet"))
}

impl MaintenanceService {
    /// Root only, refused as etcd refuses Defragment, Hash, HashKV and Snapshot: with its auth
    /// package's own error, untranslated (code Unknown, text "auth: ...").
    async fn admin_untranslated<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let who = self.ctx.auth.caller(request.metadata(), request.extensions()).await;
        let checked = who.and_then(|who| self.ctx.sm.read().expect("sm lock").auth.check_admin(&who));
        checked.map_err(|e| Status::unknown(e.auth_package_text()))
    }
}

type SnapshotStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    /// Lists, raises or clears alarms through the log, as etcd does (a GET too, so it is
    /// linearizable).
    async fn alarm(&self, request: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        // etcd: any user may list alarms; only root raises or clears them.
        let who = self.ctx.caller(&request).await?;
        match request.get_ref().action() {
            AlarmAction::Get => self.ctx.require_credentials(&who)?,
            _ => self.ctx.check_admin(&who)?,
        }
        let cmd = self.ctx.command(request.metadata(), &who, Op::Alarm(*request.get_ref()));
        match self.ctx.submit(cmd).await? {
            CommandResponse::Alarm(mut resp) => {
                self.ctx.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            CommandResponse::Error(e) => Err(errors::from_mvcc(&e)),
            _ => Err(Status::internal("alarm answered with another response type")),
        }
    }

    async fn status(&self, request: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        self.ctx.require_credentials(&self.ctx.caller(&request).await?)?;
        let status = self.ctx.node.status().await.ok_or_else(errors::stopped)?;
        Ok(Response::new(StatusResponse {
            header: Some(self.ctx.header(0)),
            version: ETCD_API_VERSION.to_string(),
            db_size: status.db_size,
            leader: status.leader.unwrap_or(0),
            raft_index: status.committed,
            raft_term: status.term,
            raft_applied_index: status.applied,
            errors: Vec::new(),
            db_size_in_use: status.db_size,
            is_learner: status.is_learner,
        }))
    }

    async fn defragment(&self, request: Request<DefragmentRequest>) -> Result<Response<DefragmentResponse>, Status> {
        self.admin_untranslated(&request).await?;
        // The state is in memory: there is nothing to defragment.
        Ok(Response::new(DefragmentResponse { header: Some(self.ctx.header(0)) }))
    }

    /// etcd hashes its whole database file; Tally has none, so this is the HashKV of the
    /// current revision (the same on every member at the same revision).
    async fn hash(&self, request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        self.admin_untranslated(&request).await?;
        let (kv, revision) = self.ctx.hash_kv(0).await?;
        Ok(Response::new(HashResponse { header: Some(self.ctx.header(revision)), hash: kv.hash }))
    }

    /// etcd's HashKV: this member's hash of every revision it holds up to `revision` (0: now).
    async fn hash_kv(&self, request: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        self.admin_untranslated(&request).await?;
        let (kv, revision) = self.ctx.hash_kv(request.into_inner().revision).await?;
        Ok(Response::new(HashKvResponse {
            header: Some(self.ctx.header(revision)),
            hash: kv.hash,
            compact_revision: kv.compact_revision,
        }))
    }

    type SnapshotStream = SnapshotStream;

    /// A consistent snapshot of this member's state machine, with its SHA-256 at the end, in
    /// 32 KiB blobs as etcd sends them; `remaining_bytes` counts down to 0 on the last one.
    async fn snapshot(&self, request: Request<SnapshotRequest>) -> Result<Response<Self::SnapshotStream>, Status> {
        self.admin_untranslated(&request).await?;
        let (copy, revision) = self.ctx.state_copy();
        let file = tokio::task::spawn_blocking(move || backup::encode(&copy))
            .await
            .map_err(|e| Status::internal(format!("encoding the snapshot: {e}")))?;
        let header = self.ctx.header(revision);
        let total = file.len();
        let blobs: Vec<Result<SnapshotResponse, Status>> = file
            .chunks(SNAPSHOT_BLOB_BYTES)
            .scan(0usize, |sent, blob| {
                *sent += blob.len();
                Some(Ok(SnapshotResponse {
                    header: Some(header),
                    remaining_bytes: (total - *sent) as u64,
                    blob: blob.to_vec(),
                }))
            })
            .collect();
        tracing::info!(revision, bytes = total, "sending a snapshot to a client");
        Ok(Response::new(Box::pin(tokio_stream::iter(blobs))))
    }

    async fn move_leader(&self, request: Request<MoveLeaderRequest>) -> Result<Response<MoveLeaderResponse>, Status> {
        self.ctx.check_admin(&self.ctx.caller(&request).await?)?;
        let target = request.into_inner().target_id;
        if self.ctx.node.shared.leader() != Some(self.ctx.member_id) {
            return Err(errors::not_leader());
        }
        if !self.ctx.spec.members.contains_key(&target) {
            return Err(errors::from_mvcc(&tally_mvcc::MvccError::BadLeaderTransferee));
        }
        match self.ctx.node.transfer(target).await {
            Some(Ok(())) => {}
            Some(Err(_)) => return Err(errors::from_mvcc(&tally_mvcc::MvccError::BadLeaderTransferee)),
            None => return Err(errors::stopped()),
        }
        let deadline = Instant::now() + TRANSFER_TIMEOUT;
        while self.ctx.node.shared.leader() != Some(target) {
            if Instant::now() > deadline {
                return Err(errors::from_mvcc(&tally_mvcc::MvccError::TimeoutLeaderTransfer));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(Response::new(MoveLeaderResponse { header: Some(self.ctx.header(0)) }))
    }

    async fn downgrade(&self, request: Request<DowngradeRequest>) -> Result<Response<DowngradeResponse>, Status> {
        self.ctx.check_admin(&self.ctx.caller(&request).await?)?;
        Err(not_yet("Downgrade"))
    }
}
