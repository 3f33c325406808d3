//! etcd's `WithRequireLeader`: a call whose metadata says `hasleader: true` wants to fail rather
//! than be served by a member cut off from its leader (Kubernetes sends it on every call). As
//! etcd's gRPC interceptors do, such a call is refused at once while the member knows no
//! leader, and such a stream already open (Watch, LeaseKeepAlive, Observe, Snapshot) is ended
//! once the member has known no leader for three election timeouts: both with `Unavailable`,
//! "etcdserver: no leader".

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use tokio::sync::watch;
use tonic::body::Body;
use tonic::Status;

use crate::client::errors;
use crate::node::driver::Shared;

/// The metadata key of etcd's `WithRequireLeader` (`rpctypes.MetadataRequireLeaderKey`).
const REQUIRE_LEADER_KEY: &str = "hasleader";
/// etcd's `maxNoLeaderCnt`: election timeouts without a leader before streams are ended.
const NO_LEADER_CHECKS: u32 = 3;
/// The streaming calls; a unary call ends by itself.
const STREAMS: [&str; 4] = [
    "/etcdserverpb.Watch/Watch",
    "/etcdserverpb.Lease/LeaseKeepAlive",
    "/etcdserverpb.Maintenance/Snapshot",
    "/v3electionpb.Election/Observe",
];

#[derive(Clone)]
pub struct LeaderGate {
    shared: Arc<Shared>,
    /// Bumped each time the member has been without a leader for too long.
    lost: watch::Receiver<u64>,
}

impl LeaderGate {
    /// Starts the monitor (etcd's `monitorLeader`): it looks for a leader every
    /// `election_timeout`.
    pub fn start(shared: Arc<Shared>, election_timeout: Duration) -> LeaderGate {
        let (tx, lost) = watch::channel(0u64);
        let monitor = shared.clone();
        tokio::spawn(async move {
            let mut without_leader = 0u32;
            let mut every = tokio::time::interval(election_timeout);
            loop {
                every.tick().await;
                without_leader = if monitor.leader().is_some() { 0 } else { without_leader.saturating_add(1) };
                if without_leader >= NO_LEADER_CHECKS {
                    if tx.is_closed() {
                        return;
                    }
                    tx.send_modify(|generation| *generation += 1);
                }
            }
        });
        LeaderGate { shared, lost }
    }

    /// The answer to a call that requires a leader while there is none; `None` to serve it.
    pub fn refuse<B>(&self, req: &http::Request<B>) -> Option<http::Response<Body>> {
        let required = req.headers().get(REQUIRE_LEADER_KEY).is_some_and(|v| v.as_bytes() == b"true");
        (required && self.shared.leader().is_none()).then(|| errors::no_leader().into_http())
    }

    /// Whether the answer to `req` must end when the leader is lost for long.
    pub fn guards<B>(&self, req: &http::Request<B>) -> bool {
        let required = req.headers().get(REQUIRE_LEADER_KEY).is_some_and(|v| v.as_bytes() == b"true");
        required && STREAMS.contains(&req.uri().path())
    }

    /// `resp` with a body that ends with "etcdserver: no leader" when the leader is lost for long.
    pub fn guard(&self, resp: http::Response<Body>) -> http::Response<Body> {
        let mut lost = self.lost.clone();
        lost.mark_unchanged();
        let lost: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
            // A closed sender (the server is going away) ends nothing.
            if lost.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        });
        resp.map(|inner| Body::new(Guarded { inner, lost: Some(lost) }))
    }
}

/// A streaming answer's body that ends with `Unavailable` when the leader is lost for long.
struct Guarded {
    inner: Body,
    /// `None` once the stream was ended.
    lost: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let Some(lost) = self.lost.as_mut() else { return Poll::Ready(None) };
        if lost.as_mut().poll(cx).is_ready() {
            self.lost = None;
            // The stream's own body is dropped: its service sees the client gone and cleans up.
            self.inner = Body::empty();
            let mut trailers = http::HeaderMap::new();
            let _ = errors::no_leader().add_header(&mut trailers);
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.lost.is_none()
    }
}
