//! The client-facing gRPC service: etcd's unary KV calls go straight to the KV service
//! (`grpc_unary.rs`); every other call, and any KV call that is not the plain case, goes through
//! tonic's router. tonic's server still wraps both in its own layers (grpc-timeout, connection
//! info, error recovery), so the two paths differ only in how a message is framed and routed.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tally_proto::etcdserverpb::kv_server::Kv;
use tonic::body::Body;
use tonic::service::Routes;
use tonic::Status;
use tower_service::Service;

use crate::grpc_unary::{self, Decoded};
use crate::services::kv::KvService;

#[derive(Clone)]
pub struct ClientApi {
    kv: Arc<KvService>,
    /// Every service, the KV one included, as tonic serves them.
    routes: Routes,
    /// The largest request message the KV service accepts.
    message_max: usize,
}

impl ClientApi {
    pub fn new(kv: Arc<KvService>, routes: Routes, message_max: usize) -> Self {
        Self { kv, routes: routes.prepare(), message_max }
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

impl Service<http::Request<Body>> for ClientApi {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Routes is always ready, and so is the KV service.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Answer {
        let method = req.uri().path().strip_prefix("/etcdserverpb.KV/");
        // Compressed requests are tonic's to accept or refuse.
        let (Some(method), false) = (method, req.headers().contains_key("grpc-encoding")) else {
            return Box::pin(self.routes.call(req));
        };
        let (kv, routes, limit) = (self.kv.clone(), self.routes.clone(), self.message_max);
        match method {
            "Range" => Box::pin(unary(req, limit, routes, move |r| async move { kv.range(r).await })),
            "Put" => Box::pin(unary(req, limit, routes, move |r| async move { kv.put(r).await })),
            "DeleteRange" => Box::pin(unary(req, limit, routes, move |r| async move { kv.delete_range(r).await })),
            "Txn" => Box::pin(unary(req, limit, routes, move |r| async move { kv.txn(r).await })),
            "Compact" => Box::pin(unary(req, limit, routes, move |r| async move { kv.compact(r).await })),
            _ => Box::pin(self.routes.call(req)),
        }
    }
}

/// One unary KV call: decoded and answered here in the plain case, by tonic otherwise.
async fn unary<M, R, F, Fut>(
    req: http::Request<Body>,
    limit: usize,
    mut routes: Routes,
    handler: F,
) -> Result<http::Response<Body>, Infallible>
where
    M: prost::Message + Default,
    R: prost::Message,
    F: FnOnce(tonic::Request<M>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<R>, Status>>,
{
    match grpc_unary::decode::<M>(req, limit).await {
        Decoded::Message(parts, message) => {
            let request = tonic::Request::from_http(http::Request::from_parts(parts, message));
            Ok(grpc_unary::respond(handler(request).await))
        }
        Decoded::Replay(req) => routes.call(req).await,
    }
}
