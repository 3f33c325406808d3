//! The etcd Cluster service: the member list (changes arrive with the membership work).

use std::sync::Arc;

use tally_proto::etcdserverpb::cluster_server::Cluster;
use tally_proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse, MemberPromoteRequest,
    MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse,
};
use tonic::{Request, Response, Status};

use super::context::Context;

pub struct ClusterService {
    ctx: Arc<Context>,
}

impl ClusterService {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!("{what} is not supported yet: Tally's membership changes are in progress"))
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(&self, _: Request<MemberAddRequest>) -> Result<Response<MemberAddResponse>, Status> {
        Err(not_yet("MemberAdd"))
    }

    async fn member_remove(&self, _: Request<MemberRemoveRequest>) -> Result<Response<MemberRemoveResponse>, Status> {
        Err(not_yet("MemberRemove"))
    }

    async fn member_update(&self, _: Request<MemberUpdateRequest>) -> Result<Response<MemberUpdateResponse>, Status> {
        Err(not_yet("MemberUpdate"))
    }

    async fn member_list(&self, _: Request<MemberListRequest>) -> Result<Response<MemberListResponse>, Status> {
        let directory = self.ctx.directory.read().expect("lock");
        let members = self
            .ctx
            .spec
            .members
            .values()
            .map(|m| {
                // Client URLs are known for ourselves and for every peer that has connected.
                let client_urls = if m.id == self.ctx.member_id {
                    self.ctx.client_urls.clone()
                } else {
                    directory.get(&m.id).map(|p| p.client_urls.clone()).unwrap_or_default()
                };
                Member {
                    id: m.id,
                    name: m.name.clone(),
                    peer_ur_ls: m.peer_urls.clone(),
                    client_ur_ls: client_urls,
                    is_learner: false,
                }
            })
            .collect();
        let header = Some(self.ctx.header(0));
        Ok(Response::new(MemberListResponse { header, members }))
    }

    async fn member_promote(
        &self,
        _: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        Err(not_yet("MemberPromote"))
    }
}
