//! etcd's `v3electionpb.Election` service: the lock recipe with a value, plus observing who
//! leads. Errors carry etcd's messages ("election: not leader", "election: no leader").

use std::pin::Pin;
use std::sync::Arc;

use tally_mvcc::Access;
use tally_proto::etcdserverpb::request_op::Request as Op;
use tally_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, TxnRequest};
use tally_proto::mvccpb::KeyValue;
use tally_proto::v3electionpb::election_server::Election;
use tally_proto::v3electionpb::*;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::context::Context;
use super::lock::contender_key;
use super::recipe::{self, create_revision_is, op};
use crate::client::errors;
use crate::node::watch_hub::WatchHub;

pub struct ElectionService {
    ctx: Arc<Context>,
    hub: Arc<WatchHub>,
}

impl ElectionService {
    pub fn new(ctx: Arc<Context>, hub: Arc<WatchHub>) -> Self {
        Self { ctx, hub }
    }

    fn current_leader(&self, name: &[u8]) -> Result<(Option<KeyValue>, i64), Status> {
        let (prefix, _) = contender_key(name, 0);
        let sm = self.ctx.sm.read().expect("sm lock");
        let found = sm.store.range(&recipe::first_created(&prefix)).map_err(|e| errors::from_mvcc(&e))?;
        Ok((found.kvs.into_iter().next(), sm.store.revision()))
    }
}

fn missing_leader_key() -> Status {
    Status::unknown("\"leader\" field must be provided")
}

type ObserveStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<LeaderResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(&self, request: Request<CampaignRequest>) -> Result<Response<CampaignResponse>, Status> {
        let who = self.ctx.caller(&request).await?;
        let req = request.into_inner();
        let (prefix, key) = contender_key(&req.name, req.lease);
        let (rev, header) = recipe::contend(&self.ctx, &who, &self.hub, &prefix, &key, &req.value, req.lease).await?;
        let leader = LeaderKey { name: req.name, key, rev, lease: req.lease };
        Ok(Response::new(CampaignResponse { header: Some(header), leader: Some(leader) }))
    }

    async fn proclaim(&self, request: Request<ProclaimRequest>) -> Result<Response<ProclaimResponse>, Status> {
        let who = self.ctx.caller(&request).await?;
        let req = request.into_inner();
        let leader = req.leader.ok_or_else(missing_leader_key)?;
        let put = PutRequest { key: leader.key.clone(), value: req.value, lease: leader.lease, ..Default::default() };
        let txn = TxnRequest {
            compare: vec![create_revision_is(&leader.key, leader.rev)],
            success: vec![op(Op::RequestPut(put))],
            failure: vec![],
        };
        let resp = recipe::txn(&self.ctx, &who, txn).await?;
        if !resp.succeeded {
            return Err(Status::unknown("election: not leader"));
        }
        let revision = resp.header.map_or(0, |h| h.revision);
        Ok(Response::new(ProclaimResponse { header: Some(self.ctx.header(revision)) }))
    }

    async fn leader(&self, request: Request<LeaderRequest>) -> Result<Response<LeaderResponse>, Status> {
        // Linearizable, as etcd's: right after a Proclaim anywhere, every member answers the new value.
        let who = self.ctx.caller(&request).await?;
        let (prefix, _) = contender_key(&request.into_inner().name, 0);
        let found = self.ctx.range(recipe::first_created(&prefix), &who).await?;
        let revision = found.header.map_or(0, |h| h.revision);
        let kv = found.kvs.into_iter().next().ok_or_else(|| Status::unknown("election: no leader"))?;
        Ok(Response::new(LeaderResponse { header: Some(self.ctx.header(revision)), kv: Some(kv) }))
    }

    type ObserveStream = ObserveStream;

    async fn observe(&self, request: Request<LeaderRequest>) -> Result<Response<Self::ObserveStream>, Status> {
        // Observing reads the election's keys: refused up front if the caller may not.
        let who = self.ctx.caller(&request).await?;
        let name = request.into_inner().name;
        let (prefix, _) = contender_key(&name, 0);
        self.ctx.check_auth(|auth| auth.check(&who, Access::Read, &prefix, &recipe::prefix_end(&prefix)))?;
        let (tx, rx) = mpsc::channel(16);
        let (ctx, hub) = (self.ctx.clone(), self.hub.clone());
        let this = ElectionService { ctx: ctx.clone(), hub: hub.clone() };
        tokio::spawn(async move {
            let (prefix, _) = contender_key(&name, 0);
            let (_guard, mut events) = recipe::watch_prefix(&hub, &prefix);
            let mut last: Option<(Vec<u8>, i64)> = None;
            loop {
                let Ok((kv, revision)) = this.current_leader(&name) else { break };
                if let Some(kv) = kv {
                    let now = (kv.key.clone(), kv.mod_revision);
                    if last.as_ref() != Some(&now) {
                        last = Some(now);
                        let resp = LeaderResponse { header: Some(ctx.header(revision)), kv: Some(kv) };
                        if tx.send(Ok(resp)).await.is_err() {
                            break;
                        }
                    }
                }
                tokio::select! {
                    _ = events.recv() => {}
                    _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
                    _ = tx.closed() => break,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn resign(&self, request: Request<ResignRequest>) -> Result<Response<ResignResponse>, Status> {
        let who = self.ctx.caller(&request).await?;
        let leader = request.into_inner().leader.ok_or_else(missing_leader_key)?;
        let delete = DeleteRangeRequest { key: leader.key.clone(), ..Default::default() };
        let txn = TxnRequest {
            compare: vec![create_revision_is(&leader.key, leader.rev)],
            success: vec![op(Op::RequestDeleteRange(delete))],
            failure: vec![],
        };
        let resp = recipe::txn(&self.ctx, &who, txn).await?;
        let revision = resp.header.map_or(0, |h| h.revision);
        Ok(Response::new(ResignResponse { header: Some(self.ctx.header(revision)) }))
    }
}
