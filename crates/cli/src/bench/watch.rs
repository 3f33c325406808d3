//! `tally bench watch`: how writes and their watch events fare as the number of watchers grows.
//!
//! `--watchers` N single-key watches (watcher i on key i) and `--prefix-watchers` M prefix
//! watches (watcher j on `wb/{j:04}/`) are spread round-robin over `--streams` Watch streams,
//! each on its own HTTP/2 connection, the streams round-robin over the endpoints. Put key i is
//! `wb/{i % M:04}/{i:08}`, so a put of key i is seen by single-key watcher i if i < N and by
//! exactly one prefix watcher: the events a run must deliver follow from the keys it put.
//!
//! Three phases: create (all create requests sent at once, timed to the last `created`
//! response), puts (`--total` closed-loop puts of random keys of the key space by `--clients`
//! tasks over `--conns` connections; each acknowledgement is kept with its revision), cancel
//! (all cancel requests sent at once, timed to the last `canceled` response). Before cancelling,
//! the run waits for every expected event, at most `--drain-timeout-s`.
//!
//! An event's lag runs from the acknowledgement of the put of its revision to its arrival (0 if
//! the event came first); the tail runs from the last acknowledgement to the last expected
//! event. Missing, duplicated, out-of-order (per watch) and misdirected events, and watches that
//! were not created or not canceled, are correctness failures: reported, and the exit code is 1.
//! The puts are closed loop on the main runtime: `--rate` and `--threads` do not apply.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tally_proto::etcdserverpb::watch_client::WatchClient;
use tally_proto::etcdserverpb::watch_request::RequestUnion;
use tally_proto::etcdserverpb::{
    PutRequest, RangeRequest, WatchCancelRequest, WatchCreateRequest, WatchRequest, WatchResponse,
};
use tally_proto::mvccpb::event::EventType;
use tally_proto::mvccpb::Event;
// tonic's own re-export: tokio-stream is not a dependency of this crate outside its tests.
use tokio::io::AsyncBufReadExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::codegen::tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;

use super::grpc_conn::{Caller, Conn};
use super::stats::{latency_json, latency_line, new_histogram, Recorder};
use super::{code_name, endpoint, progress_bar, value_bytes, Rng};

/// Prefix numbers have four digits.
const MAX_PREFIX_WATCHERS: u64 = 10_000;
/// Once every expected event is in, how long to go on listening for late duplicates.
const DRAIN_GRACE: Duration = Duration::from_millis(100);
const RESPONSE_MAX: usize = 64 << 20;

#[derive(Args)]
pub struct WatchArgs {
    /// Single-key watches, on keys 0..N of the key space.
    #[arg(long, default_value_t = 10_000)]
    watchers: u64,
    /// Prefix watches, watcher j on `wb/{j:04}/` (at most 10000).
    #[arg(long, default_value_t = 1000)]
    prefix_watchers: u64,
    /// Watch streams the watches are spread over, each on its own connection, round-robin over
    /// the endpoints.
    #[arg(long, default_value_t = 20)]
    streams: usize,
    /// Keys the puts go to (default: the larger of --watchers and 10000).
    #[arg(long)]
    key_space: Option<u64>,
    /// Value length in bytes.
    #[arg(long, default_value_t = 256)]
    val_size: usize,
    /// How long to wait, after the last put, for the events still expected.
    #[arg(long, default_value_t = 60)]
    drain_timeout_s: u64,
    /// How long to wait for every `created`, and every `canceled`, response.
    #[arg(long, default_value_t = 120)]
    phase_timeout_s: u64,
    /// Before and after creating the watches, say so on stderr and wait for a line on stdin (so
    /// that a script can measure the servers' memory in between).
    #[arg(long)]
    pause: bool,
}

/// The global `tally bench` options this workload uses.
pub(super) struct Common {
    pub(super) endpoints: Vec<String>,
    pub(super) conns: usize,
    pub(super) clients: usize,
    pub(super) total: u64,
    pub(super) timeout: Duration,
    pub(super) json: bool,
    pub(super) no_progress: bool,
}

/// Which keys are written and who watches them.
#[derive(Clone, Copy)]
struct Layout {
    singles: u64,
    prefixes: u64,
    key_space: u64,
}

impl Layout {
    fn new(args: &WatchArgs) -> Result<Layout, String> {
        if args.prefix_watchers > MAX_PREFIX_WATCHERS {
            return Err(format!("--prefix-watchers is at most {MAX_PREFIX_WATCHERS}"));
        }
        let layout = Layout {
            singles: args.watchers,
            prefixes: args.prefix_watchers,
            key_space: args.key_space.unwrap_or(args.watchers.max(10_000)).max(1),
        };
        // Watchers are kept as u32 and key numbers too (u32::MAX marks "not one of ours").
        if layout.watches() >= u64::from(u32::MAX) || layout.key_space >= u64::from(u32::MAX) {
            return Err("too many watchers or keys".into());
        }
        Ok(layout)
    }

    fn watches(&self) -> u64 {
        self.singles + self.prefixes
    }

    fn prefix_of(&self, key: u64) -> u64 {
        if self.prefixes == 0 {
            0
        } else {
            key % self.prefixes
        }
    }

    fn put_key(&self, key: u64) -> Vec<u8> {
        format!("wb/{:04}/{key:08}", self.prefix_of(key)).into_bytes()
    }

    /// Watcher `w`'s create request: the single-key watchers are 0..N, the prefix ones after.
    fn create_request(&self, w: u64) -> WatchCreateRequest {
        if w < self.singles {
            return WatchCreateRequest { key: self.put_key(w), ..Default::default() };
        }
        let j = w - self.singles;
        // The prefix ends with '/'; the range ends where '/' + 1 = '0' begins.
        let (key, range_end) = (format!("wb/{j:04}/"), format!("wb/{j:04}0"));
        WatchCreateRequest { key: key.into_bytes(), range_end: range_end.into_bytes(), ..Default::default() }
    }

    /// Whether the key numbered `key` under prefix number `prefix` is watcher `w`'s.
    fn watched_by(&self, w: u64, prefix: u64, key: u64) -> bool {
        if w < self.singles {
            key == w && prefix == self.prefix_of(key)
        } else {
            prefix == w - self.singles && prefix == self.prefix_of(key)
        }
    }

    /// Events a put of key `key` must cause.
    fn events_of(&self, key: u64) -> u64 {
        u64::from(key < self.singles) + u64::from(self.prefixes > 0)
    }
}

/// (prefix number, key number) of a key `Layout::put_key` wrote.
fn parse_key(key: &[u8]) -> Option<(u64, u64)> {
    let rest = std::str::from_utf8(key.strip_prefix(b"wb/")?).ok()?;
    let (prefix, number) = rest.split_once('/')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if prefix.len() != 4 || !digits(prefix) || number.len() < 8 || !digits(number) {
        return None;
    }
    Some((prefix.parse().ok()?, number.parse().ok()?))
}

/// One event as a stream received it: small, since a run can receive millions.
#[derive(Clone, Copy)]
struct Seen {
    rev: i64,
    watcher: u32,
    /// Arrival, in nanoseconds since the run's epoch.
    at_ns: u64,
}

/// What one stream saw, handed back when it ends.
#[derive(Default)]
struct StreamLog {
    created: u64,
    create_failed: u64,
    /// Canceled by the server before the cancel phase.
    canceled_early: u64,
    canceled: u64,
    out_of_order: u64,
    /// Events whose key is not the watch's, or that are not puts.
    wrong_key: u64,
    unknown_watch: u64,
    events: Vec<Seen>,
    /// The first thing that went wrong, for the report.
    error: Option<String>,
}

impl StreamLog {
    fn note(&mut self, error: String) {
        self.error.get_or_insert(error);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Run,
    Cancel,
    Stop,
}

/// A stream's progress, sent to the run as it happens.
enum Milestone {
    Created(usize, Instant),
    Canceled(usize, Instant),
    Ended(usize),
}

/// What every stream task shares.
struct Shared {
    layout: Layout,
    epoch: Instant,
    /// Events received so far (with the right key), over all streams: the drain waits on it.
    received: AtomicU64,
}

/// One Watch stream's task: sends its creates (and later its cancels) and records what arrives.
struct StreamTask {
    index: usize,
    shared: Arc<Shared>,
    /// The watcher of the stream's k-th create request.
    watchers: Vec<u32>,
    /// Responses to create requests so far; they come in the order of the requests.
    answered: usize,
    /// Watch id -> position in `watchers`, for the watches created and not yet canceled.
    ids: HashMap<i64, usize>,
    /// Highest revision seen per position, to catch events out of order.
    last_rev: Vec<i64>,
    canceling: bool,
    requests: mpsc::UnboundedSender<WatchRequest>,
    milestones: mpsc::UnboundedSender<Milestone>,
    log: StreamLog,
}

fn request(r: RequestUnion) -> WatchRequest {
    WatchRequest { request_union: Some(r) }
}

impl StreamTask {
    async fn run(
        mut self,
        channel: Channel,
        outgoing: mpsc::UnboundedReceiver<WatchRequest>,
        mut phase: watch::Receiver<Phase>,
    ) -> StreamLog {
        self.drive(channel, outgoing, &mut phase).await;
        let _ = self.milestones.send(Milestone::Ended(self.index));
        self.log
    }

    async fn drive(
        &mut self,
        channel: Channel,
        outgoing: mpsc::UnboundedReceiver<WatchRequest>,
        phase: &mut watch::Receiver<Phase>,
    ) {
        let mut client = WatchClient::new(channel).max_decoding_message_size(RESPONSE_MAX);
        // Some servers (etcd) send the response headers only with the first response: the
        // creates are already queued, so this returns once the first is answered.
        let opened = tokio::select! {
            opened = client.watch(UnboundedReceiverStream::new(outgoing)) => opened,
            _ = phase.wait_for(|p| *p == Phase::Stop) => return,
        };
        let mut incoming = match opened {
            Ok(response) => response.into_inner(),
            Err(status) => return self.log.note(format!("opening the stream: {}", status.message())),
        };
        // The cancel phase may have begun while the stream was opening (after a timeout).
        if *phase.borrow_and_update() == Phase::Cancel {
            self.start_canceling();
        }
        while !self.finished() {
            tokio::select! {
                msg = incoming.message() => match msg {
                    Ok(Some(resp)) => self.on_response(resp),
                    Ok(None) => return self.log.note("the server ended the stream".into()),
                    Err(status) => return self.log.note(format!("stream failed: {} {}", code_name(&status), status.message())),
                },
                changed = phase.changed() => {
                    let now = *phase.borrow_and_update();
                    if changed.is_err() || now == Phase::Stop {
                        return;
                    }
                    if now == Phase::Cancel && !self.canceling {
                        self.start_canceling();
                    }
                }
            }
        }
    }

    /// Every created watch is canceled: nothing more to receive.
    fn finished(&self) -> bool {
        self.canceling && self.ids.is_empty()
    }

    fn send_creates(&self, layout: &Layout) {
        for &w in &self.watchers {
            let _ = self.requests.send(request(RequestUnion::CreateRequest(layout.create_request(u64::from(w)))));
        }
    }

    fn start_canceling(&mut self) {
        self.canceling = true;
        for &watch_id in self.ids.keys() {
            let _ = self.requests.send(request(RequestUnion::CancelRequest(WatchCancelRequest { watch_id })));
        }
        if self.ids.is_empty() {
            let _ = self.milestones.send(Milestone::Canceled(self.index, Instant::now()));
        }
    }

    fn on_response(&mut self, resp: WatchResponse) {
        let at = Instant::now();
        if resp.created {
            self.on_created(&resp, at);
        } else if resp.canceled {
            self.on_canceled(&resp, at);
        } else if !resp.events.is_empty() {
            self.on_events(resp.watch_id, &resp.events, at);
        }
    }

    fn on_created(&mut self, resp: &WatchResponse, at: Instant) {
        let position = self.answered;
        self.answered += 1;
        if position >= self.watchers.len() {
            return self.log.note(format!("a created response for no create request: {resp:?}"));
        }
        if resp.canceled {
            self.log.create_failed += 1;
            self.log.note(format!("a create was refused: {}", resp.cancel_reason));
        } else {
            self.log.created += 1;
            self.ids.insert(resp.watch_id, position);
        }
        if self.answered == self.watchers.len() {
            let _ = self.milestones.send(Milestone::Created(self.index, at));
        }
    }

    fn on_canceled(&mut self, resp: &WatchResponse, at: Instant) {
        if !self.canceling {
            // Kept in `ids`: such a watch still answers the client's cancel.
            self.log.canceled_early += 1;
            let why = format!("reason {:?}, compact revision {}", resp.cancel_reason, resp.compact_revision);
            return self.log.note(format!("watch {} canceled by the server: {why}", resp.watch_id));
        }
        if self.ids.remove(&resp.watch_id).is_some() {
            self.log.canceled += 1;
            if self.ids.is_empty() {
                let _ = self.milestones.send(Milestone::Canceled(self.index, at));
            }
        }
    }

    fn on_events(&mut self, watch_id: i64, events: &[Event], at: Instant) {
        let Some(&position) = self.ids.get(&watch_id) else {
            self.log.unknown_watch += events.len() as u64;
            return;
        };
        let watcher = self.watchers[position];
        let at_ns = at.duration_since(self.shared.epoch).as_nanos() as u64;
        let mut received = 0;
        for event in events {
            let Some(kv) = event.kv.as_ref() else {
                self.log.wrong_key += 1;
                continue;
            };
            let is_put = event.r#type == EventType::Put as i32;
            let watched = parse_key(&kv.key).is_some_and(|(p, k)| self.shared.layout.watched_by(watcher.into(), p, k));
            if !is_put || !watched {
                self.log.wrong_key += 1;
                continue;
            }
            let rev = kv.mod_revision;
            // An equal revision is a duplicate, which the analysis counts.
            if rev < self.last_rev[position] {
                self.log.out_of_order += 1;
            }
            self.last_rev[position] = self.last_rev[position].max(rev);
            self.log.events.push(Seen { rev, watcher, at_ns });
            received += 1;
        }
        self.shared.received.fetch_add(received, Ordering::Relaxed);
    }
}

/// An acknowledged put.
struct Ack {
    rev: i64,
    key: u32,
    at_ns: u64,
}

/// The current revision, from a range that returns no keys.
async fn current_revision(endpoints: &[String]) -> Result<i64, String> {
    let mut last = String::new();
    for ep in endpoints {
        let range =
            RangeRequest { key: b"wb/".to_vec(), range_end: b"wb0".to_vec(), count_only: true, ..Default::default() };
        match Conn::open(ep).await?.caller().await.range(range).await {
            Ok(resp) => return Ok(resp.header.map_or(0, |h| h.revision)),
            Err(s) => last = s.message().to_string(),
        }
    }
    Err(format!("cannot read the current revision: {last}"))
}

/// One connection per stream (no more streams than watches), round-robin over the endpoints.
async fn connect_streams(endpoints: &[String], streams: usize) -> Result<Vec<Channel>, String> {
    let mut channels = Vec::new();
    for s in 0..streams {
        let ep = &endpoints[s % endpoints.len()];
        channels.push(endpoint(ep)?.connect().await.map_err(|e| format!("cannot connect to {ep}: {e}"))?);
    }
    Ok(channels)
}

/// Starts a task per stream, its creates queued at once; watcher w goes to stream w % streams.
fn start_streams(
    shared: &Arc<Shared>,
    channels: Vec<Channel>,
    phase: &watch::Receiver<Phase>,
    milestones: &mpsc::UnboundedSender<Milestone>,
) -> Vec<JoinHandle<StreamLog>> {
    let streams = channels.len() as u64;
    channels
        .into_iter()
        .enumerate()
        .map(|(index, channel)| {
            let watchers: Vec<u32> =
                (index as u64..shared.layout.watches()).step_by(streams as usize).map(|w| w as u32).collect();
            let (requests, outgoing) = mpsc::unbounded_channel();
            let task = StreamTask {
                index,
                shared: shared.clone(),
                last_rev: vec![0; watchers.len()],
                watchers,
                answered: 0,
                ids: HashMap::new(),
                canceling: false,
                requests,
                milestones: milestones.clone(),
                log: StreamLog::default(),
            };
            task.send_creates(&shared.layout);
            tokio::spawn(task.run(channel, outgoing, phase.clone()))
        })
        .collect()
}

/// Per stream, when it reached the phase being waited for (or ended).
struct Tracker {
    created: Vec<Option<Instant>>,
    canceled: Vec<Option<Instant>>,
    ended: Vec<bool>,
}

impl Tracker {
    fn new(streams: usize) -> Self {
        Self { created: vec![None; streams], canceled: vec![None; streams], ended: vec![false; streams] }
    }

    fn record(&mut self, m: Milestone) {
        match m {
            Milestone::Created(s, at) => self.created[s] = Some(at),
            Milestone::Canceled(s, at) => self.canceled[s] = Some(at),
            Milestone::Ended(s) => self.ended[s] = true,
        }
    }

    /// Waits until every stream has reached `phase` (its instants in `of`) or ended, or the
    /// deadline passes. Returns when the last one got there (the deadline if it never did).
    async fn wait(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<Milestone>,
        deadline: Instant,
        of: fn(&Tracker) -> &[Option<Instant>],
    ) -> Instant {
        let done = |t: &Tracker| of(t).iter().zip(&t.ended).all(|(at, ended)| at.is_some() || *ended);
        while !done(self) {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(m)) => self.record(m),
                Ok(None) | Err(_) => return Instant::now(),
            }
        }
        of(self).iter().flatten().max().copied().unwrap_or_else(Instant::now)
    }
}

/// What the put phase saw.
struct Puts {
    recorder: Recorder,
    acks: Vec<Ack>,
    elapsed: Duration,
}

/// `--total` puts of random keys by `--clients` tasks; client c uses connection c % conns.
async fn put_phase(common: &Common, layout: Layout, val_size: usize, epoch: Instant) -> Result<Puts, String> {
    let mut conns = Vec::new();
    for i in 0..common.conns.max(1) {
        conns.push(Conn::open(&common.endpoints[i % common.endpoints.len()]).await?);
    }
    let value = Arc::new(value_bytes(val_size));
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    let bar = progress_bar(common.total, common.no_progress);
    let ticker = {
        let (bar, done) = (bar.clone(), done.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                bar.set_position(done.load(Ordering::Relaxed));
            }
        })
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..common.clients.max(1) {
        let client = PutClient {
            caller: conns[c % conns.len()].caller().await,
            rng: Rng::new(seed ^ (c as u64 + 1)),
            layout,
            value: value.clone(),
            timeout: common.timeout,
            epoch,
        };
        tasks.push(tokio::spawn(client.run(next.clone(), done.clone(), common.total)));
    }
    let mut recorder = Recorder::new(1);
    let mut acks = Vec::new();
    for t in tasks {
        let (rec, mut a) = t.await.map_err(|e| format!("a put task failed: {e}"))?;
        recorder.merge(rec);
        acks.append(&mut a);
    }
    let elapsed = started.elapsed();
    ticker.abort();
    bar.finish_and_clear();
    Ok(Puts { recorder, acks, elapsed })
}

struct PutClient {
    caller: Caller,
    rng: Rng,
    layout: Layout,
    value: Arc<Vec<u8>>,
    timeout: Duration,
    epoch: Instant,
}

impl PutClient {
    async fn run(mut self, next: Arc<AtomicU64>, done: Arc<AtomicU64>, total: u64) -> (Recorder, Vec<Ack>) {
        let mut rec = Recorder::new(1);
        let mut acks = Vec::new();
        while next.fetch_add(1, Ordering::Relaxed) < total {
            let key = self.rng.below(self.layout.key_space);
            let put = PutRequest { key: self.layout.put_key(key), value: self.value.to_vec(), ..Default::default() };
            let began = Instant::now();
            match tokio::time::timeout(self.timeout, self.caller.put(put)).await {
                Ok(Ok(resp)) => {
                    let at = Instant::now();
                    rec.success(0, at - began);
                    let rev = resp.header.map_or(0, |h| h.revision);
                    acks.push(Ack { rev, key: key as u32, at_ns: (at - self.epoch).as_nanos() as u64 });
                }
                Ok(Err(status)) => rec.error(code_name(&status)),
                Err(_) => rec.error("ClientTimeout".into()),
            }
            done.fetch_add(1, Ordering::Relaxed);
        }
        (rec, acks)
    }
}

/// Waits until `expected` events have arrived, then a moment more for late duplicates; false
/// if the timeout passed first.
async fn drain(shared: &Shared, expected: u64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while shared.received.load(Ordering::Relaxed) < expected {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(DRAIN_GRACE).await;
    true
}

/// How the events matched the acknowledged puts.
struct Delivery {
    expected: u64,
    delivered: u64,
    duplicates: u64,
    /// Events with a key the watch does watch, but at the revision of another key's put.
    misdirected: u64,
    /// Events at a revision no acknowledged put had (e.g. of a put that timed out).
    unmatched: u64,
    lag: Histogram<u64>,
    /// From the last acknowledgement to the last expected event (0 if that came first).
    tail: Option<Duration>,
}

/// An acknowledged put, by revision: when, which key, and how often each of its two events
/// (single-key, prefix) arrived.
#[derive(Clone, Copy)]
struct Slot {
    at_ns: u64,
    key: u32,
    arrived: [u32; 2],
}

const NOT_OURS: u32 = u32::MAX;

fn analyze(layout: &Layout, start_rev: i64, acks: &[Ack], logs: &[StreamLog]) -> Delivery {
    let base = start_rev + 1;
    let top = acks.iter().map(|a| a.rev).max().unwrap_or(start_rev);
    let mut slots = vec![Slot { at_ns: 0, key: NOT_OURS, arrived: [0; 2] }; (top - start_rev).max(0) as usize];
    for a in acks.iter().filter(|a| a.rev >= base) {
        slots[(a.rev - base) as usize] = Slot { at_ns: a.at_ns, key: a.key, arrived: [0; 2] };
    }
    let last_ack = acks.iter().map(|a| a.at_ns).max();
    let mut d = Delivery {
        expected: acks.iter().map(|a| layout.events_of(a.key.into())).sum(),
        delivered: 0,
        duplicates: 0,
        misdirected: 0,
        unmatched: 0,
        lag: new_histogram(),
        tail: None,
    };
    let mut last_event = None;
    for e in logs.iter().flat_map(|l| &l.events) {
        let slot = usize::try_from(e.rev - base).ok().and_then(|i| slots.get_mut(i)).filter(|s| s.key != NOT_OURS);
        let Some(slot) = slot else {
            d.unmatched += 1;
            continue;
        };
        let w = u64::from(e.watcher);
        if !layout.watched_by(w, layout.prefix_of(slot.key.into()), slot.key.into()) {
            d.misdirected += 1;
            continue;
        }
        let arrived = &mut slot.arrived[usize::from(w >= layout.singles)];
        *arrived += 1;
        if *arrived > 1 {
            d.duplicates += 1;
            continue;
        }
        d.delivered += 1;
        let lag_us = e.at_ns.saturating_sub(slot.at_ns) / 1000;
        d.lag.saturating_record(lag_us.max(1));
        last_event = last_event.max(Some(e.at_ns));
    }
    if let (Some(ack), Some(event)) = (last_ack, last_event) {
        d.tail = Some(Duration::from_nanos(event.saturating_sub(ack)));
    }
    d
}

/// A timed phase over all watches.
struct PhaseTiming {
    done: u64,
    elapsed: Duration,
}

impl PhaseTiming {
    fn us_per_watch(&self, watches: u64) -> Option<f64> {
        (watches > 0).then(|| self.elapsed.as_secs_f64() * 1e6 / watches as f64)
    }
}

/// Waits for a line on stdin (or its end), after saying why on stderr.
async fn pause(enabled: bool, at: &str) -> Result<(), String> {
    if !enabled {
        return Ok(());
    }
    eprintln!("tally bench watch: paused {at}; continuing after a line on stdin");
    let mut line = String::new();
    tokio::io::BufReader::new(tokio::io::stdin()).read_line(&mut line).await.map_err(|e| format!("stdin: {e}"))?;
    Ok(())
}

pub(super) async fn run(args: WatchArgs, common: Common) -> Result<(), String> {
    let layout = Layout::new(&args)?;
    let start_rev = current_revision(&common.endpoints).await?;
    let streams = if layout.watches() == 0 { 0 } else { args.streams.max(1).min(layout.watches() as usize) };
    let channels = connect_streams(&common.endpoints, streams).await?;
    let shared = Arc::new(Shared { layout, epoch: Instant::now(), received: AtomicU64::new(0) });
    let phase_timeout = Duration::from_secs(args.phase_timeout_s);

    pause(args.pause, "before creating the watches").await?;
    let (phase_tx, phase_rx) = watch::channel(Phase::Run);
    let (milestones, mut milestones_rx) = mpsc::unbounded_channel();
    let mut tracker = Tracker::new(streams);
    let create_started = Instant::now();
    let tasks = start_streams(&shared, channels, &phase_rx, &milestones);
    let created_at = tracker.wait(&mut milestones_rx, create_started + phase_timeout, |t| t.created.as_slice()).await;
    let create_elapsed = created_at.saturating_duration_since(create_started);
    pause(args.pause, "after creating the watches").await?;

    let puts = put_phase(&common, layout, args.val_size, shared.epoch).await?;
    let expected: u64 = puts.acks.iter().map(|a| layout.events_of(a.key.into())).sum();
    // Events that arrive later, while the watches are being canceled, still count as delivered.
    let drained = drain(&shared, expected, Duration::from_secs(args.drain_timeout_s)).await;

    let _ = phase_tx.send(Phase::Cancel);
    let cancel_started = Instant::now();
    let canceled_at = tracker.wait(&mut milestones_rx, cancel_started + phase_timeout, |t| t.canceled.as_slice()).await;
    let cancel_elapsed = canceled_at.saturating_duration_since(cancel_started);
    let _ = phase_tx.send(Phase::Stop);
    let mut logs = Vec::new();
    for t in tasks {
        logs.push(t.await.map_err(|e| format!("a watch stream task failed: {e}"))?);
    }

    let delivery = analyze(&layout, start_rev, &puts.acks, &logs);
    let report = Report {
        args: &args,
        common: &common,
        layout,
        streams,
        start_rev,
        create: PhaseTiming { done: logs.iter().map(|l| l.created).sum(), elapsed: create_elapsed },
        cancel: PhaseTiming { done: logs.iter().map(|l| l.canceled).sum(), elapsed: cancel_elapsed },
        puts,
        delivery,
        drained,
        logs,
    };
    if common.json {
        println!("{}", report.to_json());
    } else {
        println!("{}", report.to_text());
    }
    match report.failures() {
        failures if failures.is_empty() => Ok(()),
        failures => Err(format!("watch delivery failed: {}", failures.join(", "))),
    }
}

/// Everything the report shows.
struct Report<'a> {
    args: &'a WatchArgs,
    common: &'a Common,
    layout: Layout,
    streams: usize,
    start_rev: i64,
    create: PhaseTiming,
    cancel: PhaseTiming,
    puts: Puts,
    delivery: Delivery,
    /// Whether every expected event had arrived within --drain-timeout-s of the last put.
    drained: bool,
    logs: Vec<StreamLog>,
}

impl Report<'_> {
    fn sum(&self, field: fn(&StreamLog) -> u64) -> u64 {
        self.logs.iter().map(field).sum()
    }

    fn missing(&self) -> u64 {
        self.delivery.expected.saturating_sub(self.delivery.delivered)
    }

    /// Events that reached a watch they do not belong to.
    fn wrong_watch(&self) -> u64 {
        self.delivery.misdirected + self.sum(|l| l.wrong_key) + self.sum(|l| l.unknown_watch)
    }

    fn stream_errors(&self) -> Vec<String> {
        self.logs.iter().enumerate().filter_map(|(i, l)| l.error.as_ref().map(|e| format!("stream {i}: {e}"))).collect()
    }

    /// The correctness failures, as phrases; empty if none.
    fn failures(&self) -> Vec<String> {
        let watches = self.layout.watches();
        // Missing after a timeout may mean late rather than lost: the report says which.
        let missing = if self.drained {
            "events missing"
        } else {
            "events missing (still missing when the drain timed out and the watches were canceled)"
        };
        let counts = [
            (self.missing(), missing),
            (self.delivery.duplicates, "duplicate events"),
            (self.sum(|l| l.out_of_order), "events out of order"),
            (self.wrong_watch(), "events on the wrong watch"),
            (watches - self.create.done.min(watches), "watches not created"),
            (self.sum(|l| l.canceled_early), "watches canceled by the server"),
            (self.create.done - self.cancel.done.min(self.create.done), "watches not canceled"),
        ];
        counts.iter().filter(|(n, _)| *n > 0).map(|(n, what)| format!("{n} {what}")).collect()
    }

    /// The fields the other workloads report, for the puts.
    fn put_json(&self) -> Value {
        let (rec, secs) = (&self.puts.recorder, self.puts.elapsed.as_secs_f64().max(1e-9));
        json!({
            "successes": rec.successes(),
            "errors": rec.error_count(),
            "error_codes": rec.errors,
            "elapsed_s": secs,
            "throughput": rec.successes() as f64 / secs,
            "latency_ms": latency_json(&rec.ops[0]),
        })
    }

    fn to_json(&self) -> Value {
        let watches = self.layout.watches();
        let d = &self.delivery;
        json!({
            "workload": "watch",
            "params": {
                "endpoints": self.common.endpoints,
                "conns": self.common.conns,
                "clients": self.common.clients,
                "total": self.common.total,
                "watchers": self.layout.singles,
                "prefix_watchers": self.layout.prefixes,
                "streams": self.streams,
                "key_space": self.layout.key_space,
                "val_size": self.args.val_size,
                "drain_timeout_s": self.args.drain_timeout_s,
            },
            "start_revision": self.start_rev,
            "create": {
                "watches": watches,
                "created": self.create.done,
                "failed": self.sum(|l| l.create_failed),
                "canceled_by_server": self.sum(|l| l.canceled_early),
                "elapsed_s": self.create.elapsed.as_secs_f64(),
                "us_per_watch": self.create.us_per_watch(watches),
            },
            "puts": self.put_json(),
            "events": {
                "expected": d.expected,
                "delivered": d.delivered,
                "missing": self.missing(),
                "drain_timed_out": !self.drained,
                "duplicates": d.duplicates,
                "out_of_order": self.sum(|l| l.out_of_order),
                "wrong_watch": self.wrong_watch(),
                "unmatched": d.unmatched,
                "lag_ms": latency_json(&d.lag),
                "tail_ms": d.tail.map(|t| t.as_secs_f64() * 1e3),
            },
            "cancel": {
                "watches": self.create.done,
                "canceled": self.cancel.done,
                "elapsed_s": self.cancel.elapsed.as_secs_f64(),
                "us_per_watch": self.cancel.us_per_watch(self.create.done),
            },
            "stream_errors": self.stream_errors(),
            "failures": self.failures(),
            "ok": self.failures().is_empty(),
        })
    }

    fn to_text(&self) -> String {
        let (l, d, rec) = (&self.layout, &self.delivery, &self.puts.recorder);
        let us = |p: &PhaseTiming, n| p.us_per_watch(n).map_or("-".into(), |u| format!("{u:.1}"));
        let secs = self.puts.elapsed.as_secs_f64().max(1e-9);
        let mut out = format!(
            "watch: {} single-key + {} prefix watches over {} streams; {} puts of {} B to {} keys, {} clients \
             over {} connections to {} endpoints\n",
            l.singles,
            l.prefixes,
            self.streams,
            self.common.total,
            self.args.val_size,
            l.key_space,
            self.common.clients,
            self.common.conns,
            self.common.endpoints.len()
        );
        out += &format!(
            "  create         {} of {} watches in {:.3} s ({} µs/watch)\n",
            self.create.done,
            l.watches(),
            self.create.elapsed.as_secs_f64(),
            us(&self.create, l.watches())
        );
        out += &format!(
            "  puts           {:.1} req/s  ({} ok in {:.3} s)\n",
            rec.successes() as f64 / secs,
            rec.successes(),
            secs
        );
        out += &format!("  put latency ms {}\n", latency_line(&rec.ops[0]));
        out += &format!("  put errors     {}\n", rec.error_count());
        out += &format!(
            "  events         {} expected, {} delivered, {} missing, {} duplicates, {} out of order, {} on the \
             wrong watch ({} of unacknowledged puts){}\n",
            d.expected,
            d.delivered,
            self.missing(),
            d.duplicates,
            self.sum(|l| l.out_of_order),
            self.wrong_watch(),
            d.unmatched,
            if self.drained {
                String::new()
            } else {
                format!("; the drain timed out after {} s", self.args.drain_timeout_s)
            }
        );
        out += &format!("  lag ms         {}\n", latency_line(&d.lag));
        out += &format!(
            "  tail ms        {}\n",
            d.tail
                .map_or("-".into(), |t| format!("{:.3} (last put acknowledged to last event)", t.as_secs_f64() * 1e3))
        );
        out += &format!(
            "  cancel         {} of {} watches in {:.3} s ({} µs/watch)",
            self.cancel.done,
            self.create.done,
            self.cancel.elapsed.as_secs_f64(),
            us(&self.cancel, self.create.done)
        );
        for e in self.stream_errors() {
            out += &format!("\n  {e}");
        }
        let failures = self.failures();
        out += &format!("\n  correctness    {}", if failures.is_empty() { "ok".into() } else { failures.join(", ") });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(singles: u64, prefixes: u64, key_space: u64) -> Layout {
        Layout { singles, prefixes, key_space }
    }

    #[test]
    fn every_put_is_watched_by_its_key_watcher_and_one_prefix_watcher() {
        let l = layout(5, 3, 8);
        for key in 0..l.key_space {
            let (p, k) = parse_key(&l.put_key(key)).expect("a workload key");
            let watchers: Vec<u64> = (0..l.watches()).filter(|&w| l.watched_by(w, p, k)).collect();
            let expected: Vec<u64> = (key < 5).then_some(key).into_iter().chain([5 + key % 3]).collect();
            assert_eq!(watchers, expected, "key {key}");
            assert_eq!(l.events_of(key), expected.len() as u64);
        }
    }

    #[test]
    fn prefix_ranges_cover_their_keys_only() {
        let l = layout(0, 12, 100);
        let c = l.create_request(3);
        assert_eq!((c.key.as_slice(), c.range_end.as_slice()), (&b"wb/0003/"[..], &b"wb/00030"[..]));
        for key in 0..l.key_space {
            let k = l.put_key(key);
            assert_eq!(k >= c.key && k < c.range_end, key % 12 == 3, "{}", String::from_utf8_lossy(&k));
        }
        assert_eq!(layout(1, 0, 1).put_key(7), b"wb/0000/00000007");
        assert_eq!(parse_key(b"wb/0003/x"), None);
    }

    #[test]
    fn analysis_counts_missing_duplicate_and_unmatched_events() {
        let l = layout(2, 1, 2);
        // Revisions 11 (key 0) and 12 (key 1), acknowledged at 1 ms and 2 ms.
        let acks = [Ack { rev: 11, key: 0, at_ns: 1_000_000 }, Ack { rev: 12, key: 1, at_ns: 2_000_000 }];
        let seen = |rev, watcher, at_ns| Seen { rev, watcher, at_ns };
        let log = StreamLog {
            events: vec![
                seen(11, 0, 1_500_000),
                seen(11, 2, 900_000),
                seen(11, 2, 3_000_000),
                seen(12, 2, 5_000_000),
                seen(12, 0, 5_000_000),
                seen(13, 2, 5_000_000),
            ],
            ..Default::default()
        };
        let d = analyze(&l, 10, &acks, &[log]);
        assert_eq!((d.expected, d.delivered, d.duplicates, d.misdirected, d.unmatched), (4, 3, 1, 1, 1));
        assert_eq!(d.tail, Some(Duration::from_millis(3)));
        assert!(d.lag.equivalent(d.lag.max(), 3_000), "max lag {} µs", d.lag.max());
    }
}
