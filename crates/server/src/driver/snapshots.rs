//! A member's own snapshots. Every `snapshot_count` applied entries the driver copies the
//! state machine (cheap: key histories are shared) and a background thread encodes and syncs
//! it, seconds for a large store, while the driver goes on; once the file is durable the driver
//! adopts it (WAL marker, log compaction, `Raft::compact`), unless the leader's newer snapshot
//! was installed meanwhile. One snapshot at a time.

use std::time::Instant;

use bytes::Bytes;
use tally_mvcc::StateMachine;
use tally_proto::Message as _;
use tally_raft::{Snapshot, SnapshotMeta};

use super::{fatal, Driver};
use crate::members::Members;

impl Driver {
    /// Starts a snapshot once `snapshot_count` entries were applied since the last one.
    pub(super) fn maybe_snapshot(&mut self) {
        let applied = self.raft.applied();
        if self.snapshot_in_flight.is_some() || applied < self.snapshot_index + self.snapshot_count {
            return;
        }
        let Some(term) = self.raft.log_term(applied) else { return };
        let meta = SnapshotMeta { index: applied, term, conf: self.raft.conf_state().clone() };
        let began = Instant::now();
        let members = self.members.read().expect("members lock").clone();
        let sm = self.sm.read().expect("sm lock").clone();
        let copied = began.elapsed();
        let files = self.disk.snapshot_writer();
        let (done, written) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new().name("snapshot".into()).spawn(move || {
            let snapshot = Snapshot { meta, data: encode_snapshot(&members, &sm) };
            drop(sm);
            let result = files.write(&snapshot);
            if result.is_ok() {
                tracing::info!(
                    index = snapshot.meta.index,
                    bytes = snapshot.data.len(),
                    "snapshot written: state copied in {copied:?} on the driver thread, encoded and synced in {:?}",
                    began.elapsed() - copied
                );
            }
            let _ = done.send(result.map(|()| snapshot).map_err(|e| e.to_string()));
        });
        if let Err(e) = spawned {
            fatal("starting the snapshot thread", e);
        }
        self.snapshot_in_flight = Some(written);
    }

    /// Adopts the background snapshot once it is durable.
    pub(super) fn adopt_written_snapshot(&mut self) {
        let Some(written) = &self.snapshot_in_flight else { return };
        let snapshot = match written.try_recv() {
            Err(std::sync::mpsc::TryRecvError::Empty) => return,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => fatal("saving a snapshot", "the snapshot thread died"),
            Ok(Err(e)) => fatal("saving a snapshot", e),
            Ok(Ok(snapshot)) => snapshot,
        };
        self.snapshot_in_flight = None;
        match self.disk.adopt_snapshot(&snapshot) {
            Err(e) => fatal("saving a snapshot", e),
            // The leader's newer snapshot was installed meanwhile.
            Ok(false) => {}
            Ok(true) => {
                self.snapshot_index = self.snapshot_index.max(snapshot.meta.index);
                self.raft.compact(snapshot);
            }
        }
    }
}

/// A node's snapshot: the member table and the state machine.
pub(super) fn encode_snapshot(members: &Members, sm: &StateMachine) -> Bytes {
    let snapshot =
        tally_proto::tally_v1::NodeSnapshot { members: Some(members.to_table()), state: sm.snapshot().into() };
    Bytes::from(snapshot.encode_to_vec())
}

/// Decoding from `Bytes` lets the state field share the snapshot's buffer; decoding from a
/// slice would copy it, one more snapshot-sized allocation while installing.
pub(super) fn decode_snapshot(data: &Bytes) -> Result<(Members, StateMachine), String> {
    let snapshot =
        tally_proto::tally_v1::NodeSnapshot::decode(data.clone()).map_err(|e| format!("bad snapshot: {e}"))?;
    let sm = StateMachine::restore(&snapshot.state).map_err(|e| format!("bad state machine snapshot: {e:?}"))?;
    Ok((Members::from_table(snapshot.members.unwrap_or_default()), sm))
}
