//! etcd's `v3lockpb.Lock` service. Lock waits until the caller's key is the oldest under the
//! lock name; its response key's create revision is the fencing token (see README).

use std::sync::Arc;

use tally_mvcc::CommandResponse;
use tally_proto::etcdserverpb::DeleteRangeRequest;
use tally_proto::tally_v1::command::Op;
use tally_proto::v3lockpb::lock_server::Lock;
use tally_proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use tonic::{Request, Response, Status};

use super::context::Context;
use super::recipe;
use crate::client::errors;
use crate::node::watch_hub::WatchHub;

pub struct LockService {
    ctx: Arc<Context>,
    hub: Arc<WatchHub>,
}

impl LockService {
    pub fn new(ctx: Arc<Context>, hub: Arc<WatchHub>) -> Self {
        Self { ctx, hub }
    }
}

/// `<name>/<lease in hex>`, as etcd's concurrency.Mutex names its key.
pub fn contender_key(name: &[u8], lease: i64) -> (Vec<u8>, Vec<u8>) {
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    let mut key = prefix.clone();
    key.extend(format!("{lease:x}").into_bytes());
    (prefix, key)
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let who = self.ctx.caller(&request).await?;
        let req = request.into_inner();
        let (prefix, key) = contender_key(&req.name, req.lease);
        let (_, header) = recipe::contend(&self.ctx, &who, &self.hub, &prefix, &key, b"", req.lease).await?;
        Ok(Response::new(LockResponse { header: Some(header), key }))
    }

    async fn unlock(&self, request: Request<UnlockRequest>) -> Result<Response<UnlockResponse>, Status> {
        let who = self.ctx.caller(&request).await?;
        let key = request.into_inner().key;
        let op = Op::DeleteRange(DeleteRangeRequest { key, ..Default::default() });
        match self.ctx.submit(self.ctx.command(&Default::default(), &who, op)).await? {
            CommandResponse::DeleteRange(resp) => {
                let revision = resp.header.map_or(0, |h| h.revision);
                Ok(Response::new(UnlockResponse { header: Some(self.ctx.header(revision)) }))
            }
            CommandResponse::Error(e) => Err(errors::from_mvcc(&e)),
            _ => Err(Status::internal("unlock answered with another response type")),
        }
    }
}
