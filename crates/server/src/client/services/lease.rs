//! The etcd Lease service. Grants and revokes are replicated commands; keep-alives and
//! TimeToLive are answered by the leader, which alone keeps the leases' clocks (a follower
//! forwards them).

use std::pin::Pin;
use std::sync::Arc;

use tally_mvcc::{Access, AuthInfo, CommandResponse, MvccError};
use tally_proto::etcdserverpb::lease_client::LeaseClient;
use tally_proto::etcdserverpb::lease_server::Lease;
use tally_proto::etcdserverpb::*;
use tally_proto::tally_v1::command::Op;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use super::context::Context;
use crate::client::errors;
use crate::node::driver::LeaseOutcome;

pub struct LeaseService {
    ctx: Arc<Context>,
}

impl LeaseService {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }
}

/// etcd's lease checks with auth on: some credentials, and then root, or access to every key
/// attached to the lease.
fn check_lease(ctx: &Context, who: &AuthInfo, id: i64, access: Access) -> Result<(), Status> {
    let sm = ctx.sm.read().expect("sm lock");
    let checked = match (sm.auth.is_enabled(), access) {
        (false, _) => Ok(()),
        (true, _) if who.revision == 0 => Err(MvccError::UserEmpty),
        (true, Access::Write) => sm.auth.check_lease_writes(who, id, &sm.store),
        (true, Access::Read) => sm.auth.check_lease_reads(who, id, &sm.store),
    };
    checked.map_err(|e| errors::from_mvcc(&e))
}

/// Asks the leader: locally if we lead, otherwise over gRPC with the caller's credentials.
async fn keep_alive_once(ctx: &Context, credentials: &MetadataMap, id: i64) -> Result<i64, Status> {
    for _ in 0..50 {
        match ctx.node.keep_alive(id).await {
            Some(LeaseOutcome::KeepAlive(ttl)) => return Ok(ttl),
            Some(LeaseOutcome::NotLeader(Some(leader))) if leader != ctx.member_id => {
                let mut client = LeaseClient::new(ctx.leader_channel(leader)?);
                let outbound = tokio_stream::iter([LeaseKeepAliveRequest { id }]);
                let mut answers = client.lease_keep_alive(ctx.forwarded(credentials, outbound)).await?.into_inner();
                return match answers.next().await {
                    Some(Ok(resp)) => Ok(resp.ttl),
                    Some(Err(status)) => Err(status),
                    None => Err(errors::no_leader()),
                };
            }
            Some(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            None => return Err(errors::stopped()),
        }
    }
    Err(errors::no_leader())
}

type KeepAliveStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(&self, request: Request<LeaseGrantRequest>) -> Result<Response<LeaseGrantResponse>, Status> {
        self.ctx.check_quota(tally_mvcc::LEASE_COST).await?;
        let who = self.ctx.caller(&request).await?;
        self.ctx.require_credentials(&who)?;
        let (metadata, _, req) = request.into_parts();
        match self.ctx.replicate(&metadata, &who, Op::LeaseGrant(req)).await? {
            CommandResponse::LeaseGrant(mut resp) => {
                self.ctx.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(Status::internal("lease grant answered with another response type")),
        }
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let who = self.ctx.caller(&request).await?;
        self.ctx.require_credentials(&who)?;
        let (metadata, _, req) = request.into_parts();
        match self.ctx.replicate(&metadata, &who, Op::LeaseRevoke(req)).await? {
            CommandResponse::LeaseRevoke(mut resp) => {
                self.ctx.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(Status::internal("lease revoke answered with another response type")),
        }
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let (credentials, extensions, mut incoming) = request.into_parts();
        let (tx, rx) = mpsc::channel(16);
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            while let Ok(Some(req)) = incoming.message().await {
                // Credentials are checked again for every renewal, as etcd does.
                let who = ctx.auth.caller(&credentials, &extensions).await.map_err(|e| errors::from_mvcc(&e));
                let checked = who.and_then(|who| check_lease(&ctx, &who, req.id, Access::Write));
                let answer = match checked {
                    Ok(()) => keep_alive_once(&ctx, &credentials, req.id).await,
                    Err(refused) => Err(refused),
                };
                let answer = answer.map(|ttl| {
                    let revision = ctx.current_revision();
                    LeaseKeepAliveResponse { header: Some(ctx.header(revision)), id: req.id, ttl }
                });
                if tx.send(answer).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let who = self.ctx.caller(&request).await?;
        self.ctx.require_credentials(&who)?;
        // etcd checks the keys' permissions only when the keys are asked for.
        if request.get_ref().keys {
            check_lease(&self.ctx, &who, request.get_ref().id, Access::Read)?;
        }
        let credentials = request.metadata().clone();
        let req = request.into_inner();
        for _ in 0..50 {
            match self.ctx.node.time_to_live(req.id).await {
                Some(LeaseOutcome::TimeToLive(found)) => {
                    let header = Some(self.ctx.header(self.ctx.current_revision()));
                    let resp = match found {
                        Some((ttl, granted_ttl, keys)) => LeaseTimeToLiveResponse {
                            header,
                            id: req.id,
                            ttl,
                            granted_ttl,
                            keys: if req.keys { keys } else { Vec::new() },
                        },
                        // etcd answers an unknown lease with TTL -1.
                        None => LeaseTimeToLiveResponse { header, id: req.id, ttl: -1, ..Default::default() },
                    };
                    return Ok(Response::new(resp));
                }
                Some(LeaseOutcome::NotLeader(Some(leader))) if leader != self.ctx.member_id => {
                    let mut client = LeaseClient::new(self.ctx.leader_channel(leader)?);
                    let mut resp = client.lease_time_to_live(self.ctx.forwarded(&credentials, req)).await?.into_inner();
                    self.ctx.fill_header(&mut resp.header);
                    return Ok(Response::new(resp));
                }
                Some(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                None => return Err(errors::stopped()),
            }
        }
        Err(errors::no_leader())
    }

    async fn lease_leases(
        &self,
        request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let who = self.ctx.caller(&request).await?;
        let ids: Vec<i64> = self.ctx.sm.read().expect("sm lock").store.leases().map(|l| l.id).collect();
        for id in ids {
            check_lease(&self.ctx, &who, id, Access::Read)?;
        }
        let (leases, revision) = {
            let sm = self.ctx.sm.read().expect("sm lock");
            let leases: Vec<LeaseStatus> = sm.store.leases().map(|l| LeaseStatus { id: l.id }).collect();
            (leases, sm.store.revision())
        };
        Ok(Response::new(LeaseLeasesResponse { header: Some(self.ctx.header(revision)), leases }))
    }
}
