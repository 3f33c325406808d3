//! Where applied events meet watchers. The driver publishes each applied revision's events;
//! a synced watcher receives them at once through its stream's bounded channel. A watcher
//! whose stream cannot keep up is marked unsynced instead of blocking the apply loop, and its
//! stream task catches it up from the store's history (etcd's "unsynced" watchers).
//!
//! An event finds its watchers through an index by key range (`index.rs`), so a write costs
//! the watchers it matches, not every registered one.
//!
//! Invariant: a watcher has received every matching event below its catch-up point and none at
//! or above it. An unsynced watcher's catch-up point is its `next_rev`; a synced watcher's is
//! the larger of its `next_rev` and the revision after the last one the dispatcher delivered,
//! because the dispatcher does not touch the watchers an event does not match.
//! Lock order: hub, then state machine; the driver never holds both.

mod index;
mod intervals;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tally_mvcc::StateMachine;
use tally_proto::etcdserverpb::{ResponseHeader, WatchResponse};
use tally_proto::mvccpb::event::EventType;
use tally_proto::mvccpb::Event;
use tokio::sync::{mpsc, Notify};
use tonic::Status;

use index::WatchIndex;

pub type Outbox = mpsc::Sender<Result<WatchResponse, Status>>;

/// One watch on one stream.
pub struct Watcher {
    pub watch_id: i64,
    /// The stream that owns the watch (`WatchHub::new_stream`); it catches the watch up.
    pub stream: u64,
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    pub no_put: bool,
    pub no_delete: bool,
    pub prev_kv: bool,
    /// The start revision the client asked for (0: none). As in etcd, a watcher that starts
    /// after the current revision holds back its stream's progress notifications.
    pub start_rev: i64,
    /// Sent timer progress notifications (`progress_notify`).
    pub progress_notify: bool,
    /// Events were sent since the last progress tick (etcd then skips that tick's notification).
    pub sent_events: bool,
    pub next_rev: i64,
    pub synced: bool,
    pub out: Outbox,
    /// Wakes the owning stream to catch unsynced watchers up.
    pub wake: Arc<Notify>,
}

impl Watcher {
    fn covers(&self, key: &[u8]) -> bool {
        match self.range_end.as_slice() {
            [] => key == self.key.as_slice(),
            [0] => key >= self.key.as_slice(),
            end => key >= self.key.as_slice() && key < end,
        }
    }

    /// Whether the filters (NOPUT, NODELETE) let `e` through.
    fn passes(&self, e: &Event) -> bool {
        let put = e.r#type == EventType::Put as i32;
        !(put && self.no_put || !put && self.no_delete)
    }

    /// `e` shaped as the watcher asked (prev_kv only on request).
    fn shape(&self, e: &Event) -> Event {
        let mut e = e.clone();
        if !self.prev_kv {
            e.prev_kv = None;
        }
        e
    }

    /// The events this watcher wants, shaped as it asked.
    pub fn select(&self, events: &[Event]) -> Vec<Event> {
        events
            .iter()
            .filter(|e| e.kv.as_ref().is_some_and(|kv| self.covers(&kv.key)) && self.passes(e))
            .map(|e| self.shape(e))
            .collect()
    }
}

/// Identity for response headers.
pub struct HeaderSource {
    pub cluster_id: u64,
    pub member_id: u64,
    pub term: Arc<AtomicU64>,
}

impl HeaderSource {
    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: self.term.load(Ordering::Relaxed),
        }
    }
}

/// Everything behind the hub lock.
#[derive(Default)]
struct Registry {
    watchers: HashMap<u64, Watcher>,
    index: WatchIndex,
    /// The last revision the dispatcher delivered to every watcher synced at the time.
    delivered: i64,
    /// Unsynced watchers as (stream, key), for each stream to find its own in order.
    behind: BTreeSet<(u64, u64)>,
}

impl Registry {
    /// Where `w` resumes if it catches up from history now (see the invariant above).
    fn catch_up_point(delivered: i64, w: &Watcher) -> i64 {
        if w.synced {
            w.next_rev.max(delivered + 1)
        } else {
            w.next_rev
        }
    }

    /// Hands watcher `key` to its stream to catch up from history.
    fn fall_behind(&mut self, key: u64) {
        let Some(w) = self.watchers.get_mut(&key) else { return };
        w.next_rev = Self::catch_up_point(self.delivered, w);
        w.synced = false;
        self.behind.insert((w.stream, key));
        w.wake.notify_one();
    }

    /// Every synced watcher to its stream, to catch up from history.
    fn all_fall_behind(&mut self) {
        let synced: Vec<u64> = self.watchers.iter().filter(|(_, w)| w.synced).map(|(&k, _)| k).collect();
        for key in synced {
            self.fall_behind(key);
        }
    }

    fn remove(&mut self, key: u64) -> Option<Watcher> {
        let w = self.watchers.remove(&key)?;
        self.index.remove(&w.key, &w.range_end, key);
        self.behind.remove(&(w.stream, key));
        Some(w)
    }
}

pub struct WatchHub {
    pub sm: Arc<RwLock<StateMachine>>,
    pub headers: HeaderSource,
    /// How often `progress_notify` watchers hear of the current revision when idle (etcd's
    /// `--experimental-watch-progress-notify-interval`).
    pub progress_interval: Duration,
    registry: Mutex<Registry>,
    /// Registered watchers, readable without the lock: with none, publishing skips the
    /// dispatcher (a thread wake-up per Ready).
    watcher_count: AtomicUsize,
    next_key: AtomicU64,
    next_stream: AtomicU64,
    /// Applied revisions on their way to the dispatcher thread, a Ready's worth at a time;
    /// `None`: delivered on the caller's thread (the simulator's hubs).
    dispatch: Option<std::sync::mpsc::Sender<Dispatch>>,
}

/// One step of catching a watcher up from history ([`WatchHub::catch_up_step`]).
#[derive(Debug)]
pub enum CatchUpStep {
    /// Synced (or gone): nothing more to do.
    Done,
    /// Send this to the watcher's client, then take the next step.
    Send(WatchResponse),
    /// Caught up, but its buffer is full: let the stream drain it, then step again.
    Yield,
}

/// Revisions read from history per catch-up step, so that no read holds the state machine's
/// lock (and the apply loop) for long (etcd reads `watchBatchMaxRevs`, 1000, at a time).
const CATCH_UP_REVISIONS: i64 = 1_000;

/// What the dispatcher thread hears from the apply loop, in apply order.
enum Dispatch {
    Applied(Vec<(i64, Vec<Event>)>),
    /// A leader's snapshot replaced the state: revisions were skipped without events.
    Restored,
}

impl WatchHub {
    pub fn new(sm: Arc<RwLock<StateMachine>>, headers: HeaderSource, progress_interval: Duration) -> Arc<Self> {
        let (dispatch, applied) = std::sync::mpsc::channel();
        let hub = Arc::new(Self::with_dispatch(sm, headers, progress_interval, Some(dispatch)));
        // Fan-out runs on its own thread so the apply loop never pays for it. One thread keeps
        // revisions in order; `next_rev` makes a late delivery of a revision a caught-up
        // watcher already has a no-op.
        let weak = Arc::downgrade(&hub);
        std::thread::Builder::new()
            .name("watch-dispatch".into())
            .spawn(move || {
                for dispatch in applied {
                    let Some(hub) = weak.upgrade() else { return };
                    match dispatch {
                        Dispatch::Applied(batch) => {
                            for (revision, events) in batch {
                                hub.deliver(revision, &events);
                            }
                        }
                        Dispatch::Restored => hub.lock().all_fall_behind(),
                    }
                }
            })
            .expect("spawn watch dispatcher");
        hub
    }

    /// A hub that delivers on the publishing thread: the simulator's, where everything happens
    /// on one thread in a replayable order.
    pub fn inline(sm: Arc<RwLock<StateMachine>>, headers: HeaderSource, progress_interval: Duration) -> Arc<Self> {
        Arc::new(Self::with_dispatch(sm, headers, progress_interval, None))
    }

    fn with_dispatch(
        sm: Arc<RwLock<StateMachine>>,
        headers: HeaderSource,
        progress_interval: Duration,
        dispatch: Option<std::sync::mpsc::Sender<Dispatch>>,
    ) -> Self {
        Self {
            sm,
            headers,
            progress_interval,
            registry: Mutex::new(Registry::default()),
            watcher_count: AtomicUsize::new(0),
            next_key: AtomicU64::new(1),
            next_stream: AtomicU64::new(1),
            dispatch,
        }
    }

    fn dispatch(&self, dispatch: Dispatch) {
        match (&self.dispatch, dispatch) {
            (Some(thread), dispatch) => {
                let _ = thread.send(dispatch);
            }
            (None, Dispatch::Applied(batch)) => {
                for (revision, events) in batch {
                    self.deliver(revision, &events);
                }
            }
            (None, Dispatch::Restored) => self.lock().all_fall_behind(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().expect("hub lock")
    }

    /// An id for a new stream of watchers (see `Watcher::stream`).
    pub fn new_stream(&self) -> u64 {
        self.next_stream.fetch_add(1, Ordering::Relaxed)
    }

    /// Called by the apply loop once per batch of applied entries: hands their revisions'
    /// events, in order, to the dispatcher (one wake-up per batch, not per revision).
    ///
    /// Dropping them when nobody watches is safe: `add` counts a watcher before it reads the
    /// current revision, and this runs after the revisions were applied, so a watcher the count
    /// missed read a revision at least as new and does not want them.
    pub fn publish(&self, revisions: Vec<(i64, Vec<Event>)>) {
        if !revisions.is_empty() && self.watcher_count.load(Ordering::SeqCst) > 0 {
            self.dispatch(Dispatch::Applied(revisions));
        }
    }

    /// Called by the apply loop when a leader's snapshot replaced the state machine: the
    /// revisions it skipped were never published, so every synced watcher catches up from the
    /// new state's history, from the revision after the last one it was given (etcd's
    /// watchableStore.Restore). One whose revisions were compacted away is canceled, as etcd
    /// cancels a watcher left behind a compaction. A watcher added meanwhile starts at the new
    /// state's revision and loses nothing either way.
    pub fn restored(&self) {
        if self.watcher_count.load(Ordering::SeqCst) > 0 {
            self.dispatch(Dispatch::Restored);
        }
    }

    /// Delivers the events of one applied revision to the synced watchers that want them.
    fn deliver(&self, revision: i64, events: &[Event]) {
        // (watcher, event) pairs; sorted, each watcher's events are together and in order.
        let mut matches: Vec<(u64, usize)> = Vec::new();
        let mut found = Vec::new();
        let mut reg = self.lock();
        for (i, event) in events.iter().enumerate() {
            let Some(kv) = &event.kv else { continue };
            found.clear();
            reg.index.watching(&kv.key, &mut found);
            matches.extend(found.iter().map(|&key| (key, i)));
        }
        matches.sort_unstable();
        let (mut full, mut closed) = (Vec::new(), Vec::new());
        for group in matches.chunk_by(|a, b| a.0 == b.0) {
            let key = group[0].0;
            let Some(w) = reg.watchers.get_mut(&key) else { continue };
            if !w.synced || w.next_rev > revision {
                continue;
            }
            let selected: Vec<Event> =
                group.iter().map(|&(_, i)| &events[i]).filter(|e| w.passes(e)).map(|e| w.shape(e)).collect();
            if selected.is_empty() {
                continue;
            }
            let resp = WatchResponse {
                header: Some(self.headers.header(revision)),
                watch_id: w.watch_id,
                events: selected,
                ..Default::default()
            };
            match w.out.try_send(Ok(resp)) {
                Ok(()) => {
                    w.next_rev = revision + 1;
                    w.sent_events = true;
                }
                Err(mpsc::error::TrySendError::Full(_)) => full.push(key),
                Err(mpsc::error::TrySendError::Closed(_)) => closed.push(key),
            }
        }
        // Revisions before this one are all delivered: a watcher that missed this one resumes here.
        reg.delivered = revision - 1;
        for key in full {
            reg.fall_behind(key);
        }
        reg.delivered = revision;
        for key in closed {
            if reg.remove(key).is_some() {
                self.watcher_count.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Registers a watcher; it is synced if it starts at or after the next revision.
    pub fn add(&self, mut w: Watcher) -> u64 {
        let mut reg = self.lock();
        self.watcher_count.fetch_add(1, Ordering::SeqCst);
        let current = self.sm.read().expect("sm lock").store.revision();
        if w.next_rev <= 0 {
            w.next_rev = current + 1;
        }
        w.synced = w.next_rev > current;
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        reg.index.insert(&w.key, &w.range_end, key);
        if !w.synced {
            reg.behind.insert((w.stream, key));
        }
        reg.watchers.insert(key, w);
        key
    }

    pub fn remove(&self, key: u64) -> Option<Watcher> {
        let removed = self.lock().remove(key);
        if removed.is_some() {
            self.watcher_count.fetch_sub(1, Ordering::SeqCst);
        }
        removed
    }

    /// Up to `limit` unsynced watchers of `stream`, for it to catch up from history.
    pub fn behind(&self, stream: u64, limit: usize) -> Vec<u64> {
        self.lock().behind.range((stream, 0)..(stream + 1, 0)).take(limit).map(|&(_, key)| key).collect()
    }

    /// What a catch-up needs to know: (range, filters, next_rev) of an unsynced watcher.
    pub fn with_watcher<T>(&self, key: u64, f: impl FnOnce(&mut Watcher) -> T) -> Option<T> {
        self.lock().watchers.get_mut(&key).map(f)
    }

    /// One step of catching watcher `key` up from history: reads the next window of revisions
    /// (without the hub lock, so the apply loop never waits on a catch-up) and returns what to
    /// send; once the window reaches the current revision, marks it synced. `Err(Compacted)`:
    /// its revisions are gone; the stream cancels it ([`WatchHub::cancel_compacted`]).
    pub fn catch_up_step(&self, key: u64) -> Result<CatchUpStep, tally_mvcc::MvccError> {
        loop {
            let Some(state) =
                self.with_watcher(key, |w| (w.synced, w.next_rev, w.key.clone(), w.range_end.clone(), w.watch_id))
            else {
                return Ok(CatchUpStep::Done);
            };
            let (synced, next_rev, k, end, watch_id) = state;
            if synced {
                return Ok(CatchUpStep::Done);
            }
            let (events, current, upto) = {
                let sm = self.sm.read().expect("sm lock");
                let current = sm.store.revision();
                let upto = current.min(next_rev.saturating_add(CATCH_UP_REVISIONS - 1));
                (sm.store.events(&k, &end, next_rev, upto)?, current, upto)
            };
            let selected = self
                .with_watcher(key, |w| {
                    w.next_rev = w.next_rev.max(upto + 1);
                    let selected = w.select(&events);
                    w.sent_events |= !selected.is_empty();
                    selected
                })
                .unwrap_or_default();
            if !selected.is_empty() {
                let header = Some(self.headers.header(current));
                return Ok(CatchUpStep::Send(WatchResponse {
                    header,
                    watch_id,
                    events: selected,
                    ..Default::default()
                }));
            }
            if upto < current {
                continue;
            }
            return Ok(if self.try_sync(key)? { CatchUpStep::Done } else { CatchUpStep::Yield });
        }
    }

    /// Removes a watcher whose catch-up found its revisions compacted, and returns etcd's
    /// cancellation for it: the compact revision, from which the client may watch again.
    pub fn cancel_compacted(&self, key: u64) -> Option<WatchResponse> {
        let watch_id = self.remove(key)?.watch_id;
        let compact_revision = self.sm.read().expect("sm lock").store.compact_revision();
        Some(WatchResponse {
            header: Some(self.headers.header(0)),
            watch_id,
            compact_revision,
            canceled: true,
            ..Default::default()
        })
    }

    /// Final step of a catch-up: under the hub lock, deliver whatever was applied since and
    /// mark the watcher synced. Returns false if the stream's buffer is full (stay unsynced).
    pub fn try_sync(&self, key: u64) -> Result<bool, tally_mvcc::MvccError> {
        let mut reg = self.lock();
        let reg = &mut *reg;
        let Some(w) = reg.watchers.get_mut(&key) else { return Ok(true) };
        let sm = self.sm.read().expect("sm lock");
        let current = sm.store.revision();
        if !self.send_up_to(w, &sm, current)? {
            return Ok(false);
        }
        w.synced = true;
        reg.behind.remove(&(w.stream, key));
        Ok(true)
    }

    /// Sends `w` the events it has not had up to `current` (the dispatcher may not have got
    /// there yet; it skips what a watcher already has). False if the stream's buffer is full.
    fn send_up_to(&self, w: &mut Watcher, sm: &StateMachine, current: i64) -> Result<bool, tally_mvcc::MvccError> {
        if w.next_rev > current {
            return Ok(true);
        }
        let events = w.select(&sm.store.events(&w.key, &w.range_end, w.next_rev, current)?);
        if !events.is_empty() {
            let resp = WatchResponse {
                header: Some(self.headers.header(current)),
                watch_id: w.watch_id,
                events,
                ..Default::default()
            };
            if w.out.try_send(Ok(resp)).is_err() {
                return Ok(false);
            }
            w.sent_events = true;
        }
        w.next_rev = current + 1;
        Ok(true)
    }

    /// etcd's `progressIfSync`: if every watcher in `keys` (one stream's) is synced and none
    /// starts after the current revision, sends one progress notification, an empty response
    /// with `watch_id` at the current revision, after the events up to that revision. Returns
    /// whether it was sent; with no watchers nothing is sent, as in etcd.
    pub fn progress(&self, keys: &[u64], watch_id: i64) -> bool {
        let mut reg = self.lock();
        let sm = self.sm.read().expect("sm lock");
        let current = sm.store.revision();
        let all_synced = keys.iter().all(|k| reg.watchers.get(k).is_some_and(|w| w.synced && w.start_rev <= current));
        if keys.is_empty() || !all_synced {
            return false;
        }
        let mut out = None;
        for &key in keys {
            let delivered = reg.delivered;
            let w = reg.watchers.get_mut(&key).expect("checked above");
            w.next_rev = Registry::catch_up_point(delivered, w);
            match self.send_up_to(w, &sm, current) {
                Ok(true) => out = Some(w.out.clone()),
                // A full buffer: the watcher is behind after all (the dispatcher would mark it so).
                Ok(false) | Err(_) => {
                    reg.fall_behind(key);
                    return false;
                }
            }
        }
        let resp = WatchResponse { header: Some(self.headers.header(current)), watch_id, ..Default::default() };
        out.is_some_and(|out| out.try_send(Ok(resp)).is_ok())
    }

    /// A timer tick for the `progress_notify` watchers of one stream (etcd's `sendLoop` ticker):
    /// each that was sent no events since the previous tick gets a progress notification under
    /// its own watch id, if it is synced.
    pub fn progress_tick(&self, keys: &[u64]) {
        let mut due = Vec::new();
        {
            let mut reg = self.lock();
            for key in keys {
                if let Some(w) = reg.watchers.get_mut(key).filter(|w| w.progress_notify) {
                    if !std::mem::take(&mut w.sent_events) {
                        due.push((*key, w.watch_id));
                    }
                }
            }
        }
        for (key, id) in due {
            self.progress(&[key], id);
        }
    }
}

#[cfg(test)]
mod tests;
