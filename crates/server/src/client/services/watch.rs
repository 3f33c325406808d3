//! The etcd Watch service: one bidirectional stream carries many watches. Responses follow
//! etcd 3.5's server: a `created` response at the current revision, events with the header
//! revision of their write (or the current revision when caught up from history), and a
//! canceled response with `compact_revision` for a start revision that was compacted away.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tally_mvcc::{Access, MvccError};
use tally_proto::etcdserverpb::watch_create_request::FilterType;
use tally_proto::etcdserverpb::watch_request::RequestUnion;
use tally_proto::etcdserverpb::watch_server::Watch;
use tally_proto::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};
use tokio::sync::{mpsc, Notify};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::context::Context;
use crate::node::watch_hub::{CatchUpStep, Outbox, WatchHub, Watcher};

/// Responses buffered per stream before its watchers fall back to catching up from history.
const STREAM_BUFFER: usize = 1024;

/// Unsynced watchers caught up per turn of a stream's loop, so that its requests are not kept
/// waiting behind a long catch-up (etcd's `syncWatchers` batches too).
const CATCH_UP_BATCH: usize = 256;

pub struct WatchService {
    hub: Arc<WatchHub>,
    ctx: Arc<Context>,
}

impl WatchService {
    pub fn new(hub: Arc<WatchHub>, ctx: Arc<Context>) -> Self {
        Self { hub, ctx }
    }
}

/// The stream's credentials: each watch created on it is checked with them, as etcd does (a
/// watch already running is not checked again).
struct Credentials {
    ctx: Arc<Context>,
    metadata: tonic::metadata::MetadataMap,
    extensions: http::Extensions,
}

impl Credentials {
    /// Why `who` may not watch `c`, as etcd's cancel reason says it: the whole text of its gRPC
    /// error (`rpc error: code = ... desc = ...`).
    async fn refusal(&self, c: &WatchCreateRequest) -> Option<String> {
        let checked = match self.ctx.auth.caller(&self.metadata, &self.extensions).await {
            Ok(who) => self.ctx.sm.read().expect("sm lock").auth.check(&who, Access::Read, &c.key, &c.range_end),
            Err(e) => Err(e),
        };
        let refused = match checked.err()? {
            e @ (MvccError::InvalidAuthToken | MvccError::AuthOldRevision | MvccError::UserEmpty) => e,
            _ => MvccError::PermissionDenied,
        };
        let code = tonic::Code::from_i32(refused.code().as_i32());
        Some(format!("rpc error: code = {} desc = {}", go_code_name(code), refused.message()))
    }
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = ReceiverStream<Result<WatchResponse, Status>>;

    async fn watch(&self, request: Request<Streaming<WatchRequest>>) -> Result<Response<Self::WatchStream>, Status> {
        let (metadata, extensions, incoming) = request.into_parts();
        let credentials = Credentials { ctx: self.ctx.clone(), metadata, extensions };
        let (out, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(run_stream(self.hub.clone(), credentials, incoming, out));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

struct Stream {
    hub: Arc<WatchHub>,
    /// This stream's id in the hub (`Watcher::stream`).
    id: u64,
    out: Outbox,
    wake: Arc<Notify>,
    /// watch id -> hub key. A watch canceled by compaction stays (its key no longer in the hub)
    /// until the client cancels it, as in etcd.
    watches: BTreeMap<i64, u64>,
    next_id: i64,
    credentials: Credentials,
}

async fn run_stream(hub: Arc<WatchHub>, credentials: Credentials, mut incoming: Streaming<WatchRequest>, out: Outbox) {
    let period = progress_period(&hub);
    let mut progress = tokio::time::interval_at(Instant::now() + period, period);
    progress.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let id = hub.new_stream();
    let mut stream =
        Stream { hub, id, out, wake: Arc::new(Notify::new()), watches: BTreeMap::new(), next_id: 0, credentials };
    loop {
        let wake = stream.wake.clone();
        tokio::select! {
            msg = incoming.message() => match msg {
                Ok(Some(req)) => {
                    if stream.handle(req).await.is_err() {
                        break;
                    }
                }
                _ => break,
            },
            _ = wake.notified() => {}
            _ = progress.tick() => {
                let keys: Vec<u64> = stream.watches.values().copied().collect();
                stream.hub.progress_tick(&keys);
            }
        }
        if stream.catch_up().await.is_err() {
            break;
        }
    }
    for key in stream.watches.values() {
        stream.hub.remove(*key);
    }
}

/// The stream's progress notification period: the interval plus up to a tenth of it, drawn per
/// stream as etcd does, so that streams do not all notify at the same moment.
fn progress_period(hub: &WatchHub) -> Duration {
    let interval = hub.progress_interval;
    let jitter_range = (interval.as_nanos() / 10) as u64;
    let draw = std::collections::hash_map::RandomState::new().build_hasher().finish();
    interval + Duration::from_nanos(if jitter_range == 0 { 0 } else { draw % jitter_range })
}

/// grpc-go's name of a status code (`codes.Code.String()`).
fn go_code_name(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::InvalidArgument => "InvalidArgument",
        tonic::Code::PermissionDenied => "PermissionDenied",
        tonic::Code::Unauthenticated => "Unauthenticated",
        tonic::Code::FailedPrecondition => "FailedPrecondition",
        _ => "Unknown",
    }
}

type Closed = ();

impl Stream {
    fn current_revision(&self) -> i64 {
        self.hub.sm.read().expect("sm lock").store.revision()
    }

    async fn send(&self, resp: WatchResponse) -> Result<(), Closed> {
        self.out.send(Ok(resp)).await.map_err(|_| ())
    }

    async fn handle(&mut self, req: WatchRequest) -> Result<(), Closed> {
        match req.request_union {
            Some(RequestUnion::CreateRequest(create)) => self.create(create).await,
            Some(RequestUnion::CancelRequest(cancel)) => {
                if let Some(key) = self.watches.remove(&cancel.watch_id) {
                    self.hub.remove(key);
                    let header = Some(self.hub.headers.header(self.current_revision()));
                    let resp =
                        WatchResponse { header, watch_id: cancel.watch_id, canceled: true, ..Default::default() };
                    self.send(resp).await?;
                }
                Ok(())
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                // etcd 3.5.13+: one response with watch id -1 at the current revision, once all
                // of the stream's watchers have been sent everything up to it; none otherwise.
                let keys: Vec<u64> = self.watches.values().copied().collect();
                self.hub.progress(&keys, -1);
                Ok(())
            }
            None => Ok(()),
        }
    }

    async fn create(&mut self, c: WatchCreateRequest) -> Result<(), Closed> {
        if let Some(reason) = self.credentials.refusal(&c).await {
            let resp = WatchResponse {
                header: Some(self.hub.headers.header(self.current_revision())),
                watch_id: -1,
                created: true,
                canceled: true,
                cancel_reason: reason,
                ..Default::default()
            };
            return self.send(resp).await;
        }
        let current = self.current_revision();
        if !c.range_end.is_empty() && c.range_end != [0] && c.range_end <= c.key {
            // etcd refuses a watch on a range that can never match anything.
            let resp = WatchResponse {
                header: Some(self.hub.headers.header(current)),
                watch_id: -1,
                created: true,
                canceled: true,
                cancel_reason: "mvcc: watcher range is empty".into(),
                ..Default::default()
            };
            return self.send(resp).await;
        }
        let id = if c.watch_id != 0 { c.watch_id } else { self.next_free_id() };
        if self.watches.contains_key(&id) {
            let resp = WatchResponse {
                header: Some(self.hub.headers.header(current)),
                watch_id: id,
                created: true,
                canceled: true,
                cancel_reason: "mvcc: duplicate watch ID provided on the WatchStream".into(),
                ..Default::default()
            };
            return self.send(resp).await;
        }
        let filters = |f: FilterType| c.filters.contains(&(f as i32));
        let watcher = Watcher {
            watch_id: id,
            stream: self.id,
            key: c.key.clone(),
            range_end: c.range_end.clone(),
            no_put: filters(FilterType::Noput),
            no_delete: filters(FilterType::Nodelete),
            prev_kv: c.prev_kv,
            start_rev: c.start_revision,
            progress_notify: c.progress_notify,
            sent_events: false,
            // Fixed now: a write applied before the watcher is registered is caught up, not lost.
            next_rev: if c.start_revision > 0 { c.start_revision } else { current + 1 },
            synced: false,
            out: self.out.clone(),
            wake: self.wake.clone(),
        };
        // The created response must precede any event, so send it before registering.
        let resp = WatchResponse {
            header: Some(self.hub.headers.header(current)),
            watch_id: id,
            created: true,
            ..Default::default()
        };
        self.send(resp).await?;
        let key = self.hub.add(watcher);
        self.watches.insert(id, key);
        Ok(())
    }

    fn next_free_id(&mut self) -> i64 {
        while self.watches.contains_key(&self.next_id) {
            self.next_id += 1;
        }
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Brings this stream's unsynced watchers up to date from history, a batch at a time; if
    /// more are left, the stream's loop comes back here after serving its requests.
    async fn catch_up(&mut self) -> Result<(), Closed> {
        let behind = self.hub.behind(self.id, CATCH_UP_BATCH);
        for &key in &behind {
            match self.catch_up_one(key).await? {
                Ok(()) => {}
                Err(MvccError::Compacted) => {
                    // As in etcd, the canceled watch keeps its id on the stream until the client
                    // cancels it (the Go client does): till then it holds the stream's progress
                    // notifications back and a cancel request for it is answered.
                    if let Some(resp) = self.hub.cancel_compacted(key) {
                        self.send(resp).await?;
                    }
                }
                Err(other) => tracing::warn!("watch {key}: catching up failed: {other}"),
            }
        }
        if behind.len() == CATCH_UP_BATCH {
            self.wake.notify_one();
        }
        Ok(())
    }

    async fn catch_up_one(&self, key: u64) -> Result<Result<(), MvccError>, Closed> {
        loop {
            match self.hub.catch_up_step(key) {
                Ok(CatchUpStep::Done) => return Ok(Ok(())),
                Ok(CatchUpStep::Send(resp)) => self.send(resp).await?,
                Ok(CatchUpStep::Yield) => tokio::task::yield_now().await,
                Err(e) => return Ok(Err(e)),
            }
        }
    }
}
