//! The client-facing gRPC server: hyper's HTTP/2 server on every accepted connection, with the
//! settings tonic's server gives it, and HTTP/1.1 for etcd's health, version and metrics
//! endpoints (`ops::http`), which probes and Prometheus reach over plain HTTP/1.1. etcd's unary KV calls go straight to the KV service
//! (`grpc_unary.rs`); every other call, and any KV call that is not the plain case, goes through
//! tonic's router. A `grpc-timeout` header bounds the call as tonic's server does.
//!
//! tonic's own server wrapped every call in five service layers and every answer's body in two
//! more boxes, for connection info, tracing and error recovery that none of our services use.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tally_proto::etcdserverpb::kv_server::Kv;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tonic::body::Body;
use tonic::service::Routes;
use tonic::Status;
use tower_service::Service;

use crate::client::conn as client_conn;
use crate::client::errors;
use crate::client::grpc_metrics::{Call, GrpcMetrics};
use crate::client::grpc_unary::{self, Decoded};
use crate::client::require_leader::{Admission, LeaderGate};
use crate::client::services::kv::KvService;
use crate::ops::http::{is_ops_request, Ops};
use crate::tls::CertCommonName;

/// Serves `api` on every connection `listener` accepts, over TLS if `tls` is given.
pub async fn serve(listener: TcpListener, api: ClientApi, tls: Option<TlsAcceptor>) {
    loop {
        let stream = client_conn::accept(&listener, "client").await;
        let (api, tls) = (api.clone(), tls.clone());
        tokio::spawn(async move {
            if let Err(e) = stream.set_nodelay(true) {
                return tracing::debug!("client connection lost at once: {e}");
            }
            let Some(acceptor) = tls else { return serve_connection(stream, api).await };
            let Some(stream) = crate::tls::accept(&acceptor, stream, "client").await else { return };
            let api = ClientApi { cert_common_name: crate::tls::peer_common_name(&stream), ..api };
            serve_connection(stream, api).await
        });
    }
}

/// HTTP/2 or HTTP/1.1 on one connection, its writes coalesced (`client::conn`; under TLS, one
/// record for what leaves together).
async fn serve_connection<IO>(io: IO, api: ClientApi)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // tonic's server settings: hyper's defaults, except no limit on concurrent streams or on
    // locally reset streams, and no adaptive window.
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(None)
        .max_local_error_reset_streams(None)
        .adaptive_window(false);
    let conn = TokioIo::new(client_conn::CoalescedWrites::new(io));
    if let Err(e) = builder.serve_connection(conn, api).await {
        tracing::debug!("client connection ended: {e}");
    }
}

#[derive(Clone)]
pub struct ClientApi {
    kv: Arc<KvService>,
    /// etcd's `WithRequireLeader`.
    leader_gate: LeaderGate,
    /// Every service, the KV one included, as tonic serves them.
    routes: Routes,
    /// The largest request message the KV service accepts.
    message_max: usize,
    grpc_metrics: Arc<GrpcMetrics>,
    /// etcd's HTTP endpoints.
    ops: Arc<Ops>,
    /// Who the connection's verified client certificate names, for every request on it.
    cert_common_name: Option<CertCommonName>,
}

pub struct ClientApiParts {
    pub kv: Arc<KvService>,
    pub routes: Routes,
    pub message_max: usize,
    pub leader_gate: LeaderGate,
    pub grpc_metrics: Arc<GrpcMetrics>,
    pub ops: Arc<Ops>,
}

impl ClientApi {
    pub fn new(p: ClientApiParts) -> Self {
        Self {
            kv: p.kv,
            leader_gate: p.leader_gate,
            routes: p.routes.prepare(),
            message_max: p.message_max,
            grpc_metrics: p.grpc_metrics,
            ops: p.ops,
            cert_common_name: None,
        }
    }

    /// The call's answer; `call` counts it (in the future that answers, so no extra one).
    fn route(&self, req: http::Request<Body>, call: Option<Call>) -> Answer {
        match self.leader_gate.admit(&req) {
            Admission::Serve => {}
            Admission::Refuse(refused) => return Box::pin(std::future::ready(Ok(counted(call, refused)))),
            Admission::ServeGuarded => {
                let gate = self.leader_gate.clone();
                let answer = self.routes.clone().call(req);
                return Box::pin(async move { answer.await.map(|resp| counted(call, gate.guard(resp))) });
            }
        }
        let method = req.uri().path().strip_prefix("/etcdserverpb.KV/");
        // Compressed requests are tonic's to accept or refuse.
        let (Some(method), false) = (method, req.headers().contains_key("grpc-encoding")) else {
            return self.by_tonic(req, call);
        };
        let (kv, routes, limit) = (self.kv.clone(), self.routes.clone(), self.message_max);
        match method {
            "Range" => Box::pin(unary(req, limit, routes, call, move |r| async move { kv.range(r).await })),
            "Put" => Box::pin(unary(req, limit, routes, call, move |r| async move { kv.put(r).await })),
            "DeleteRange" => {
                Box::pin(unary(req, limit, routes, call, move |r| async move { kv.delete_range(r).await }))
            }
            "Txn" => Box::pin(unary(req, limit, routes, call, move |r| async move { kv.txn(r).await })),
            "Compact" => Box::pin(unary(req, limit, routes, call, move |r| async move { kv.compact(r).await })),
            _ => self.by_tonic(req, call),
        }
    }

    /// tonic's answer, with grpc-go's message added to its bare `Unimplemented`.
    fn by_tonic(&self, req: http::Request<Body>, call: Option<Call>) -> Answer {
        let path = req.uri().path().to_owned();
        let answer = self.routes.clone().call(req);
        Box::pin(async move {
            let mut resp = answer.await?;
            let headers = resp.headers_mut();
            let unimplemented = headers.get("grpc-status").is_some_and(|s| s.as_bytes() == b"12");
            if unimplemented && !headers.contains_key("grpc-message") {
                let _ = errors::unknown_method(&path).add_header(headers);
            }
            Ok(counted(call, resp))
        })
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

impl hyper::service::Service<http::Request<Incoming>> for ClientApi {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, mut req: http::Request<Incoming>) -> Answer {
        if let Some(name) = &self.cert_common_name {
            req.extensions_mut().insert(name.clone());
        }
        if is_ops_request(&req) {
            let ops = self.ops.clone();
            return Box::pin(async move { Ok(ops.serve(req, false).await) });
        }
        let req = req.map(Body::new);
        let call = self.grpc_metrics.start(req.uri().path());
        let timeout = grpc_timeout(req.headers());
        let answer = self.route(req, call);
        let Some(timeout) = timeout else { return answer };
        // A call cut off here is counted as Canceled when its answer is dropped.
        Box::pin(async move {
            tokio::time::timeout(timeout, answer)
                .await
                .unwrap_or_else(|_| Ok(Status::cancelled("Timeout expired").into_http()))
        })
    }
}

/// The deadline a `grpc-timeout` header sets: up to 8 digits and a unit. tonic's server ignores
/// a malformed one, and so do we.
fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let unit_at = value.len().checked_sub(1)?;
    let (amount, unit) = value.split_at(unit_at);
    if amount.len() > 8 {
        return None;
    }
    let amount: u64 = amount.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// One unary KV call: decoded and answered here in the plain case, by tonic otherwise.
async fn unary<M, R, F, Fut>(
    req: http::Request<Body>,
    limit: usize,
    mut routes: Routes,
    call: Option<Call>,
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
            Ok(counted(call, grpc_unary::respond(handler(request).await)))
        }
        Decoded::Replay(req) => routes.call(req).await.map(|resp| counted(call, resp)),
    }
}

fn counted(call: Option<Call>, resp: http::Response<Body>) -> http::Response<Body> {
    match call {
        Some(call) => call.answered(resp),
        None => resp,
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use prost::Message as _;
    use tally_proto::etcdserverpb::kv_server::KvServer;
    use tally_proto::etcdserverpb::*;
    use tally_proto::mvccpb::KeyValue;

    use super::*;

    /// Answers a Range with the certificate name its request carries, as its one key.
    struct NameEcho;

    #[tonic::async_trait]
    impl Kv for NameEcho {
        async fn range(&self, req: tonic::Request<RangeRequest>) -> Result<tonic::Response<RangeResponse>, Status> {
            let name = req.extensions().get::<CertCommonName>().map(|n| n.0.clone()).unwrap_or_default();
            let kvs = vec![KeyValue { key: name.into_bytes(), ..Default::default() }];
            Ok(tonic::Response::new(RangeResponse { kvs, ..Default::default() }))
        }
        async fn put(&self, _: tonic::Request<PutRequest>) -> Result<tonic::Response<PutResponse>, Status> {
            Err(Status::unimplemented("put"))
        }
        async fn delete_range(
            &self,
            _: tonic::Request<DeleteRangeRequest>,
        ) -> Result<tonic::Response<DeleteRangeResponse>, Status> {
            Err(Status::unimplemented("delete_range"))
        }
        async fn txn(&self, _: tonic::Request<TxnRequest>) -> Result<tonic::Response<TxnResponse>, Status> {
            Err(Status::unimplemented("txn"))
        }
        async fn compact(
            &self,
            _: tonic::Request<CompactionRequest>,
        ) -> Result<tonic::Response<CompactionResponse>, Status> {
            Err(Status::unimplemented("compact"))
        }
    }

    /// A Range call as `ClientApi::call` hands it on for a client whose certificate names alice.
    fn range_from_alice() -> http::Request<Body> {
        let message = crate::client::grpc_frame::encode(&RangeRequest::default()).unwrap();
        let mut req = http::Request::builder()
            .method("POST")
            .uri("/etcdserverpb.KV/Range")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Body::new(http_body_util::Full::new(message)))
            .unwrap();
        req.extensions_mut().insert(CertCommonName("alice".into()));
        req
    }

    async fn answered_name(resp: http::Response<Body>) -> String {
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let message = crate::client::grpc_frame::single_message(&body).expect("one message");
        String::from_utf8(RangeResponse::decode(message).unwrap().kvs[0].key.clone()).unwrap()
    }

    #[tokio::test]
    async fn the_certificate_name_reaches_the_service_on_the_fast_path_and_through_tonic() {
        let routes = Routes::new(KvServer::new(NameEcho)).prepare();
        let echo = |r| async move { NameEcho.range(r).await };
        let fast = unary(range_from_alice(), 1024, routes.clone(), None, echo).await.unwrap();
        assert_eq!(answered_name(fast).await, "alice");
        // Over the fast path's limit: replayed to tonic's router.
        let replayed = unary(range_from_alice(), 0, routes.clone(), None, echo).await.unwrap();
        assert_eq!(answered_name(replayed).await, "alice");
        let routed = routes.clone().call(range_from_alice()).await.unwrap();
        assert_eq!(answered_name(routed).await, "alice");
    }

    fn timeout_of(value: &str) -> Option<Duration> {
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-timeout", http::HeaderValue::from_str(value).unwrap());
        grpc_timeout(&headers)
    }

    #[test]
    fn grpc_timeouts_are_read_as_grpc_defines_them() {
        assert_eq!(timeout_of("5S"), Some(Duration::from_secs(5)));
        assert_eq!(timeout_of("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(timeout_of("3M"), Some(Duration::from_secs(180)));
        assert_eq!(timeout_of("1500m"), Some(Duration::from_millis(1500)));
        assert_eq!(timeout_of("99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(timeout_of("10n"), Some(Duration::from_nanos(10)));
        assert_eq!(grpc_timeout(&http::HeaderMap::new()), None);
        for malformed in ["", "S", "5", "5s", "123456789S", "-1S", "1.5S"] {
            assert_eq!(timeout_of(malformed), None, "{malformed:?}");
        }
    }
}
