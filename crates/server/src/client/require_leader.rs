//! etcd's `WithRequireLeader`: a call whose metadata says `hasleader: true` wants to fail rather
//! than be served by a member cut off from its leader (Kubernetes sends it on every call). As
//! etcd's gRPC interceptors do, such a call is refused while the member has no leader, and such
//! a stream already open (Watch, LeaseKeepAlive, Observe, Snapshot) is ended once the member
//! has had no leader for three election timeouts: both with `Unavailable`, "etcdserver: no
//! leader".
//!
//! "Has no leader" means what it means in etcd: no leader for an election timeout (or none yet).
//! An etcd follower keeps its leader until an election timeout passes without it; a Tally
//! follower forgets a leader whose connection reset at once, to elect the next one sooner. Were
//! that moment refused, every stream moved off a killed member during the election would be
//! refused and retried (the kube-apiserver logged hundreds of "no leader" watch errors per kill).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
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
const NO_LEADER_TIMEOUTS: u32 = 3;
/// The streaming calls; a unary call ends by itself.
const STREAMS: [&str; 4] = [
    "/etcdserverpb.Watch/Watch",
    "/etcdserverpb.Lease/LeaseKeepAlive",
    "/etcdserverpb.Maintenance/Snapshot",
    "/v3electionpb.Election/Observe",
];

/// How many times per election timeout the monitor looks for a leader.
const CHECKS_PER_TIMEOUT: u32 = 5;

pub enum Admission {
    Serve,
    Refuse(http::Response<Body>),
    /// A require-leader stream: pass its answer through `LeaderGate::guard`.
    ServeGuarded,
}

#[derive(Clone)]
pub struct LeaderGate {
    shared: Arc<Shared>,
    /// Set while the member has had no leader for an election timeout, or never had one.
    leaderless: Arc<AtomicBool>,
    /// Bumped each time the member has been without a leader for too long.
    lost: watch::Receiver<u64>,
}

impl LeaderGate {
    /// Starts the monitor (etcd's `monitorLeader`).
    pub fn start(shared: Arc<Shared>, election_timeout: Duration) -> LeaderGate {
        let (tx, lost) = watch::channel(0u64);
        let leaderless = Arc::new(AtomicBool::new(true));
        let (monitor, flag) = (shared.clone(), leaderless.clone());
        tokio::spawn(async move {
            // Checks in a row without a leader; `None` until the first leader is seen.
            let mut without: Option<u32> = None;
            let mut every = tokio::time::interval(election_timeout / CHECKS_PER_TIMEOUT);
            loop {
                every.tick().await;
                without = match (monitor.leader(), without) {
                    (Some(_), _) => Some(0),
                    (None, None) => None,
                    (None, Some(n)) => Some(n + 1),
                };
                flag.store(without.is_none_or(|n| n >= CHECKS_PER_TIMEOUT), Ordering::Relaxed);
                // Streams end after three timeouts, then at every timeout while it lasts.
                let timeouts = without.unwrap_or(0) / CHECKS_PER_TIMEOUT;
                let at_a_timeout = without.is_some_and(|n| n % CHECKS_PER_TIMEOUT == 0);
                if timeouts >= NO_LEADER_TIMEOUTS && at_a_timeout {
                    if tx.is_closed() {
                        return;
                    }
                    tx.send_modify(|generation| *generation += 1);
                }
            }
        });
        LeaderGate { shared, leaderless, lost }
    }

    /// How to treat `req`: serve it; refuse it (it requires a leader while there is none); or
    /// serve it and end its stream when the leader is lost for long.
    pub fn admit<B>(&self, req: &http::Request<B>) -> Admission {
        let required = req.headers().get(REQUIRE_LEADER_KEY).is_some_and(|v| v.as_bytes() == b"true");
        if !required {
            Admission::Serve
        } else if self.shared.leader().is_none() && self.leaderless.load(Ordering::Relaxed) {
            Admission::Refuse(errors::no_leader().into_http())
        } else if STREAMS.contains(&req.uri().path()) {
            Admission::ServeGuarded
        } else {
            Admission::Serve
        }
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
