//! The etcd Cluster service. Changes are decided by the leader (a follower forwards them) and
//! answered once the new configuration is applied; refusals use etcd's codes and messages.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tally_proto::etcdserverpb::cluster_client::ClusterClient;
use tally_proto::etcdserverpb::cluster_server::Cluster;
use tally_proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse, MemberPromoteRequest,
    MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse,
};
use tally_proto::tally_v1::MemberInfo;
use tonic::{Request, Response, Status};

use super::context::Context;
use crate::client::errors;
use crate::node::driver::{MembershipOutcome, MembershipRequest};
use tally_node::members::Members;

/// How long to keep asking while the leader cannot decide yet (a change in flight, member
/// health not yet known).
const DECIDE_TIMEOUT: Duration = Duration::from_secs(3);

pub struct ClusterService {
    ctx: Arc<Context>,
}

impl ClusterService {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }

    fn to_pb(&self, info: &MemberInfo) -> Member {
        // Names and client URLs come from the member itself when it connects to us.
        let directory = self.ctx.directory.read().expect("lock");
        let seen = directory.get(&info.id);
        let (name, client_urls) = if info.id == self.ctx.member_id {
            (self.ctx.name.clone(), self.ctx.client_urls.clone())
        } else {
            let name =
                if info.name.is_empty() { seen.map(|p| p.name.clone()).unwrap_or_default() } else { info.name.clone() };
            (name, seen.map(|p| p.client_urls.clone()).unwrap_or_default())
        };
        Member {
            id: info.id,
            name,
            peer_ur_ls: info.peer_urls.clone(),
            client_ur_ls: client_urls,
            is_learner: info.is_learner,
        }
    }

    fn list(&self, members: &Members) -> Vec<Member> {
        members.members.values().map(|m| self.to_pb(m)).collect()
    }

    /// Runs a change on the leader; returns the member concerned and the new table.
    async fn change(&self, req: MembershipRequest) -> Result<(Option<MemberInfo>, Members), Status> {
        let deadline = Instant::now() + DECIDE_TIMEOUT;
        loop {
            match self.ctx.node.membership(req.clone()).await {
                Some(MembershipOutcome::Applied { member, members }) => return Ok((member, members)),
                Some(MembershipOutcome::Refused(r)) => return Err(errors::from_mvcc(&r)),
                Some(MembershipOutcome::Retry(r)) if Instant::now() >= deadline => return Err(errors::from_mvcc(&r)),
                Some(MembershipOutcome::NotLeader(Some(leader))) if leader != self.ctx.member_id => {
                    return Err(Status::unavailable(format!("forward:{leader}")));
                }
                Some(MembershipOutcome::NotLeader(_)) if Instant::now() >= deadline => return Err(errors::no_leader()),
                Some(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                None => return Err(errors::stopped()),
            }
        }
    }

    fn leader_client(&self, status: &Status) -> Option<Result<ClusterClient<tonic::transport::Channel>, Status>> {
        let leader = status.message().strip_prefix("forward:")?.parse().ok()?;
        Some(self.ctx.leader_channel(leader).map(ClusterClient::new))
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(&self, request: Request<MemberAddRequest>) -> Result<Response<MemberAddResponse>, Status> {
        // etcd: membership is root's.
        self.ctx.check_admin(&self.ctx.caller(&request).await?)?;
        let credentials = request.metadata().clone();
        let req = request.into_inner();
        let change = MembershipRequest::Add { peer_urls: req.peer_ur_ls.clone(), is_learner: req.is_learner };
        match self.change(change).await {
            Ok((member, members)) => Ok(Response::new(MemberAddResponse {
                header: Some(self.ctx.header(0)),
                member: member.map(|m| self.to_pb(&m)),
                members: self.list(&members),
            })),
            Err(status) => match self.leader_client(&status) {
                Some(client) => client?.member_add(self.ctx.forwarded(&credentials, req)).await,
                None => Err(status),
            },
        }
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        // etcd: membership is root's.
        self.ctx.check_admin(&self.ctx.caller(&request).await?)?;
        let credentials = request.metadata().clone();
        let req = request.into_inner();
        match self.change(MembershipRequest::Remove { id: req.id }).await {
            Ok((_, members)) => Ok(Response::new(MemberRemoveResponse {
                header: Some(self.ctx.header(0)),
                members: self.list(&members),
            })),
            Err(status) => match self.leader_client(&status) {
                Some(client) => client?.member_remove(self.ctx.forwarded(&credentials, req)).await,
                None => Err(status),
            },
        }
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        // etcd: membership is root's.
        self.ctx.check_admin(&self.ctx.caller(&request).await?)?;
        let credentials = request.metadata().clone();
        let req = request.into_inner();
        match self.change(MembershipRequest::Update { id: req.id, peer_urls: req.peer_ur_ls.clone() }).await {
            Ok((_, members)) => Ok(Response::new(MemberUpdateResponse {
                header: Some(self.ctx.header(0)),
                members: self.list(&members),
            })),
            Err(status) => match self.leader_client(&status) {
                Some(client) => client?.member_update(self.ctx.forwarded(&credentials, req)).await,
                None => Err(status),
            },
        }
    }

    async fn member_list(&self, request: Request<MemberListRequest>) -> Result<Response<MemberListResponse>, Status> {
        // As etcd 3.5: this member's table, which may lag a change just made through another
        // member, unless the client asks for a linearizable list.
        if request.get_ref().linearizable {
            self.ctx.linearizable_barrier().await?;
        }
        // etcd: any user's, with auth on.
        self.ctx.require_credentials(&self.ctx.caller(&request).await?)?;
        let members = self.ctx.members.read().expect("members lock").clone();
        Ok(Response::new(MemberListResponse { header: Some(self.ctx.header(0)), members: self.list(&members) }))
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        // etcd: membership is root's.
        self.ctx.check_admin(&self.ctx.caller(&request).await?)?;
        let credentials = request.metadata().clone();
        let req = request.into_inner();
        match self.change(MembershipRequest::Promote { id: req.id }).await {
            Ok((_, members)) => Ok(Response::new(MemberPromoteResponse {
                header: Some(self.ctx.header(0)),
                members: self.list(&members),
            })),
            Err(status) => match self.leader_client(&status) {
                Some(client) => client?.member_promote(self.ctx.forwarded(&credentials, req)).await,
                None => Err(status),
            },
        }
    }
}
