//! The etcd Maintenance service: Status, Alarm, MoveLeader, Snapshot, Hash and HashKV.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tally_mvcc::CommandResponse;
use tally_proto::etcdserverpb::maintenance_server::Maintenance;
use tally_proto::etcdserverpb::*;
use tally_proto::tally_v1::{command::Op, Command};
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

type SnapshotStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    /// Lists, raises or clears alarms through the log, as etcd does (a GET too, so it is
    /// linearizable).
    async fn alarm(&self, request: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        let (client_id, seq) = self.ctx.request_identity(request.metadata());
        let cmd = Command { client_id, seq, op: Some(Op::Alarm(request.into_inner())) };
        match self.ctx.submit(cmd).await? {
            CommandResponse::Alarm(mut resp) => {
                self.ctx.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            CommandResponse::Error(e) => Err(errors::from_mvcc(&e)),
            _ => Err(Status::internal("alarm answered with another response type")),
        }
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let status = self.ctx.node.status().await.ok_or_else(|| Status::unavailable("etcdserver: server stopped"))?;
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

    async fn defragment(&self, _: Request<DefragmentRequest>) -> Result<Response<DefragmentResponse>, Status> {
        // The state is in memory: there is nothing to defragment.
        Ok(Response::new(DefragmentResponse { header: Some(self.ctx.header(0)) }))
    }

    /// etcd hashes its whole database file; Tally has none, so this is the HashKV of the
    /// current revision (the same on every member at the same revision).
    async fn hash(&self, _: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        let (kv, revision) = self.ctx.hash_kv(0).await?;
        Ok(Response::new(HashResponse { header: Some(self.ctx.header(revision)), hash: kv.hash }))
    }

    /// etcd's HashKV: this member's hash of every revision it holds up to `revision` (0: now).
    async fn hash_kv(&self, request: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
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
    async fn snapshot(&self, _: Request<SnapshotRequest>) -> Result<Response<Self::SnapshotStream>, Status> {
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
        let target = request.into_inner().target_id;
        if self.ctx.node.shared.leader() != Some(self.ctx.member_id) {
            return Err(errors::not_leader());
        }
        if !self.ctx.spec.members.contains_key(&target) {
            return Err(Status::failed_precondition("etcdserver: bad leader transferee"));
        }
        match self.ctx.node.transfer(target).await {
            Some(Ok(())) => {}
            Some(Err(_)) => return Err(Status::failed_precondition("etcdserver: bad leader transferee")),
            None => return Err(Status::unavailable("etcdserver: server stopped")),
        }
        let deadline = Instant::now() + TRANSFER_TIMEOUT;
        while self.ctx.node.shared.leader() != Some(target) {
            if Instant::now() > deadline {
                return Err(Status::deadline_exceeded("etcdserver: request timed out, leader transfer took too long"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(Response::new(MoveLeaderResponse { header: Some(self.ctx.header(0)) }))
    }

    async fn downgrade(&self, _: Request<DowngradeRequest>) -> Result<Response<DowngradeResponse>, Status> {
        Err(not_yet("Downgrade"))
    }
}
