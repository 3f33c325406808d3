//! The log written while the node goes on. With an engine that allows it (Raft), a Ready's
//! entries and hard state go to the host's writer, and the node takes its next inputs while
//! they are written: a leader hears acknowledgements and new proposals during its own fsync,
//! instead of after it (its driver spent ~70% of its time in fsync under 64 writing sessions).
//! The writer takes every write queued by the time it starts and makes them durable with one
//! fsync. A write's persisted messages (votes, acknowledgements) leave only once it is durable;
//! writes complete in the order they were handed over, so every earlier one is durable too.
//!
//! A Ready that installs a snapshot or applies a membership change is written in place, after
//! every write before it completed (as etcd waits), and so is a snapshot's adoption, which
//! compacts the log.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tally_raft::{Entry, HardState, Index, Term};
use tally_storage::fs::FileSystem;

use crate::engine::PeerMessage;
use crate::observe::Observation;
use crate::persist::Disk;

/// The node's disk, written by the host's writer and, between writes, by the node.
pub(crate) type SharedDisk<F> = Arc<Mutex<Disk<F>>>;

/// One Ready's part for the disk, and the messages that wait for it.
pub struct LogWrite<F: FileSystem> {
    pub(crate) disk: SharedDisk<F>,
    pub(crate) hard_state: Option<HardState>,
    pub(crate) entries: Vec<Entry>,
    pub(crate) messages: Vec<PeerMessage>,
    /// What the live view is told as they leave.
    pub(crate) reports: Vec<Observation>,
    /// The planted bug `LazyVote`: leave this write's vote unwritten.
    pub(crate) lazy: bool,
}

/// A [`LogWrite`] done: what to report to the engine, and the messages now free to leave.
pub struct LogWritten {
    pub(crate) last_entry: Option<(Index, Term)>,
    pub(crate) messages: Vec<PeerMessage>,
    pub(crate) reports: Vec<Observation>,
    /// How long the shared write and fsync took, on the first write of a batch that wrote
    /// anything; or why the disk failed.
    pub(crate) outcome: Result<Option<Duration>, String>,
}

impl<F: FileSystem> LogWrite<F> {
    /// Writes `writes` (handed over in this order) with one fsync.
    pub fn run_all(writes: Vec<LogWrite<F>>) -> Vec<LogWritten> {
        let Some(first) = writes.first() else { return Vec::new() };
        let disk = first.disk.clone();
        let (mut hard_state, mut entries) = (None, Vec::new());
        for w in writes.iter().filter(|w| !w.lazy) {
            // A later write's entries replace the earlier ones from its first index on.
            if let Some(from) = w.entries.first().map(|e| e.index) {
                entries.retain(|e: &Entry| e.index < from);
                entries.extend(w.entries.iter().cloned());
            }
            hard_state = w.hard_state.or(hard_state);
        }
        let began = Instant::now();
        let result = disk.lock().expect("disk lock").write(hard_state, &entries);
        let result = result.map(|synced| synced.then(|| began.elapsed())).map_err(|e| e.to_string());
        let outcome = |i: usize| match &result {
            Ok(took) if i == 0 => Ok(*took),
            Ok(_) => Ok(None),
            Err(e) => Err(e.clone()),
        };
        writes
            .into_iter()
            .enumerate()
            .map(|(i, w)| LogWritten {
                last_entry: w.entries.last().map(|e| (e.index, e.term)),
                messages: w.messages,
                reports: w.reports,
                outcome: outcome(i),
            })
            .collect()
    }

    /// Writes this one alone.
    pub fn run(self) -> LogWritten {
        Self::run_all(vec![self]).pop().expect("one write")
    }
}
