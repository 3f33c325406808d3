//! etcd's HTTP endpoints, served beside gRPC on the client URLs and alone on
//! `--listen-metrics-urls`: `/health`, `/livez`, `/readyz` (and their per-check sub-paths),
//! `/version` and `/metrics`, with etcd 3.5's bodies, status codes and headers.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use prometheus_client::registry::Registry;
use tally_mvcc::MvccError;
use tally_proto::etcdserverpb::kv_server::Kv;
use tally_proto::etcdserverpb::{AlarmType, RangeRequest};
use tonic::body::Body;

use crate::client::services::kv::KvService;
use crate::client::services::maintenance::ETCD_API_VERSION;
use crate::node::driver::NodeHandle;
use crate::ui::http::{is_ui_path, not_found, UiRoutes};

/// The cluster version etcd 3.5 members report.
const ETCD_CLUSTER_VERSION: &str = "3.5.0";

/// Everything the endpoints read.
pub struct Ops {
    pub registry: Registry,
    /// The state machine, for its alarms.
    pub sm: Arc<std::sync::RwLock<tally_mvcc::StateMachine>>,
    pub kv: Arc<KvService>,
    pub node: NodeHandle,
    /// etcd's request timeout (5 s plus two election timeouts), for the health check's read.
    pub request_timeout: Duration,
    /// The live view of Raft, with `--enable-ui`.
    pub ui: Option<Arc<UiRoutes>>,
}

/// Whether `req` is for these endpoints rather than a gRPC call: not gRPC, and one of their
/// paths or plain HTTP/1 (which gets etcd's 404 for any other path).
pub fn is_ops_request<B>(req: &Request<B>) -> bool {
    let path = req.uri().path();
    let ours = matches!(path, "/health" | "/livez" | "/readyz" | "/version" | "/metrics")
        || is_ui_path(path)
        || path.strip_prefix("/livez/").is_some_and(|check| LIVEZ.contains(&check))
        || path.strip_prefix("/readyz/").is_some_and(|check| READYZ.contains(&check));
    // Every gRPC call takes this early way out, without a header lookup.
    if !ours && req.version() >= http::Version::HTTP_2 {
        return false;
    }
    !req.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The checks behind `/livez` and `/readyz`, in the order they are reported.
const LIVEZ: &[&str] = &["serializable_read"];
const READYZ: &[&str] = &["serializable_read", "linearizable_read", "non_learner", "data_corruption"];

impl Ops {
    /// Answers a request `is_ops_request` accepted; `metrics_only` is the metrics listener,
    /// which serves `/metrics` and the health endpoints but not `/version`, as etcd's does.
    pub async fn serve<B>(&self, req: Request<B>, metrics_only: bool) -> Response<Body> {
        let path = req.uri().path().to_owned();
        if is_ui_path(&path) {
            return self.ui.as_ref().map_or_else(not_found, |ui| ui.serve(req.method(), &path));
        }
        let query = parse_query(req.uri().query().unwrap_or(""));
        // etcd's metrics handler takes any method; the others only GET.
        if req.method() != Method::GET && path != "/metrics" {
            let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n".into());
            resp.headers_mut().insert(header::ALLOW, http::HeaderValue::from_static("GET"));
            return resp;
        }
        self.serve_get(&path, &query, metrics_only).await
    }

    async fn serve_get(&self, path: &str, query: &[(String, String)], metrics_only: bool) -> Response<Body> {
        match path {
            "/metrics" => {
                let (text, content_type) = super::exposition::encode(&self.registry);
                response(StatusCode::OK, content_type, text)
            }
            "/version" if !metrics_only => {
                let body = format!(r#"{{"etcdserver":"{ETCD_API_VERSION}","etcdcluster":"{ETCD_CLUSTER_VERSION}"}}"#);
                response(StatusCode::OK, "application/json", body)
            }
            "/health" => self.health(query).await,
            "/livez" => self.checks(LIVEZ, query).await,
            "/readyz" => self.checks(READYZ, query).await,
            _ => match path.rsplit_once('/') {
                Some((_, check)) if LIVEZ.contains(&check) || READYZ.contains(&check) => {
                    self.checks(&[check], &[]).await
                }
                _ => plain(StatusCode::NOT_FOUND, "404 page not found\n".into()),
            },
        }
    }

    /// etcd's `/health`: alarms (but those in `exclude`), a leader unless `serializable=true`,
    /// then a one-key read, linearizable unless `serializable=true`.
    async fn health(&self, query: &[(String, String)]) -> Response<Body> {
        let serializable = query.iter().any(|(k, v)| k == "serializable" && v == "true");
        let excluded: Vec<&str> = query.iter().filter(|(k, _)| k == "exclude").map(|(_, v)| v.as_str()).collect();
        let reason = if let Some(alarm) = self.raised_alarm(&excluded) {
            Some(format!("ALARM {alarm}"))
        } else if !serializable && self.node.shared.leader().is_none() {
            Some("RAFT NO LEADER".to_string())
        } else {
            self.read(serializable).await.err().map(|e| format!("RANGE ERROR:{e}"))
        };
        match reason {
            None => json(StatusCode::OK, r#"{"health":"true","reason":""}"#.to_string()),
            Some(reason) => {
                let body = unhealthy(&reason);
                // http.Error: text/plain, nosniff, the body and a newline.
                plain(StatusCode::SERVICE_UNAVAILABLE, format!("{body}\n"))
            }
        }
    }

    /// `/livez`, `/readyz` or one of their checks: "[+]name ok" lines (shown with `?verbose`,
    /// always on failure), then "ok"; 503 and "<kind> check failed" if any failed.
    async fn checks(&self, names: &[&str], query: &[(String, String)]) -> Response<Body> {
        let excluded: Vec<&str> = query.iter().filter(|(k, _)| k == "exclude").map(|(_, v)| v.as_str()).collect();
        let verbose = query.iter().any(|(k, _)| k == "verbose");
        let mut report = String::new();
        let mut failed = false;
        for name in names.iter().filter(|n| !excluded.contains(n)) {
            match self.check(name).await {
                Ok(()) => report.push_str(&format!("[+]{name} ok\n")),
                Err(e) => {
                    failed = true;
                    report.push_str(&format!("[-]{name} failed: {e}\n"));
                }
            }
        }
        if failed {
            return plain(StatusCode::SERVICE_UNAVAILABLE, format!("{report}\n"));
        }
        let body = if verbose { format!("{report}ok\n") } else { "ok\n".to_string() };
        plain(StatusCode::OK, body)
    }

    async fn check(&self, name: &str) -> Result<(), String> {
        match name {
            "serializable_read" => self.read(true).await,
            "linearizable_read" => self.read(false).await,
            "non_learner" => match self.node.status().await {
                Some(status) if status.is_learner => Err("not supported for learner".into()),
                Some(_) => Ok(()),
                None => Err(MvccError::Stopped.to_string()),
            },
            "data_corruption" => match self.alarm_raised(AlarmType::Corrupt) {
                true => Err("alarm activated: CORRUPT".into()),
                false => Ok(()),
            },
            other => Err(format!("unknown check {other}")),
        }
    }

    /// The first raised alarm whose name is not in `excluded` (NOSPACE, CORRUPT; UNKNOWN for
    /// another), as etcd's `checkAlarms` reports it.
    fn raised_alarm(&self, excluded: &[&str]) -> Option<&'static str> {
        let alarms = self.sm.read().expect("sm lock").alarms.list(AlarmType::None as i32);
        alarms.iter().find_map(|a| {
            let name = AlarmType::try_from(a.alarm).map_or("UNKNOWN", |t| t.as_str_name());
            (!excluded.contains(&name)).then_some(match name {
                "NOSPACE" | "CORRUPT" => name,
                _ => "UNKNOWN",
            })
        })
    }

    fn alarm_raised(&self, alarm: AlarmType) -> bool {
        self.sm.read().expect("sm lock").alarms.is_raised(alarm)
    }

    /// The read etcd's checks make: one key, keys only, through the KV service.
    async fn read(&self, serializable: bool) -> Result<(), String> {
        let req =
            RangeRequest { key: b"health".to_vec(), keys_only: true, limit: 1, serializable, ..Default::default() };
        match tokio::time::timeout(self.request_timeout, self.kv.range(tonic::Request::new(req))).await {
            Ok(Ok(_)) => Ok(()),
            // With auth on, the probe has no credentials; a refusal still proves the read path
            // works (etcd's health check accepts the same two errors).
            Ok(Err(status)) if NO_CREDENTIALS.iter().any(|e| e.message() == status.message()) => Ok(()),
            Ok(Err(status)) => Err(status.message().to_string()),
            Err(_) => Err("context deadline exceeded".into()),
        }
    }
}

const NO_CREDENTIALS: [MvccError; 2] = [MvccError::UserEmpty, MvccError::PermissionDenied];

/// Serves the endpoints alone over HTTP/1.1 on `listener` (`--listen-metrics-urls`).
pub async fn listen(listener: tokio::net::TcpListener, ops: Arc<Ops>, tls: Option<tokio_rustls::TlsAcceptor>) {
    loop {
        let stream = crate::client::conn::accept(&listener, "metrics").await;
        let (ops, tls) = (ops.clone(), tls.clone());
        tokio::spawn(async move {
            match tls {
                None => serve_metrics(stream, ops).await,
                Some(acceptor) => {
                    if let Some(stream) = crate::tls::accept(&acceptor, stream, "metrics").await {
                        serve_metrics(stream, ops).await
                    }
                }
            }
        });
    }
}

async fn serve_metrics<IO>(io: IO, ops: Arc<Ops>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let ops = ops.clone();
        async move { Ok::<_, std::convert::Infallible>(ops.serve(req, true).await) }
    });
    let io = hyper_util::rt::TokioIo::new(io);
    if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await {
        tracing::debug!("metrics connection ended: {e}");
    }
}

/// `{"health":"false","reason":...}`, as etcd marshals its Health struct.
fn unhealthy(reason: &str) -> String {
    serde_json::json!({ "health": "false", "reason": reason }).to_string()
}

/// Query pairs, percent-decoding not needed for the parameters etcd reads.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect()
}

fn response(status: StatusCode, content_type: &str, body: String) -> Response<Body> {
    let len = body.len();
    let mut resp = Response::new(Body::new(Full::new(Bytes::from(body))));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, http::HeaderValue::from_str(content_type).expect("content type"));
    headers.insert(header::CONTENT_LENGTH, len.into());
    // etcd's client handler allows cross-origin reads of these endpoints.
    headers.insert("access-control-allow-origin", http::HeaderValue::from_static("*"));
    headers.insert("access-control-allow-methods", http::HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"));
    headers
        .insert("access-control-allow-headers", http::HeaderValue::from_static("accept, content-type, authorization"));
    resp
}

fn json(status: StatusCode, body: String) -> Response<Body> {
    // etcd writes /health's JSON without setting a type; Go sniffs it as text/plain.
    response(status, "text/plain; charset=utf-8", body)
}

/// Go's `http.Error` and the health handlers: plain text, nosniff.
fn plain(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = response(status, "text/plain; charset=utf-8", body);
    resp.headers_mut().insert("x-content-type-options", http::HeaderValue::from_static("nosniff"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_reasons_are_json() {
        assert_eq!(unhealthy("RAFT NO LEADER"), r#"{"health":"false","reason":"RAFT NO LEADER"}"#);
        assert_eq!(unhealthy("a \"b\"\n"), r#"{"health":"false","reason":"a \"b\"\n"}"#);
    }

    #[test]
    fn grpc_calls_are_not_taken_for_endpoints() {
        let get = Request::get("/health").body(()).unwrap();
        assert!(is_ops_request(&get));
        let grpc = Request::post("/health").header("content-type", "application/grpc").body(()).unwrap();
        assert!(!is_ops_request(&grpc));
        let h2 = |path| Request::get(path).version(http::Version::HTTP_2).body(()).unwrap();
        assert!(!is_ops_request(&h2("/etcdserverpb.KV/Range")));
        assert!(is_ops_request(&h2("/metrics")));
        // Plain HTTP/1 for any other path gets etcd's 404 from here.
        assert!(is_ops_request(&Request::get("/elsewhere").body(()).unwrap()));
        assert!(is_ops_request(&Request::get("/readyz/linearizable_read").body(()).unwrap()));
    }
}
