//! The etcd KV service. Writes are replicated commands; reads are linearizable (ReadIndex)
//! unless the client asks for `serializable`, which serves the local state.

use std::sync::Arc;

use tally_mvcc::CommandResponse;
use tally_proto::etcdserverpb::kv_server::Kv;
use tally_proto::etcdserverpb::{
    request_op, CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use tally_proto::tally_v1::command::Op;
use tonic::{Request, Response, Status};

use super::context::Context;
use crate::client::errors;

/// etcd's default `--max-request-bytes`.
pub const REQUEST_BYTES_MAX: usize = 1536 * 1024;
/// etcd's default `--max-txn-ops`.
pub const TXN_OPS_MAX: usize = 128;

pub struct KvService {
    ctx: Arc<Context>,
}

impl KvService {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }
}

/// etcd's `--max-request-bytes` check.
fn check_size(ctx: &Context, req: &impl tally_proto::Message) -> Result<(), Status> {
    if req.encoded_len() > ctx.max_request_bytes {
        return Err(errors::request_too_large());
    }
    Ok(())
}

/// etcd's `isTxnReadonly`: every op of both branches is a range (a nested txn is not, even
/// without writes). Such txns are served like reads, without going through the log.
pub fn is_txn_readonly(req: &TxnRequest) -> bool {
    req.success.iter().chain(&req.failure).all(|op| matches!(op.request, Some(request_op::Request::RequestRange(_))))
}

fn unexpected(what: &str) -> Status {
    Status::internal(format!("state machine answered a {what} with another response type"))
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, request: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let who = self.ctx.caller(&request).await?;
        let req = request.into_inner();
        check_size(&self.ctx, &req)?;
        tally_mvcc::validate::check_range(&req).map_err(|e| errors::from_mvcc(&e))?;
        let mut resp = self.ctx.range(req, &who).await?;
        self.ctx.fill_header(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        check_size(&self.ctx, request.get_ref())?;
        tally_mvcc::validate::check_put(request.get_ref()).map_err(|e| errors::from_mvcc(&e))?;
        self.ctx.check_quota(tally_mvcc::put_cost(request.get_ref())).await?;
        let who = self.ctx.caller(&request).await?;
        let (metadata, _, req) = request.into_parts();
        match self.ctx.replicate(&metadata, &who, Op::Put(req)).await? {
            CommandResponse::Put(mut resp) => {
                self.ctx.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(unexpected("put")),
        }
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        check_size(&self.ctx, request.get_ref())?;
        tally_mvcc::validate::check_delete_range(request.get_ref()).map_err(|e| errors::from_mvcc(&e))?;
        let who = self.ctx.caller(&request).await?;
        let (metadata, _, req) = request.into_parts();
        match self.ctx.replicate(&metadata, &who, Op::DeleteRange(req)).await? {
            CommandResponse::DeleteRange(mut resp) => {
                self.ctx.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(unexpected("delete")),
        }
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        check_size(&self.ctx, request.get_ref())?;
        tally_mvcc::validate::check_txn(request.get_ref(), self.ctx.max_txn_ops).map_err(|e| errors::from_mvcc(&e))?;
        let who = self.ctx.caller(&request).await?;
        let (metadata, _, req) = request.into_parts();
        if is_txn_readonly(&req) {
            let mut resp = self.ctx.read_only_txn(req, &who).await?;
            self.ctx.fill_header(&mut resp.header);
            return Ok(Response::new(resp));
        }
        self.ctx.check_quota(tally_mvcc::txn_cost(&req)).await?;
        match self.ctx.replicate(&metadata, &who, Op::Txn(req)).await? {
            CommandResponse::Txn(mut resp) => {
                self.ctx.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(unexpected("txn")),
        }
    }

    async fn compact(&self, request: Request<CompactionRequest>) -> Result<Response<CompactionResponse>, Status> {
        // etcd: compacting is root's.
        let who = self.ctx.caller(&request).await?;
        self.ctx.check_admin(&who)?;
        let (metadata, _, req) = request.into_parts();
        match self.ctx.replicate(&metadata, &who, Op::Compaction(req)).await? {
            CommandResponse::Compaction(mut resp) => {
                self.ctx.fill_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(unexpected("compaction")),
        }
    }
}
