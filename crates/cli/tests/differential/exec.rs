//! Running one op against a system, normalising the answer, and comparing two answers.
//!
//! Normalisation (everything else is compared exactly, with `==` on the protobuf messages):
//! * every response header, nested ones included, loses `cluster_id`, `member_id`, `raft_term`;
//! * lease ids in Tally's answers are mapped to etcd's (server-chosen ids differ; client-chosen
//!   ones are the same on both), and Tally's requests get Tally's ids;
//! * `LeaseTimeToLive.keys` is sorted (etcd answers in Go map order);
//! * a remaining lease TTL counts as equal within `TTL_TOLERANCE` seconds (granted TTLs are exact);
//! * watch streams are compared per watch id as the flattened list of events plus every
//!   non-event response (created/canceled/compact revision/cancel reason with its header
//!   revision); how events are batched into responses is timing, not semantics.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tally_proto::etcdserverpb::compare::TargetUnion;
use tally_proto::etcdserverpb::kv_client::KvClient;
use tally_proto::etcdserverpb::lease_client::LeaseClient;
use tally_proto::etcdserverpb::request_op::Request;
use tally_proto::etcdserverpb::response_op::Response;
use tally_proto::etcdserverpb::watch_client::WatchClient;
use tally_proto::etcdserverpb::watch_request::RequestUnion;
use tally_proto::etcdserverpb::*;
use tally_proto::mvccpb::{Event, KeyValue};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::gen::Op;
use super::procs::channel;

/// Remaining lease TTLs are timing-dependent: equal within this many seconds.
pub const TTL_TOLERANCE: i64 = 2;
/// How long a watch stream of etcd must be silent before its events count as complete. Short:
/// the harness already waited for etcd to sync watchers on past revisions (`WATCH_SYNC`), so
/// every event is sent as its write is acknowledged.
const WATCH_QUIET: Duration = Duration::from_millis(60);
/// How long Tally gets to deliver as many watch items as etcd did.
const WATCH_CATCH_UP: Duration = Duration::from_secs(3);
/// How long a progress request may take to be answered. etcd answers at once or never (when a
/// watcher of the stream is unsynced or starts after the current revision).
const PROGRESS_WAIT: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, PartialEq)]
pub enum Resp {
    Put(PutResponse),
    Range(RangeResponse),
    Delete(DeleteRangeResponse),
    Txn(TxnResponse),
    Compact(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    LeaseTtl(LeaseTimeToLiveResponse),
    /// The `created` response of a new watch.
    Watch(WatchResponse),
    /// The answer to a progress request (watch id -1), if one came within `PROGRESS_WAIT`.
    Progress(Option<WatchResponse>),
}

/// A response, or a gRPC error as (code, message).
pub type Outcome = Result<Resp, (tonic::Code, String)>;

/// One item of a watch stream after flattening.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchItem {
    Event(Event),
    Control { header_revision: i64, created: bool, canceled: bool, compact_revision: i64, cancel_reason: String },
}

struct WatchConn {
    tx: mpsc::Sender<WatchRequest>,
    rx: tonic::Streaming<WatchResponse>,
    /// Responses received but not yet consumed (the created response of the watch being
    /// created is taken out of here).
    got: Vec<WatchResponse>,
}

pub struct System {
    kv: KvClient<Channel>,
    lease: LeaseClient<Channel>,
    watch: WatchClient<Channel>,
    conn: Option<WatchConn>,
    /// For Tally: etcd lease id -> Tally's, and back (only server-chosen ids are in here).
    to_sys: HashMap<i64, i64>,
    to_etcd: HashMap<i64, i64>,
}

impl System {
    pub fn new(url: &str) -> System {
        let ch = channel(url);
        System {
            kv: KvClient::new(ch.clone()),
            lease: LeaseClient::new(ch.clone()),
            watch: WatchClient::new(ch),
            conn: None,
            to_sys: HashMap::new(),
            to_etcd: HashMap::new(),
        }
    }

    /// Forgets the watch stream of a previous seed (closing it).
    pub fn reset_watches(&mut self) {
        self.conn = None;
    }

    /// Records that etcd's server-chosen lease `etcd_id` is this system's `id`.
    pub fn map_lease(&mut self, etcd_id: i64, id: i64) {
        self.to_sys.insert(etcd_id, id);
        self.to_etcd.insert(id, etcd_id);
    }

    fn lease_to_sys(&self, id: i64) -> i64 {
        *self.to_sys.get(&id).unwrap_or(&id)
    }

    fn lease_to_etcd(&self, id: i64) -> i64 {
        *self.to_etcd.get(&id).unwrap_or(&id)
    }

    /// Sends `op` (given with etcd's lease ids) and returns the normalised answer.
    pub async fn run(&mut self, op: &Op) -> Outcome {
        let op = self.translate(op);
        let status = |s: tonic::Status| (s.code(), s.message().to_string());
        let mut out = match op {
            Op::Put(r) => self.kv.put(r).await.map(|r| Resp::Put(r.into_inner())).map_err(status),
            Op::Range(r) => self.kv.range(r).await.map(|r| Resp::Range(r.into_inner())).map_err(status),
            Op::Delete(r) => self.kv.delete_range(r).await.map(|r| Resp::Delete(r.into_inner())).map_err(status),
            Op::Txn(r) => self.kv.txn(r).await.map(|r| Resp::Txn(r.into_inner())).map_err(status),
            Op::Compact(r) => self.kv.compact(r).await.map(|r| Resp::Compact(r.into_inner())).map_err(status),
            Op::LeaseGrant(r) => {
                self.lease.lease_grant(r).await.map(|r| Resp::LeaseGrant(r.into_inner())).map_err(status)
            }
            Op::LeaseRevoke(r) => {
                self.lease.lease_revoke(r).await.map(|r| Resp::LeaseRevoke(r.into_inner())).map_err(status)
            }
            Op::LeaseTtl(r) => {
                self.lease.lease_time_to_live(r).await.map(|r| Resp::LeaseTtl(r.into_inner())).map_err(status)
            }
            Op::Watch(r) => self.create_watch(r).await,
            Op::Progress => self.request_progress().await,
        };
        if let Ok(resp) = &mut out {
            self.normalize(resp);
        }
        out
    }

    fn translate(&self, op: &Op) -> Op {
        let mut op = op.clone();
        match &mut op {
            Op::Put(r) => r.lease = self.lease_to_sys(r.lease),
            Op::Txn(t) => self.translate_txn(t),
            Op::LeaseRevoke(r) => r.id = self.lease_to_sys(r.id),
            Op::LeaseTtl(r) => r.id = self.lease_to_sys(r.id),
            _ => {}
        }
        op
    }

    fn translate_txn(&self, t: &mut TxnRequest) {
        for c in &mut t.compare {
            if let Some(TargetUnion::Lease(id)) = &mut c.target_union {
                *id = self.lease_to_sys(*id);
            }
        }
        for op in t.success.iter_mut().chain(t.failure.iter_mut()) {
            match &mut op.request {
                Some(Request::RequestPut(p)) => p.lease = self.lease_to_sys(p.lease),
                Some(Request::RequestTxn(t)) => self.translate_txn(t),
                _ => {}
            }
        }
    }

    fn normalize(&self, resp: &mut Resp) {
        match resp {
            Resp::Put(r) => {
                header(&mut r.header);
                self.kv_opt(&mut r.prev_kv);
            }
            Resp::Range(r) => self.range(r),
            Resp::Delete(r) => self.delete(r),
            Resp::Txn(r) => self.txn(r),
            Resp::Compact(r) => header(&mut r.header),
            Resp::LeaseGrant(r) => {
                header(&mut r.header);
                r.id = self.lease_to_etcd(r.id);
            }
            Resp::LeaseRevoke(r) => header(&mut r.header),
            Resp::LeaseTtl(r) => {
                header(&mut r.header);
                r.id = self.lease_to_etcd(r.id);
                r.keys.sort();
            }
            Resp::Watch(r) => self.watch_resp(r),
            Resp::Progress(r) => {
                if let Some(r) = r {
                    self.watch_resp(r)
                }
            }
        }
    }

    fn kv(&self, kv: &mut KeyValue) {
        kv.lease = self.lease_to_etcd(kv.lease);
    }

    fn kv_opt(&self, kv: &mut Option<KeyValue>) {
        if let Some(kv) = kv {
            self.kv(kv);
        }
    }

    fn range(&self, r: &mut RangeResponse) {
        header(&mut r.header);
        r.kvs.iter_mut().for_each(|kv| self.kv(kv));
    }

    fn delete(&self, r: &mut DeleteRangeResponse) {
        header(&mut r.header);
        r.prev_kvs.iter_mut().for_each(|kv| self.kv(kv));
    }

    fn txn(&self, r: &mut TxnResponse) {
        header(&mut r.header);
        for op in &mut r.responses {
            match &mut op.response {
                Some(Response::ResponseRange(r)) => self.range(r),
                Some(Response::ResponsePut(r)) => {
                    header(&mut r.header);
                    self.kv_opt(&mut r.prev_kv);
                }
                Some(Response::ResponseDeleteRange(r)) => self.delete(r),
                Some(Response::ResponseTxn(r)) => self.txn(r),
                None => {}
            }
        }
    }

    fn watch_resp(&self, r: &mut WatchResponse) {
        header(&mut r.header);
        for e in &mut r.events {
            self.kv_opt(&mut e.kv);
            self.kv_opt(&mut e.prev_kv);
        }
    }

    /// Creates a watch on this seed's stream (opened on first use) and returns its `created`
    /// response (or the first response for it, whatever it is).
    async fn create_watch(&mut self, req: WatchCreateRequest) -> Outcome {
        let msg = WatchRequest { request_union: Some(RequestUnion::CreateRequest(req)) };
        if let Some(conn) = self.conn.as_mut() {
            conn.tx.send(msg).await.map_err(|_| (tonic::Code::Unavailable, "watch stream closed".to_string()))?;
        } else {
            let (tx, rx) = mpsc::channel(16);
            // Queue the request before the call: a Go server sends its response headers only
            // with its first message.
            tx.send(msg).await.expect("watch request queue");
            let rx = match self.watch.watch(ReceiverStream::new(rx)).await {
                Ok(s) => s.into_inner(),
                Err(s) => return Err((s.code(), s.message().to_string())),
            };
            self.conn = Some(WatchConn { tx, rx, got: Vec::new() });
        }
        let conn = self.conn.as_mut().expect("conn");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(i) = conn.got.iter().position(|r| r.created) {
                return Ok(Resp::Watch(conn.got.remove(i)));
            }
            match tokio::time::timeout_at(deadline, conn.rx.message()).await {
                Ok(Ok(Some(r))) => conn.got.push(r),
                Ok(Ok(None)) => return Err((tonic::Code::Unavailable, "watch stream ended".into())),
                Ok(Err(s)) => return Err((s.code(), s.message().to_string())),
                Err(_) => return Err((tonic::Code::DeadlineExceeded, "no created response within 10s".into())),
            }
        }
    }

    /// Asks for progress on this seed's watch stream and returns the answer (watch id -1) if it
    /// comes within `PROGRESS_WAIT`; other responses meanwhile are kept for `drain_watches`.
    async fn request_progress(&mut self) -> Outcome {
        let closed = || (tonic::Code::Unavailable, "watch stream closed".to_string());
        let conn = self.conn.as_mut().ok_or_else(closed)?;
        let msg = WatchRequest { request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})) };
        conn.tx.send(msg).await.map_err(|_| closed())?;
        let deadline = tokio::time::Instant::now() + PROGRESS_WAIT;
        loop {
            match tokio::time::timeout_at(deadline, conn.rx.message()).await {
                Ok(Ok(Some(r))) if r.watch_id == -1 && !r.created => return Ok(Resp::Progress(Some(r))),
                Ok(Ok(Some(r))) => conn.got.push(r),
                Ok(Ok(None)) => return Err((tonic::Code::Unavailable, "watch stream ended".into())),
                Ok(Err(s)) => return Err((s.code(), s.message().to_string())),
                Err(_) => return Ok(Resp::Progress(None)),
            }
        }
    }

    /// Reads this seed's watch stream: until it has been silent for `WATCH_QUIET` (etcd), or
    /// until it holds at least `expect` items plus a short grace (Tally). Closes the stream.
    pub async fn drain_watches(&mut self, expect: Option<usize>) -> BTreeMap<i64, Vec<WatchItem>> {
        let Some(mut conn) = self.conn.take() else { return BTreeMap::new() };
        let count = |got: &[WatchResponse]| got.iter().map(|r| r.events.len().max(1)).sum::<usize>();
        let start = tokio::time::Instant::now();
        loop {
            let wait = match expect {
                None => WATCH_QUIET,
                Some(n) if count(&conn.got) >= n => Duration::from_millis(30),
                Some(_) => (start + WATCH_CATCH_UP).saturating_duration_since(tokio::time::Instant::now()),
            };
            if start.elapsed() > Duration::from_secs(10) {
                break;
            }
            match tokio::time::timeout(wait, conn.rx.message()).await {
                Ok(Ok(Some(r))) => conn.got.push(r),
                _ => break,
            }
        }
        let mut out: BTreeMap<i64, Vec<WatchItem>> = BTreeMap::new();
        let got = std::mem::take(&mut conn.got);
        for mut r in got {
            self.watch_resp(&mut r);
            let items = out.entry(r.watch_id).or_default();
            if r.events.is_empty() || r.created || r.canceled || r.compact_revision != 0 {
                items.push(WatchItem::Control {
                    header_revision: r.header.as_ref().map(|h| h.revision).unwrap_or(0),
                    created: r.created,
                    canceled: r.canceled,
                    compact_revision: r.compact_revision,
                    cancel_reason: r.cancel_reason.clone(),
                });
            }
            items.extend(r.events.into_iter().map(WatchItem::Event));
        }
        out
    }
}

pub fn item_count(w: &BTreeMap<i64, Vec<WatchItem>>) -> usize {
    w.values().map(Vec::len).sum()
}

fn header(h: &mut Option<ResponseHeader>) {
    if let Some(h) = h {
        h.cluster_id = 0;
        h.member_id = 0;
        h.raft_term = 0;
    }
}

/// Compares two outcomes; `None` if they agree.
pub fn differs(etcd: &Outcome, tally: &Outcome) -> bool {
    match (etcd, tally) {
        (Ok(Resp::LeaseTtl(e)), Ok(Resp::LeaseTtl(t))) => {
            let mut t = t.clone();
            if (e.ttl - t.ttl).abs() <= TTL_TOLERANCE && (e.ttl >= 0) == (t.ttl >= 0) {
                t.ttl = e.ttl;
            }
            *e != t
        }
        _ => etcd != tally,
    }
}

/// The lines of `{:#?}` that differ, for a readable failure message.
pub fn diff<T: std::fmt::Debug>(etcd: &T, tally: &T) -> String {
    let e = pretty(etcd);
    let t = pretty(tally);
    let el: Vec<&str> = e.lines().collect();
    let tl: Vec<&str> = t.lines().collect();
    let mut out = String::new();
    for i in 0..el.len().max(tl.len()) {
        let (a, b) = (el.get(i).copied().unwrap_or(""), tl.get(i).copied().unwrap_or(""));
        if a != b {
            out.push_str(&format!("  line {i}: etcd: {}\n           tally: {}\n", a.trim(), b.trim()));
            if out.len() > 2000 {
                break;
            }
        }
    }
    out
}

/// `{:#?}` with byte arrays (keys, values) shown as byte strings: `key: b"s000002/k/3"`.
pub fn pretty<T: std::fmt::Debug>(x: &T) -> String {
    let text = format!("{x:#?}");
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some(head) = line.strip_suffix('[') {
            let mut bytes = Vec::new();
            let mut j = i + 1;
            while j < lines.len() {
                match lines[j].trim().trim_end_matches(',').parse::<u8>() {
                    Ok(b) => bytes.push(b),
                    Err(_) => break,
                }
                j += 1;
            }
            let close = lines.get(j).map(|l| l.trim());
            if !bytes.is_empty() && matches!(close, Some("]") | Some("],")) {
                let comma = if close == Some("],") { "," } else { "" };
                let s: String = bytes.iter().flat_map(|&b| std::ascii::escape_default(b)).map(char::from).collect();
                out.push_str(&format!("{head}b\"{s}\"{comma}\n"));
                i = j + 1;
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
        i += 1;
    }
    out
}
