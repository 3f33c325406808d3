//! `/ui`, `/ui/assets/*`, `/ui/cluster` and `/ui/events` on the client URLs.

use std::convert::Infallible;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};
use http_body_util::{Full, StreamBody};
use hyper::body::Frame;
use tally_node::members::Members;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::body::Body;

use super::assets::asset;
use super::events::{now_ms, UiEvents};
use super::json;

/// Frames waiting for a slow connection before the stream's own buffer takes over.
const CONNECTION_FRAMES: usize = 64;
/// A comment line sent this often keeps idle proxies from closing the stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub struct UiRoutes {
    pub events: Arc<UiEvents>,
    pub members: Arc<RwLock<Members>>,
    /// Our own client URL (the member table learns the others' from their hellos).
    pub client_url: String,
}

/// Whether `path` is the view's.
pub fn is_ui_path(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}

impl UiRoutes {
    pub fn serve(&self, method: &Method, path: &str) -> Response<Body> {
        if method != Method::GET && method != Method::HEAD {
            return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", Bytes::from_static(b"Method Not Allowed\n"));
        }
        match path {
            "/ui/events" => self.events(),
            "/ui/cluster" => self.cluster(),
            _ => match asset(path.strip_prefix("/ui").unwrap_or_default()) {
                Some((content_type, bytes)) => reply(StatusCode::OK, content_type, Bytes::from_static(bytes)),
                None => not_found(),
            },
        }
    }

    fn cluster(&self) -> Response<Body> {
        let members: Vec<serde_json::Value> = self
            .members
            .read()
            .expect("members lock")
            .members
            .values()
            .map(|m| {
                let client_url = match m.id == self.events.id() {
                    true => self.client_url.clone(),
                    false => m.client_urls.first().cloned().unwrap_or_default(),
                };
                serde_json::json!({ "name": m.name, "id": json::id(m.id), "client_url": client_url })
            })
            .collect();
        let body = serde_json::json!({ "controls": false, "members": members }).to_string();
        cors(reply(StatusCode::OK, "application/json", Bytes::from(body)))
    }

    /// Server-Sent Events: a task per stream moves its events to the connection.
    fn events(&self) -> Response<Body> {
        let (first, mut live) = self.events.subscribe();
        let (tx, rx) = mpsc::channel::<Bytes>(CONNECTION_FRAMES);
        tokio::spawn(async move {
            // Reconnect quickly after the member restarts.
            let mut pending: Vec<Bytes> = vec![Bytes::from_static(b"retry: 500\n\n")];
            pending.extend(first.iter().map(|e| frame(e)));
            for f in pending {
                if tx.send(f).await.is_err() {
                    return;
                }
            }
            loop {
                let next = match tokio::time::timeout(KEEP_ALIVE, live.recv()).await {
                    Ok(Ok(event)) => frame(&event),
                    Ok(Err(RecvError::Lagged(count))) => frame(&json::counted("dropped", now_ms(), count)),
                    Ok(Err(RecvError::Closed)) => return,
                    Err(_) => Bytes::from_static(b": keep-alive\n\n"),
                };
                // The page went away.
                if tx.send(next).await.is_err() {
                    return;
                }
            }
        });
        let stream = ReceiverStream::new(rx).map(|b| Ok::<_, Infallible>(Frame::data(b)));
        let mut resp = Response::new(Body::new(StreamBody::new(stream)));
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        cors(resp)
    }
}

fn frame(event: &str) -> Bytes {
    Bytes::from(format!("data: {event}\n\n"))
}

/// One page follows every member: their streams must be readable from its origin.
fn cors(mut resp: Response<Body>) -> Response<Body> {
    resp.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    resp
}

fn reply(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Body::new(Full::new(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

pub fn not_found() -> Response<Body> {
    reply(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", Bytes::from_static(b"404 page not found\n"))
}
