//! The node's disk: the core's Ready made durable in the write-ahead log, and what a restart
//! recovers from it. A brand-new member of a new cluster writes its bootstrap state (the
//! initial membership as entry 1) before the core ever starts, so it is never lost.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use tally_consensus::Ready;
use tally_raft::{Entry, EntryKind, HardState, NodeId, Persisted, Snapshot, SnapshotMeta};
use tally_storage::fs::{FileSystem, RealFs};
use tally_storage::{LogEntry, Wal, WalOptions, WriteBatch};

use crate::codec;

/// The log over any file system: the real one in a server, a simulated one that loses
/// unsynced writes in the simulator.
pub struct Disk<F: FileSystem = RealFs> {
    wal: Wal<F>,
}

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{0}")]
    Storage(#[from] tally_storage::Error),
    #[error("snapshot at index {index} has an unreadable membership record")]
    BadConfState { index: u64 },
    #[error(
        "data directory {dir} is empty and --initial-cluster-state is existing: this member must be \
         added to the cluster first (etcdctl member add), then started with the cluster's \
         --initial-cluster"
    )]
    NothingToJoin { dir: String },
}

/// How a member with an empty data directory starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitialState {
    /// Founding member of a new cluster of these voters.
    New,
    /// Joining an existing cluster: start empty and learn everything from the leader.
    Existing,
}

fn to_log_entry(e: &Entry) -> LogEntry {
    let kind = match e.kind {
        EntryKind::Normal => 0,
        EntryKind::ConfChange => 1,
    };
    LogEntry { index: e.index, term: e.term, kind, data: e.data.clone() }
}

fn from_log_entry(e: LogEntry) -> Entry {
    let kind = if e.kind == 1 { EntryKind::ConfChange } else { EntryKind::Normal };
    Entry { index: e.index, term: e.term, kind, data: e.data }
}

fn to_hard_state(hs: HardState) -> tally_storage::HardState {
    tally_storage::HardState { term: hs.term, vote: hs.vote, commit: hs.commit }
}

impl Disk {
    /// Opens the data directory and returns what the core starts from.
    /// `members` is the founding member table, carried by the bootstrap entry.
    pub fn open(
        dir: &Path,
        initial: InitialState,
        voters: &[NodeId],
        members: Bytes,
    ) -> Result<(Self, Persisted), DiskError> {
        Self::open_with(RealFs, dir, WalOptions::default(), initial, voters, members)
    }

    /// Writes a fresh data directory that starts from `persisted`'s snapshot and hard state
    /// (a member restored from a backup); a later `open` recovers exactly that.
    pub fn restore(dir: &Path, persisted: &Persisted) -> Result<(), DiskError> {
        let (wal, _) = Wal::open(dir, WalOptions::default())?;
        let mut disk = Self { wal };
        disk.save_snapshot(&persisted.snapshot)?;
        let batch = WriteBatch { hard_state: Some(to_hard_state(persisted.hard_state)), entries: &[] };
        disk.wal.append(&batch)?;
        Ok(())
    }
}

impl<F: FileSystem> Disk<F> {
    /// [`Disk::open`] over the file system `fs`.
    pub fn open_with(
        fs: F,
        dir: &Path,
        opts: WalOptions,
        initial: InitialState,
        voters: &[NodeId],
        members: Bytes,
    ) -> Result<(Self, Persisted), DiskError> {
        let (wal, recovered) = Wal::open_with(fs, dir, opts)?;
        if let Some(torn) = &recovered.torn_tail {
            tracing::warn!("cut a torn record off the write-ahead log: {torn:?}");
        }
        let mut disk = Self { wal };
        let fresh = recovered.hard_state == tally_storage::HardState::default()
            && recovered.entries.is_empty()
            && recovered.snapshot_meta.is_none();
        if fresh {
            return match initial {
                InitialState::New => {
                    let persisted = Persisted::bootstrap_with_context(voters.iter().copied(), members);
                    let entries: Vec<LogEntry> = persisted.entries.iter().map(to_log_entry).collect();
                    let batch = WriteBatch { hard_state: Some(to_hard_state(persisted.hard_state)), entries: &entries };
                    disk.wal.append(&batch)?;
                    Ok((disk, persisted))
                }
                InitialState::Existing => Ok((disk, Persisted::default())),
            };
        }
        let snapshot = match disk.wal.load_snapshot()? {
            Some(s) => {
                let conf = codec::decode_conf_state(&s.meta.conf_state)
                    .ok_or(DiskError::BadConfState { index: s.meta.index })?;
                Snapshot {
                    meta: SnapshotMeta { index: s.meta.index, term: s.meta.term, conf },
                    data: Bytes::from(s.data),
                }
            }
            None => Snapshot::default(),
        };
        let after_snapshot = snapshot.meta.index;
        let entries = recovered.entries.into_iter().filter(|e| e.index > after_snapshot).map(from_log_entry).collect();
        let hs = recovered.hard_state;
        let hard_state = HardState { term: hs.term, vote: hs.vote, commit: hs.commit.max(after_snapshot) };
        Ok((disk, Persisted { hard_state, snapshot, entries }))
    }

    /// Makes a Ready's snapshot, entries and hard state durable (one fsync for entries and
    /// hard state together). A hard state that moved only its commit index is not written on
    /// its own (etcd's `MustSync`): the commit index is where replay stops on restart, not a
    /// promise to anyone, and one lost in a crash is learned again from the leader. Writing it
    /// cost an fsync between learning of a commit and applying it, on every member.
    /// Returns whether the log was written and synced.
    pub fn persist<M>(&mut self, ready: &Ready<M>) -> Result<bool, DiskError> {
        if let Some(snapshot) = &ready.snapshot {
            self.save_snapshot(snapshot)?;
        }
        let on_disk = self.wal.hard_state();
        let must_write = !ready.entries.is_empty()
            || ready.hard_state.is_some_and(|hs| (hs.term, hs.vote) != (on_disk.term, on_disk.vote));
        if !must_write {
            return Ok(false);
        }
        let entries: Vec<LogEntry> = ready.entries.iter().map(to_log_entry).collect();
        let batch = WriteBatch { hard_state: ready.hard_state.map(to_hard_state), entries: &entries };
        self.wal.append(&batch)?;
        Ok(true)
    }

    /// Stores a snapshot durably and releases the log it covers.
    pub fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), DiskError> {
        let meta = storage_meta(&snapshot.meta);
        self.wal.save_snapshot(&meta, &snapshot.data)?;
        self.wal.compact(snapshot.meta.index)?;
        Ok(())
    }

    /// Writes snapshot files from another thread; see [`Disk::adopt_snapshot`].
    pub fn snapshot_writer(&self) -> SnapshotFiles<F> {
        SnapshotFiles { writer: self.wal.snapshot_writer() }
    }

    /// Makes a snapshot written by a [`SnapshotFiles`] the current one and releases the log it
    /// covers, unless a newer snapshot (the leader's) was installed meanwhile. Either way,
    /// files may be left for [`SnapshotFiles::remove`]: a snapshot's, released segments
    /// (see `Wal::adopt_snapshot` and `Wal::compact_retiring`).
    pub fn adopt_snapshot(&mut self, snapshot: &Snapshot) -> Result<Adopted, DiskError> {
        let adoption = self.wal.adopt_snapshot(&storage_meta(&snapshot.meta))?;
        let mut retired: Vec<PathBuf> = adoption.retired.into_iter().collect();
        if adoption.adopted {
            retired.extend(self.wal.compact_retiring(snapshot.meta.index)?);
        }
        Ok(Adopted { adopted: adoption.adopted, retired })
    }
}

/// What [`Disk::adopt_snapshot`] did.
pub struct Adopted {
    /// False if a newer snapshot was installed meanwhile.
    pub adopted: bool,
    /// Files no longer needed, to delete with [`SnapshotFiles::remove`].
    pub retired: Vec<PathBuf>,
}

/// Writes a node's own snapshots off the driver thread.
pub struct SnapshotFiles<F: FileSystem = RealFs> {
    writer: tally_storage::SnapshotWriter<F>,
}

impl<F: FileSystem> SnapshotFiles<F> {
    /// Writes the snapshot of `meta` and `data` durably; returns its data as the file holds
    /// it, mapped, so that `data`'s memory can be used again.
    pub fn write(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<Bytes, DiskError> {
        Ok(self.writer.write(&storage_meta(meta), data)?)
    }

    /// Deletes a file [`Disk::adopt_snapshot`] left behind.
    pub fn remove(&self, retired: &Path) -> Result<(), DiskError> {
        Ok(self.writer.remove(retired)?)
    }
}

fn storage_meta(meta: &SnapshotMeta) -> tally_storage::SnapshotMeta {
    tally_storage::SnapshotMeta { index: meta.index, term: meta.term, conf_state: codec::encode_conf_state(&meta.conf) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> (Disk, Persisted) {
        Disk::open(dir, InitialState::New, &[1, 2, 3], Bytes::new()).unwrap()
    }

    fn hard_state(term: u64, vote: NodeId, commit: u64) -> Option<HardState> {
        Some(HardState { term, vote, commit })
    }

    #[test]
    fn a_commit_alone_is_not_written_but_rides_with_the_next_entries_or_vote() {
        let dir = tempfile::tempdir().unwrap();
        let (mut disk, boot) = open(dir.path());
        let term = boot.hard_state.term;
        let entry = |index| Entry { term, index, kind: EntryKind::Normal, data: Bytes::from_static(b"x") };
        let ready: Ready<()> =
            Ready { hard_state: hard_state(term, 0, 1), entries: vec![entry(2)], ..Default::default() };
        disk.persist(&ready).unwrap();
        disk.persist(&Ready::<()> { hard_state: hard_state(term, 0, 2), ..Default::default() }).unwrap();
        drop(disk);
        let (mut disk, recovered) = open(dir.path());
        assert_eq!(recovered.hard_state, HardState { term, vote: 0, commit: 1 }, "commit-only change written");
        assert_eq!(recovered.entries.last().map(|e| e.index), Some(2));

        let ready: Ready<()> =
            Ready { hard_state: hard_state(term, 0, 2), entries: vec![entry(3)], ..Default::default() };
        disk.persist(&ready).unwrap();
        drop(disk);
        let (mut disk, recovered) = open(dir.path());
        assert_eq!(recovered.hard_state.commit, 2, "the commit index rides with the next entries");

        disk.persist(&Ready::<()> { hard_state: hard_state(term + 1, 3, 2), ..Default::default() }).unwrap();
        drop(disk);
        let (_, recovered) = open(dir.path());
        assert_eq!(recovered.hard_state, HardState { term: term + 1, vote: 3, commit: 2 }, "a vote is written");
    }
}
