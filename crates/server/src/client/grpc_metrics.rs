//! `grpc_server_started_total`, `grpc_server_handled_total` and, with `--metrics extensive`
//! as in etcd, `grpc_server_handling_seconds`, labelled as go-grpc-prometheus labels them in
//! etcd, every method and code present from the start (etcd initializes them to zero).
//! Counting is an index lookup and atomic increments; timing adds two clock reads per call.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::Frame;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;
use tonic::body::Body;

use tally_node::histogram::AtomicHistogram;

/// gRPC status codes by number, as go-grpc-prometheus names them.
const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];
const CANCELED: usize = 1;
const UNKNOWN: usize = 2;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Unary,
    ServerStream,
    BidiStream,
}

/// The methods Tally serves: (path, service, method, kind), sorted by path for lookup.
const METHODS: &[(&str, &str, &str, Kind)] = {
    use Kind::*;
    &[
        ("/etcdserverpb.Cluster/MemberAdd", "etcdserverpb.Cluster", "MemberAdd", Unary),
        ("/etcdserverpb.Cluster/MemberList", "etcdserverpb.Cluster", "MemberList", Unary),
        ("/etcdserverpb.Cluster/MemberPromote", "etcdserverpb.Cluster", "MemberPromote", Unary),
        ("/etcdserverpb.Cluster/MemberRemove", "etcdserverpb.Cluster", "MemberRemove", Unary),
        ("/etcdserverpb.Cluster/MemberUpdate", "etcdserverpb.Cluster", "MemberUpdate", Unary),
        ("/etcdserverpb.KV/Compact", "etcdserverpb.KV", "Compact", Unary),
        ("/etcdserverpb.KV/DeleteRange", "etcdserverpb.KV", "DeleteRange", Unary),
        ("/etcdserverpb.KV/Put", "etcdserverpb.KV", "Put", Unary),
        ("/etcdserverpb.KV/Range", "etcdserverpb.KV", "Range", Unary),
        ("/etcdserverpb.KV/Txn", "etcdserverpb.KV", "Txn", Unary),
        ("/etcdserverpb.Lease/LeaseGrant", "etcdserverpb.Lease", "LeaseGrant", Unary),
        ("/etcdserverpb.Lease/LeaseKeepAlive", "etcdserverpb.Lease", "LeaseKeepAlive", BidiStream),
        ("/etcdserverpb.Lease/LeaseLeases", "etcdserverpb.Lease", "LeaseLeases", Unary),
        ("/etcdserverpb.Lease/LeaseRevoke", "etcdserverpb.Lease", "LeaseRevoke", Unary),
        ("/etcdserverpb.Lease/LeaseTimeToLive", "etcdserverpb.Lease", "LeaseTimeToLive", Unary),
        ("/etcdserverpb.Maintenance/Alarm", "etcdserverpb.Maintenance", "Alarm", Unary),
        ("/etcdserverpb.Maintenance/Defragment", "etcdserverpb.Maintenance", "Defragment", Unary),
        ("/etcdserverpb.Maintenance/Downgrade", "etcdserverpb.Maintenance", "Downgrade", Unary),
        ("/etcdserverpb.Maintenance/Hash", "etcdserverpb.Maintenance", "Hash", Unary),
        ("/etcdserverpb.Maintenance/HashKV", "etcdserverpb.Maintenance", "HashKV", Unary),
        ("/etcdserverpb.Maintenance/MoveLeader", "etcdserverpb.Maintenance", "MoveLeader", Unary),
        ("/etcdserverpb.Maintenance/Snapshot", "etcdserverpb.Maintenance", "Snapshot", ServerStream),
        ("/etcdserverpb.Maintenance/Status", "etcdserverpb.Maintenance", "Status", Unary),
        ("/etcdserverpb.Watch/Watch", "etcdserverpb.Watch", "Watch", BidiStream),
        ("/v3electionpb.Election/Campaign", "v3electionpb.Election", "Campaign", Unary),
        ("/v3electionpb.Election/Leader", "v3electionpb.Election", "Leader", Unary),
        ("/v3electionpb.Election/Observe", "v3electionpb.Election", "Observe", ServerStream),
        ("/v3electionpb.Election/Proclaim", "v3electionpb.Election", "Proclaim", Unary),
        ("/v3electionpb.Election/Resign", "v3electionpb.Election", "Resign", Unary),
        ("/v3lockpb.Lock/Lock", "v3lockpb.Lock", "Lock", Unary),
        ("/v3lockpb.Lock/Unlock", "v3lockpb.Lock", "Unlock", Unary),
    ]
};

/// One method's counters.
#[derive(Debug)]
struct MethodCounters {
    started: AtomicU64,
    handled: [AtomicU64; CODES.len()],
    seconds: AtomicHistogram,
}

#[derive(Debug)]
pub struct GrpcMetrics {
    methods: Arc<[MethodCounters]>,
    /// Time every call (`grpc_server_handling_seconds`), etcd's `--metrics extensive`.
    timed: bool,
}

impl Default for GrpcMetrics {
    fn default() -> Self {
        Self::new(false)
    }
}

impl GrpcMetrics {
    pub fn new(timed: bool) -> Self {
        debug_assert!(METHODS.windows(2).all(|w| w[0].0 < w[1].0), "METHODS sorted by path");
        // go-grpc-prometheus's default buckets.
        let bounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
        let methods = METHODS
            .iter()
            .map(|_| MethodCounters {
                started: AtomicU64::new(0),
                handled: std::array::from_fn(|_| AtomicU64::new(0)),
                seconds: AtomicHistogram::new(bounds),
            })
            .collect();
        Self { methods, timed }
    }
}

/// A call being served, to be counted as handled when its status is known, or as Canceled if
/// it is dropped unanswered (the client went away, or its deadline passed).
pub struct Call {
    methods: Arc<[MethodCounters]>,
    at: usize,
    started: Option<Instant>,
    counted: bool,
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.counted {
            self.count(CANCELED);
        }
    }
}

impl GrpcMetrics {
    /// Counts a call as started; None for a path that is not one of our methods.
    pub fn start(&self, path: &str) -> Option<Call> {
        let at = METHODS.binary_search_by(|m| m.0.cmp(path)).ok()?;
        self.methods[at].started.fetch_add(1, Ordering::Relaxed);
        Some(Call { methods: self.methods.clone(), at, started: self.timed.then(Instant::now), counted: false })
    }

    pub fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let labels = |i: usize| {
            let (_, service, method, kind) = METHODS[i];
            let kind = match kind {
                Kind::Unary => "unary",
                Kind::ServerStream => "server_stream",
                Kind::BidiStream => "bidi_stream",
            };
            [("grpc_method", method), ("grpc_service", service), ("grpc_type", kind)]
        };
        let help = "Total number of RPCs started on the server.";
        let mut family = encoder.encode_descriptor("grpc_server_started", help, None, MetricType::Counter)?;
        for (i, m) in self.methods.iter().enumerate() {
            let counter = ConstCounter::new(m.started.load(Ordering::Relaxed));
            counter.encode(family.encode_family(&labels(i))?)?;
        }
        let help = "Total number of RPCs completed on the server, regardless of success or failure.";
        let mut family = encoder.encode_descriptor("grpc_server_handled", help, None, MetricType::Counter)?;
        for (i, m) in self.methods.iter().enumerate() {
            for (code, count) in CODES.iter().zip(&m.handled) {
                let [method, service, kind] = labels(i);
                let labels = [("grpc_code", *code), method, service, kind];
                ConstCounter::new(count.load(Ordering::Relaxed)).encode(family.encode_family(&labels)?)?;
            }
        }
        if !self.timed {
            return Ok(());
        }
        let help =
            "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.";
        let mut family =
            encoder.encode_descriptor("grpc_server_handling_seconds", help, None, MetricType::Histogram)?;
        for (i, m) in self.methods.iter().enumerate() {
            m.seconds.encode(family.encode_family(&labels(i))?)?;
        }
        Ok(())
    }
}

impl Call {
    /// Counts the call as handled once its answer shows its status: at once for a unary call
    /// (tonic puts an error's status in the headers; a success's is OK), at the end of the
    /// body for a stream (its trailers, or Canceled if the client went away first).
    pub fn answered(self, resp: http::Response<Body>) -> http::Response<Body> {
        let code = resp.headers().get("grpc-status").map(status_index);
        match (METHODS[self.at].3, code) {
            (Kind::Unary, code) => {
                self.handled(code.unwrap_or(0));
                resp
            }
            (_, Some(code)) => {
                self.handled(code);
                resp
            }
            (_, None) => resp.map(|body| Body::new(CountedBody { inner: body, call: Some(self) })),
        }
    }

    fn handled(mut self, code: usize) {
        self.count(code);
    }

    fn count(&mut self, code: usize) {
        self.counted = true;
        let counters = &self.methods[self.at];
        counters.handled[code].fetch_add(1, Ordering::Relaxed);
        if let Some(started) = self.started {
            counters.seconds.observe(started.elapsed());
        }
    }
}

fn status_index(value: &http::HeaderValue) -> usize {
    let code = value.to_str().ok().and_then(|s| s.parse::<usize>().ok());
    code.filter(|&c| c < CODES.len()).unwrap_or(UNKNOWN)
}

/// A stream's body that counts the call when its trailers go out (or, dropped first, its `Call`
/// counts it as Canceled).
struct CountedBody {
    inner: Body,
    call: Option<Call>,
}

impl http_body::Body for CountedBody {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &frame {
            if let Some(trailers) = frame.trailers_ref() {
                let code = trailers.get("grpc-status").map_or(UNKNOWN, status_index);
                if let Some(call) = self.call.take() {
                    call.handled(code);
                }
            }
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_is_found_by_its_path() {
        let metrics = GrpcMetrics::default();
        for (path, _, _, _) in METHODS {
            assert!(metrics.start(path).is_some(), "{path}");
        }
        assert!(metrics.start("/etcdserverpb.KV/Nope").is_none());
    }
}
