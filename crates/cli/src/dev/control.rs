//! The control server (HTTP/1.1 on `--ui-port`): the live view's page, the cluster as the page
//! should show it, and the buttons behind it.
//!
//! - `GET /` redirects to `/ui`; `GET /ui`, `/ui/assets/*`: the page (`tally_server::ui::assets`).
//! - `GET /ui/cluster`: `{"controls":true,"members":[{"name","id","client_url","process","cut"}],
//!   "load":{"running","rate","written"}}`, `process` one of `running`, `paused`, `killed`.
//! - `POST /dev/members/{name}/{kill|restart|pause|resume|cut|heal}`: the cluster afterwards;
//!   404 for an unknown member or action, 409 when the process is not in a state to do it.
//! - `POST /dev/put` `{"key","value"}`: `{"revision"}`, or 503 if no member took it. With
//!   `"member": "n1"`, through that member alone, once, cut or not: written to a partitioned
//!   old leader, the entry stays uncommitted in its log until a new leader overwrites it.
//! - `POST /dev/load` `{"rate"}`: puts a second (0 stops): `{"running","rate","written"}`.
//!
//! Errors are `{"error": "..."}`. Other methods get 405 (HEAD is served where GET is).

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};
use tally_proto::etcdserverpb::cluster_client::ClusterClient;
use tally_proto::etcdserverpb::MemberListRequest;
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;

use super::load::{self, Load};
use super::members::{Action, Process, Refused};
use super::proxy::Proxy;

/// Largest request body read.
const BODY_BYTES_MAX: usize = 64 << 10;
const MEMBER_LIST_WAIT: Duration = Duration::from_secs(1);

/// An action on a member's process, for the main loop (which owns the processes) to carry out.
pub struct ProcessRequest {
    pub member: usize,
    pub action: Action,
    pub reply: oneshot::Sender<Result<(), Refused>>,
}

/// What the control server knows and can do.
pub struct Dev {
    names: Vec<String>,
    client_urls: Vec<String>,
    /// The URLs the members are advertised at (the proxy's), as MemberList reports them.
    peer_urls: Vec<String>,
    channels: Vec<Channel>,
    /// Member ids, once learned from the cluster.
    ids: Mutex<Vec<Option<u64>>>,
    processes: Mutex<Vec<Process>>,
    proxy: Proxy,
    load: Arc<Load>,
    requests: mpsc::UnboundedSender<ProcessRequest>,
    /// Where the next put starts looking, so that puts spread over the members.
    next_put: AtomicUsize,
}

impl Dev {
    pub fn new(
        names: Vec<String>,
        client_urls: Vec<String>,
        peer_urls: Vec<String>,
        proxy: Proxy,
        requests: mpsc::UnboundedSender<ProcessRequest>,
    ) -> Self {
        let channels = client_urls.iter().map(|url| load::channel(url)).collect();
        let n = names.len();
        Self {
            names,
            client_urls,
            peer_urls,
            channels,
            ids: Mutex::new(vec![None; n]),
            processes: Mutex::new(vec![Process::Running; n]),
            proxy,
            load: Arc::default(),
            requests,
            next_put: AtomicUsize::new(0),
        }
    }

    /// The processes' states, as the main loop last saw them; a dead member's proxy port is
    /// closed.
    pub fn publish(&self, states: Vec<Process>) {
        for (i, state) in states.iter().enumerate() {
            self.proxy.set_alive(i, *state != Process::Killed);
        }
        *self.processes.lock().expect("dev lock") = states;
    }

    /// Learns the member ids from the first member that lists them, unless known already.
    pub async fn learn_ids(&self) {
        if self.ids.lock().expect("dev lock").iter().all(Option::is_some) {
            return;
        }
        for i in self.running(true) {
            let mut client = ClusterClient::new(self.channels[i].clone());
            let request = MemberListRequest { linearizable: false };
            let Ok(Ok(response)) = tokio::time::timeout(MEMBER_LIST_WAIT, client.member_list(request)).await else {
                continue;
            };
            let mut ids = self.ids.lock().expect("dev lock");
            for m in response.into_inner().members {
                let by_name = self.names.iter().position(|name| *name == m.name);
                let by_url = || self.peer_urls.iter().position(|url| m.peer_ur_ls.contains(url));
                if let Some(i) = by_name.or_else(by_url) {
                    ids[i] = Some(m.id);
                }
            }
            return;
        }
    }

    /// Members whose process runs (not paused or dead), those not cut first, starting at a
    /// different one each call; the cut ones only if `with_cut`.
    fn running(&self, with_cut: bool) -> Vec<usize> {
        let processes = self.processes.lock().expect("dev lock").clone();
        let start = self.next_put.fetch_add(1, Ordering::Relaxed);
        let n = processes.len();
        let order = (0..n).map(|k| (start + k) % n).filter(|&i| processes[i] == Process::Running);
        let (uncut, cut): (Vec<usize>, Vec<usize>) = order.partition(|&i| !self.proxy.is_cut(i));
        if with_cut {
            uncut.into_iter().chain(cut).collect()
        } else {
            uncut
        }
    }

    fn targets(&self, with_cut: bool) -> Vec<(String, Channel)> {
        self.running(with_cut).into_iter().map(|i| (self.names[i].clone(), self.channels[i].clone())).collect()
    }

    fn cluster_json(&self) -> Value {
        let ids = self.ids.lock().expect("dev lock").clone();
        let processes = self.processes.lock().expect("dev lock").clone();
        let members: Vec<Value> = (0..self.names.len())
            .map(|i| {
                json!({
                    "name": self.names[i],
                    "id": ids[i].map(|id| format!("{id:016x}")).unwrap_or_default(),
                    "client_url": self.client_urls[i],
                    "process": processes[i].as_str(),
                    "cut": self.proxy.is_cut(i),
                })
            })
            .collect();
        json!({ "controls": true, "members": members, "load": self.load.json() })
    }

    async fn cluster(&self) -> Response<Full<Bytes>> {
        self.learn_ids().await;
        json_response(StatusCode::OK, &self.cluster_json())
    }

    async fn member_action(&self, name: &str, action: &str) -> Response<Full<Bytes>> {
        let Some(member) = self.names.iter().position(|n| n == name) else {
            return error(StatusCode::NOT_FOUND, &format!("no member {name}"));
        };
        let action = match action {
            "kill" => Action::Kill,
            "restart" => Action::Restart,
            "pause" => Action::Pause,
            "resume" => Action::Resume,
            "cut" | "heal" => {
                self.proxy.set_cut(member, action == "cut");
                return self.cluster().await;
            }
            _ => {
                return error(
                    StatusCode::NOT_FOUND,
                    &format!("no action {action:?} (kill, restart, pause, resume, cut, heal)"),
                )
            }
        };
        let (reply, outcome) = oneshot::channel();
        if self.requests.send(ProcessRequest { member, action, reply }).is_err() {
            return error(StatusCode::SERVICE_UNAVAILABLE, "tally dev is stopping");
        }
        match outcome.await {
            Ok(Ok(())) => self.cluster().await,
            Ok(Err(Refused::Conflict(e))) => error(StatusCode::CONFLICT, &e),
            Ok(Err(Refused::Failed(e))) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
            Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "tally dev is stopping"),
        }
    }

    async fn put(&self, body: Value) -> Response<Full<Bytes>> {
        let Some(key) = body.get("key").and_then(Value::as_str).filter(|k| !k.is_empty()) else {
            return error(StatusCode::BAD_REQUEST, "expected {\"key\": \"...\", \"value\": \"...\"}");
        };
        let value = body.get("value").and_then(Value::as_str).unwrap_or_default();
        let result = match body.get("member").and_then(Value::as_str) {
            Some(name) => match self.names.iter().position(|n| n == name) {
                Some(i) => load::put(self.channels[i].clone(), key.into(), value.into()).await,
                None => return error(StatusCode::NOT_FOUND, &format!("no member {name}")),
            },
            None => load::put_anywhere(|| self.targets(true), key.as_bytes(), value.as_bytes()).await,
        };
        match result {
            Ok(revision) => json_response(StatusCode::OK, &json!({ "revision": revision })),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e),
        }
    }

    fn set_load(self: &Arc<Self>, body: Value) -> Response<Full<Bytes>> {
        let rate =
            body.get("rate").and_then(|r| r.as_u64().or_else(|| r.as_f64().filter(|r| *r >= 0.0).map(|r| r as u64)));
        let Some(rate) = rate else {
            return error(StatusCode::BAD_REQUEST, "expected {\"rate\": puts a second (0 stops)}");
        };
        let dev = Arc::downgrade(self);
        self.load.set(rate, move || dev.upgrade().map(|dev| dev.targets(false)).unwrap_or_default());
        json_response(StatusCode::OK, &self.load.json())
    }

    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_string();
        let Some((route, want)) = Route::of(&path) else {
            return error(StatusCode::NOT_FOUND, &format!("no such path: {path}"));
        };
        // HEAD too where GET is allowed (hyper leaves the body out).
        let method = request.method();
        if !(*method == want || (want == Method::GET && method == Method::HEAD)) {
            return not_allowed(want);
        }
        match route {
            Route::Root => {
                let mut response = Response::new(Full::new(Bytes::new()));
                *response.status_mut() = StatusCode::FOUND;
                response.headers_mut().insert(header::LOCATION, header::HeaderValue::from_static("/ui"));
                response
            }
            Route::Cluster => self.cluster().await,
            Route::File(file) => match tally_server::ui::assets::asset(file) {
                Some((content_type, bytes)) => {
                    let mut response = Response::new(Full::new(Bytes::from_static(bytes)));
                    let content_type = header::HeaderValue::from_static(content_type);
                    response.headers_mut().insert(header::CONTENT_TYPE, content_type);
                    response
                }
                None => error(StatusCode::NOT_FOUND, &format!("no such file: {path}")),
            },
            Route::Member(name, action) => self.member_action(name, action).await,
            Route::Put => match read_json(request).await {
                Ok(body) => self.put(body).await,
                Err(e) => error(StatusCode::BAD_REQUEST, &e),
            },
            Route::Load => match read_json(request).await {
                Ok(body) => self.set_load(body),
                Err(e) => error(StatusCode::BAD_REQUEST, &e),
            },
        }
    }
}

/// What a path asks for.
enum Route<'a> {
    Root,
    Cluster,
    /// A file of the page: the path after `/ui/`.
    File(&'a str),
    Member(&'a str, &'a str),
    Put,
    Load,
}

impl<'a> Route<'a> {
    /// The route at `path`, and the method it takes.
    fn of(path: &'a str) -> Option<(Route<'a>, Method)> {
        Some(match path {
            "/" => (Route::Root, Method::GET),
            "/ui/cluster" => (Route::Cluster, Method::GET),
            "/dev/put" => (Route::Put, Method::POST),
            "/dev/load" => (Route::Load, Method::POST),
            _ => {
                if let Some(file) = path.strip_prefix("/ui").filter(|rest| rest.is_empty() || rest.starts_with('/')) {
                    (Route::File(file.trim_start_matches('/')), Method::GET)
                } else {
                    let (name, action) = path.strip_prefix("/dev/members/")?.split_once('/')?;
                    (!action.contains('/')).then_some((Route::Member(name, action), Method::POST))?
                }
            }
        })
    }
}

/// Serves the control API on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, dev: Arc<Dev>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let dev = dev.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let dev = dev.clone();
                async move { Ok::<_, Infallible>(dev.handle(request).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
        });
    }
}

async fn read_json(request: Request<Incoming>) -> Result<Value, String> {
    let body = Limited::new(request.into_body(), BODY_BYTES_MAX)
        .collect()
        .await
        .map_err(|e| format!("cannot read the body: {e}"))?
        .to_bytes();
    if body.is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(&body).map_err(|e| format!("bad JSON: {e}"))
}

fn json_response(status: StatusCode, value: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    response
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json_response(status, &json!({ "error": message }))
}

fn not_allowed(allowed: Method) -> Response<Full<Bytes>> {
    let mut response = error(StatusCode::METHOD_NOT_ALLOWED, &format!("use {allowed}"));
    let allow = if allowed == Method::GET { "GET, HEAD".to_string() } else { allowed.to_string() };
    let allow = header::HeaderValue::from_str(&allow).expect("methods are a header value");
    response.headers_mut().insert(header::ALLOW, allow);
    response
}
