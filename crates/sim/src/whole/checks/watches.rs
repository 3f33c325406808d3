//! Every watch delivers every event of its range once, in revision order, with no gap across a
//! reconnect from its last revision. Watchers are registered with the members' production
//! watch hubs and caught up from history by the hub's own steps, as a watch stream does; when
//! their member dies they reconnect to another from the revision after the last event they got
//! (etcd's client does the same). At the end, what each received must be exactly the cluster's
//! events of its range, except revisions a compaction took before the watcher could read them
//! (the hub then cancels the watch with the compact revision, and the client resumes there).

use std::collections::BTreeMap;
use std::sync::Arc;

use tally_mvcc::MvccError;
use tally_proto::etcdserverpb::WatchResponse;
use tally_proto::mvccpb::Event;
use tally_proto::Message as _;
use tally_raft::NodeId;
use tally_server::node::watch_hub::{CatchUpStep, WatchHub, Watcher as HubWatcher};
use tokio::sync::{mpsc, Notify};

use super::Violation;

/// The watched range: every key the KV clients write.
const KEY: &[u8] = b"k";
const RANGE_END: &[u8] = b"l";
/// A small buffer, so watchers fall behind and catch up from history now and then.
const BUFFER: usize = 4;

fn watched(e: &Event) -> bool {
    e.kv.as_ref().is_some_and(|kv| kv.key.as_slice() >= KEY && kv.key.as_slice() < RANGE_END)
}

/// An event as compared: `prev_kv` left out (a catch-up omits it once compacted).
fn encoded(e: &Event) -> Vec<u8> {
    Event { prev_kv: None, ..e.clone() }.encode_to_vec()
}

/// A watch registered with one member's hub.
struct Connection {
    member: NodeId,
    incarnation: u64,
    hub: Arc<WatchHub>,
    key: u64,
    stream: u64,
    rx: mpsc::Receiver<Result<WatchResponse, tonic::Status>>,
}

pub struct Watch {
    connection: Option<Connection>,
    /// Where the watch resumes on its next connection.
    resume_rev: i64,
    /// Per revision received: its events, encoded.
    received: BTreeMap<i64, Vec<Vec<u8>>>,
    duplicates: Vec<i64>,
    /// Revisions a compaction took before the watcher could read them.
    excused: Vec<(i64, i64)>,
    pub connects: u64,
    pub canceled: u64,
}

impl Default for Watch {
    fn default() -> Self {
        Self::new()
    }
}

impl Watch {
    pub fn new() -> Self {
        Self {
            connection: None,
            resume_rev: 1,
            received: BTreeMap::new(),
            duplicates: Vec::new(),
            excused: Vec::new(),
            connects: 0,
            canceled: 0,
        }
    }

    pub fn member(&self) -> Option<(NodeId, u64)> {
        self.connection.as_ref().map(|c| (c.member, c.incarnation))
    }

    pub fn disconnect(&mut self) {
        if let Some(c) = self.connection.take() {
            c.hub.remove(c.key);
        }
    }

    /// Registers the watch with `member`'s hub from its resume revision, and catches it up.
    pub fn connect(&mut self, member: NodeId, incarnation: u64, hub: Arc<WatchHub>) {
        self.disconnect();
        self.connects += 1;
        let (out, rx) = mpsc::channel(BUFFER);
        let stream = hub.new_stream();
        let watcher = HubWatcher {
            watch_id: 1,
            stream,
            key: KEY.to_vec(),
            range_end: RANGE_END.to_vec(),
            no_put: false,
            no_delete: false,
            prev_kv: true,
            start_rev: self.resume_rev,
            progress_notify: false,
            sent_events: false,
            next_rev: self.resume_rev,
            synced: false,
            out,
            wake: Arc::new(Notify::new()),
        };
        let key = hub.add(watcher);
        self.connection = Some(Connection { member, incarnation, hub, key, stream, rx });
        self.pump();
    }

    /// What the watch stream does between requests: takes what the hub sent and catches
    /// unsynced watchers up from history, until the watch is synced and its buffer empty.
    pub fn pump(&mut self) {
        for _ in 0..10_000 {
            self.drain();
            let Some(c) = &self.connection else { return };
            if c.hub.behind(c.stream, 1).is_empty() {
                return;
            }
            let (hub, key) = (c.hub.clone(), c.key);
            match hub.catch_up_step(key) {
                Ok(CatchUpStep::Send(resp)) => self.take(resp),
                Ok(CatchUpStep::Done | CatchUpStep::Yield) => {}
                Err(MvccError::Compacted) => {
                    let resp = hub.cancel_compacted(key).expect("the watcher is registered");
                    self.take(resp);
                }
                Err(e) => panic!("catching a watcher up: {e}"),
            }
        }
        panic!("a watcher's catch-up never ends");
    }

    fn drain(&mut self) {
        while let Some(Ok(resp)) = self.connection.as_mut().and_then(|c| c.rx.try_recv().ok()) {
            self.take(resp);
        }
    }

    fn take(&mut self, resp: WatchResponse) {
        if resp.canceled {
            // etcd's client resumes a compacted watch at the compact revision.
            self.canceled += 1;
            self.excused.push((self.resume_rev, resp.compact_revision - 1));
            self.resume_rev = resp.compact_revision;
            let c = self.connection.take().expect("connected");
            return self.connect(c.member, c.incarnation, c.hub);
        }
        let mut by_revision: BTreeMap<i64, Vec<Vec<u8>>> = BTreeMap::new();
        for e in &resp.events {
            let revision = e.kv.as_ref().map_or(0, |kv| kv.mod_revision);
            by_revision.entry(revision).or_default().push(encoded(e));
        }
        for (revision, events) in by_revision {
            if self.received.insert(revision, events).is_some() || revision < self.resume_rev {
                self.duplicates.push(revision);
            }
            self.resume_rev = self.resume_rev.max(revision + 1);
        }
    }

    /// The revision below which the watch must have every event: the current revision of its
    /// member's state if it is synced there, else where it would resume.
    fn complete_below(&self) -> i64 {
        match &self.connection {
            Some(c) if c.hub.behind(c.stream, 1).is_empty() => c.hub.sm.read().expect("sm lock").store.revision() + 1,
            _ => self.resume_rev,
        }
    }

    /// Compares what was received with the cluster's events (`reference`: every revision's
    /// events as members published them).
    pub fn check(&self, reference: &BTreeMap<i64, (Vec<Event>, NodeId)>, now_us: u64, violations: &mut Vec<Violation>) {
        let mut fail = |detail: String| {
            violations.push(Violation { property: "watches deliver every event once", time_us: now_us, detail })
        };
        if let Some(rev) = self.duplicates.first() {
            return fail(format!("revision {rev} delivered twice, or after a later one"));
        }
        let excused = |rev: i64| self.excused.iter().any(|&(lo, hi)| lo <= rev && rev <= hi);
        let below = self.complete_below();
        for (&revision, (events, _)) in reference.range(..below) {
            let want: Vec<Vec<u8>> = events.iter().filter(|e| watched(e)).map(encoded).collect();
            if want.is_empty() || excused(revision) {
                continue;
            }
            match self.received.get(&revision) {
                None => return fail(format!("revision {revision} never delivered (complete below {below})")),
                Some(got) if *got != want => return fail(format!("revision {revision}: events differ")),
                Some(_) => {}
            }
        }
        if let Some((&revision, _)) = self.received.iter().find(|(r, _)| !reference.contains_key(r)) {
            fail(format!("revision {revision} delivered but no member published it"));
        }
    }
}
