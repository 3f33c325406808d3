//! Every watch delivers every event of its range once, in revision order, with no gap across a
//! reconnect from its last revision. A simulated watcher follows the watch hub's contract
//! with the node: while synced it takes the events its member publishes as entries apply;
//! when it (re)connects, or its member's state is replaced by a leader's snapshot, it catches
//! up from the member's history first (etcd's unsynced watchers). At the end, what it received
//! must be exactly the cluster's events of its range, except revisions a compaction took
//! before it could read them (etcd cancels such a watch with the compact revision, and the
//! client resumes there).

use std::collections::BTreeMap;

use tally_mvcc::{MvccError, StateMachine};
use tally_proto::mvccpb::Event;
use tally_proto::Message as _;
use tally_raft::NodeId;

use super::Violation;

/// The watched range: every key the KV clients write.
const KEY: &[u8] = b"k";
const RANGE_END: &[u8] = b"l";

fn watched(e: &Event) -> bool {
    e.kv.as_ref().is_some_and(|kv| kv.key.as_slice() >= KEY && kv.key.as_slice() < RANGE_END)
}

/// An event as compared: `prev_kv` left out (a catch-up omits it once compacted).
fn encoded(e: &Event) -> Vec<u8> {
    Event { prev_kv: None, ..e.clone() }.encode_to_vec()
}

pub struct Watcher {
    /// The member and process it is connected to.
    pub member: Option<(NodeId, u64)>,
    synced: bool,
    next_rev: i64,
    /// Per revision received: its events, encoded.
    received: BTreeMap<i64, Vec<Vec<u8>>>,
    duplicates: Vec<i64>,
    /// Revisions a compaction took before the watcher could read them.
    excused: Vec<(i64, i64)>,
    pub reconnects: u64,
}

impl Watcher {
    pub fn new() -> Self {
        Self {
            member: None,
            synced: false,
            next_rev: 1,
            received: BTreeMap::new(),
            duplicates: Vec::new(),
            excused: Vec::new(),
            reconnects: 0,
        }
    }

    /// Connects to `member` and catches up from its history.
    pub fn connect(&mut self, member: NodeId, incarnation: u64, sm: &StateMachine) {
        self.reconnects += u64::from(self.member.is_some());
        self.member = Some((member, incarnation));
        self.catch_up(sm);
    }

    /// The member's state was replaced by a snapshot: catch up from its history again.
    pub fn restored(&mut self, member: NodeId, incarnation: u64, sm: &StateMachine) {
        if self.member == Some((member, incarnation)) {
            self.catch_up(sm);
        }
    }

    fn catch_up(&mut self, sm: &StateMachine) {
        let current = sm.store.revision();
        let events = match sm.store.events(KEY, RANGE_END, self.next_rev, current) {
            Ok(events) => events,
            Err(MvccError::Compacted) => {
                // etcd cancels the watch with the compact revision; the client resumes there.
                let compacted = sm.store.compact_revision();
                self.excused.push((self.next_rev, compacted - 1));
                self.next_rev = compacted;
                sm.store.events(KEY, RANGE_END, self.next_rev, current).expect("from the compact revision")
            }
            Err(e) => panic!("reading history: {e}"),
        };
        let mut by_revision: BTreeMap<i64, Vec<Event>> = BTreeMap::new();
        for e in events {
            let revision = e.kv.as_ref().map_or(0, |kv| kv.mod_revision);
            by_revision.entry(revision).or_default().push(e);
        }
        for (revision, events) in by_revision {
            self.take(revision, &events);
        }
        self.next_rev = self.next_rev.max(current + 1);
        self.synced = true;
    }

    /// Events `member` published as it applied them.
    pub fn published(&mut self, member: NodeId, incarnation: u64, batches: &[(i64, Vec<Event>)]) {
        if self.member != Some((member, incarnation)) || !self.synced {
            return;
        }
        for (revision, events) in batches {
            if *revision >= self.next_rev {
                let mine: Vec<Event> = events.iter().filter(|e| watched(e)).cloned().collect();
                if !mine.is_empty() {
                    self.take(*revision, &mine);
                }
                self.next_rev = revision + 1;
            }
        }
    }

    fn take(&mut self, revision: i64, events: &[Event]) {
        if self.received.insert(revision, events.iter().map(encoded).collect()).is_some() {
            self.duplicates.push(revision);
        }
    }

    /// Compares what was received with the cluster's events (`reference`: every revision's
    /// events as members published them).
    pub fn check(&self, reference: &BTreeMap<i64, (Vec<Event>, NodeId)>, now_us: u64, violations: &mut Vec<Violation>) {
        let mut fail = |detail: String| {
            violations.push(Violation { property: "watches deliver every event once", time_us: now_us, detail })
        };
        if let Some(rev) = self.duplicates.first() {
            return fail(format!("revision {rev} delivered twice"));
        }
        let excused = |rev: i64| self.excused.iter().any(|&(lo, hi)| lo <= rev && rev <= hi);
        for (&revision, (events, _)) in reference.range(..self.next_rev) {
            let want: Vec<Vec<u8>> = events.iter().filter(|e| watched(e)).map(encoded).collect();
            if want.is_empty() || excused(revision) {
                continue;
            }
            match self.received.get(&revision) {
                None => return fail(format!("revision {revision} never delivered (watcher at {})", self.next_rev)),
                Some(got) if *got != want => return fail(format!("revision {revision}: events differ")),
                Some(_) => {}
            }
        }
        if let Some((&revision, _)) = self.received.iter().find(|(r, _)| !reference.contains_key(r)) {
            fail(format!("revision {revision} delivered but no member published it"));
        }
    }
}

impl Default for Watcher {
    fn default() -> Self {
        Self::new()
    }
}
