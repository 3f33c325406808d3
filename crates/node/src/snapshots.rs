//! A member's own snapshots. When one is due (`snapshot_schedule.rs`) the driver copies the
//! state machine and a background thread encodes and syncs it, seconds for a large store, while
//! the driver goes on; once the file is durable the driver adopts it (WAL marker, log
//! compaction, `Raft::compact`), unless the leader's newer snapshot was installed meanwhile.
//! One snapshot at a time. The copy is cheap: the state machine's maps are shared with it shard
//! by shard, the writes that follow copy only what they change (tally-mvcc's `sharded`), and
//! the key order is not copied at all (`SnapshotCopy` sorts the keys while encoding).
//!
//! The encoding goes into the same memory each time (`SpareBuffer`), and the snapshot kept
//! for followers is its file, mapped: fresh memory for a store-sized snapshot, in the process
//! and in the page cache, cost more CPU than encoding it (seconds of both cores for 794 MB).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tally_consensus::{Compacted, Consensus};
use tally_mvcc::{SnapshotCopy, StateMachine};
use tally_proto::Message as _;
use tally_raft::{Snapshot, SnapshotMeta};
use tally_storage::fs::FileSystem;

use crate::members::Members;
use crate::persist::SnapshotFiles;
use crate::{Host, Node, Shared};

/// A snapshot to encode and make durable off the node's thread.
pub struct SnapshotJob<F: FileSystem> {
    meta: SnapshotMeta,
    members: Members,
    state: SnapshotCopy,
    files: SnapshotFiles<F>,
    shared: Arc<Shared>,
    /// How long copying the state took on the node's thread, for the log line.
    copied: Duration,
    /// Bytes to allocate up front, a little more than the snapshot can take: a buffer grown
    /// as it fills is copied whole into fresh memory each time (on a growing ZooKeeper tree
    /// that copy and its page faults took a tenth of the machine's CPU). Pages reserved and
    /// never written cost nothing.
    capacity: usize,
    buffer: SpareBuffer,
}

/// The memory the last snapshot was encoded into, for the next one. Kept rather than freed:
/// it holds what the snapshot kept in memory until then, now mapped from its file instead.
#[derive(Clone, Default)]
pub(crate) struct SpareBuffer(Arc<Mutex<Vec<u8>>>);

impl SpareBuffer {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().expect("spare buffer lock"))
    }

    fn keep(&self, mut buffer: Vec<u8>) {
        buffer.clear();
        *self.0.lock().expect("spare buffer lock") = buffer;
    }
}

impl<F: FileSystem> SnapshotJob<F> {
    /// Encodes and syncs the snapshot; hand the result to [`Node::snapshot_written`].
    pub fn run(self) -> Result<Snapshot, String> {
        let began = Instant::now();
        let mut buf = self.buffer.take();
        if buf.capacity() < self.capacity {
            // Dropped first: growing it would copy the whole old allocation for nothing.
            buf = Vec::new();
            buf.reserve_exact(self.capacity);
        }
        let encoded = encode_snapshot_into(buf, &self.members, &self.state);
        drop(self.state);
        let writing = Instant::now();
        let written = self.files.write(&self.meta, &encoded);
        self.buffer.keep(encoded);
        let snapshot = Snapshot { meta: self.meta, data: written.map_err(|e| e.to_string())? };
        let metrics = &self.shared.metrics;
        metrics.snapshot_save.observe(writing.elapsed());
        metrics.snapshot_bytes.fetch_add(snapshot.data.len() as u64, Ordering::Relaxed);
        tracing::info!(
            index = snapshot.meta.index,
            bytes = snapshot.data.len(),
            "snapshot written: state copied in {:?} on the node's thread, encoded and synced in {:?}",
            self.copied,
            began.elapsed()
        );
        Ok(snapshot)
    }
}

impl<H: Host> Node<H> {
    /// Starts a snapshot once this member's next snapshot point is applied.
    pub(crate) fn maybe_snapshot(&mut self) {
        let applied = self.engine.applied();
        if self.snapshot_in_flight {
            return;
        }
        let members = self.engine.conf_state().members();
        let rank = members.iter().position(|&id| id == self.engine.id()).unwrap_or(0) as u64;
        if !self.snapshots.due(applied, rank, members.len() as u64) {
            return;
        }
        let Some(term) = self.engine.log_term(applied) else { return };
        let meta = SnapshotMeta { index: applied, term, conf: self.engine.conf_state().clone() };
        let began = Instant::now();
        let members = self.members.read().expect("members lock").clone();
        let state = self.sm.read().expect("sm lock").copy_for_snapshot();
        let files = self.disk.snapshot_writer();
        let capacity = self.snapshots.next_bytes_estimate() as usize / 16 * 17;
        let shared = self.shared.clone();
        let buffer = self.snapshot_buffer.clone();
        let job = SnapshotJob { meta, members, state, files, shared, copied: began.elapsed(), capacity, buffer };
        self.snapshot_in_flight = true;
        self.snapshots.started();
        self.host.write_snapshot(job);
    }

    /// The host wrote the snapshot of a [`SnapshotJob`]: adopt it (WAL marker, log compaction,
    /// `Raft::compact`) unless the leader's newer snapshot was installed meanwhile.
    pub fn snapshot_written(&mut self, written: Result<Snapshot, String>) {
        self.snapshot_in_flight = false;
        let snapshot = match written {
            Ok(snapshot) => snapshot,
            Err(e) => self.host.fatal("saving a snapshot", &e),
        };
        let adoption = match self.disk.adopt_snapshot(&snapshot) {
            Ok(adoption) => adoption,
            Err(e) => self.host.fatal("saving a snapshot", &e),
        };
        let files = self.disk.snapshot_writer();
        let mut retired = Retired { paths: adoption.retired, compacted: Compacted::default(), files };
        if adoption.adopted {
            self.snapshots.taken(snapshot.meta.index, snapshot.data.len() as u64);
            let (index, term) = (snapshot.meta.index, snapshot.meta.term);
            self.observe(crate::observe::Observation::Snapshot { taken: true, index, term });
            retired.compacted = self.engine.compact(snapshot);
        }
        self.host.release(retired);
    }
}

/// What a newer snapshot left behind: the previous snapshot's file and bytes, the log
/// entries it covers and the WAL segments beyond the spares. Released off the node's thread:
/// for a 325 MB state, unlinking the files and freeing the rest took the leader's driver
/// 100-300 ms, long enough for its followers to elect another leader after its snapshots.
pub struct Retired<F: FileSystem> {
    paths: Vec<std::path::PathBuf>,
    compacted: Compacted,
    files: SnapshotFiles<F>,
}

impl<F: FileSystem> Retired<F> {
    /// Deletes the files and frees the rest (here, unless a transfer still holds the bytes).
    /// A file that cannot be deleted is only logged: recovery deletes it on the next start.
    pub fn release(self) {
        drop(self.compacted);
        for path in &self.paths {
            if let Err(e) = self.files.remove(path) {
                tracing::warn!("could not delete a file a snapshot retired: {e}");
            }
        }
    }
}

/// A node's snapshot: the member table and the state machine, as a `NodeSnapshot` message.
/// Its framing is written by hand around the state machine's encoding, so the store-sized
/// bytes are written once instead of encoded and then copied into the message. The state's
/// length goes in a varint padded to a fixed width, which protobuf decoders accept.
pub fn encode_snapshot(members: &Members, sm: &SnapshotCopy) -> Bytes {
    Bytes::from(encode_snapshot_into(Vec::new(), members, sm))
}

fn encode_snapshot_into(mut buf: Vec<u8>, members: &Members, sm: &SnapshotCopy) -> Vec<u8> {
    use prost::encoding::{encode_key, message, WireType};
    message::encode(1, &members.to_table(), &mut buf);
    encode_key(2, WireType::LengthDelimited, &mut buf);
    let len_at = buf.len();
    buf.extend_from_slice(&[0; PADDED_VARINT_LEN]);
    sm.snapshot_into(&mut buf);
    let state_len = buf.len() - len_at - PADDED_VARINT_LEN;
    buf[len_at..len_at + PADDED_VARINT_LEN].copy_from_slice(&padded_varint(state_len as u64));
    buf
}

/// Up to 32 GiB, in 7-bit groups, each but the last with its continuation bit set.
const PADDED_VARINT_LEN: usize = 5;

fn padded_varint(mut v: u64) -> [u8; PADDED_VARINT_LEN] {
    assert!(v < 1 << (7 * PADDED_VARINT_LEN), "a snapshot of {v} bytes is too large");
    let mut out = [0u8; PADDED_VARINT_LEN];
    for (i, byte) in out.iter_mut().enumerate() {
        let more = if i + 1 < PADDED_VARINT_LEN { 0x80 } else { 0 };
        *byte = (v & 0x7f) as u8 | more;
        v >>= 7;
    }
    out
}

/// Decoding from `Bytes` lets the state field share the snapshot's buffer; decoding from a
/// slice would copy it, one more snapshot-sized allocation while installing.
pub(crate) fn decode_snapshot(data: &Bytes) -> Result<(Members, StateMachine), String> {
    let snapshot =
        tally_proto::tally_v1::NodeSnapshot::decode(data.clone()).map_err(|e| format!("bad snapshot: {e}"))?;
    let sm = StateMachine::restore(&snapshot.state).map_err(|e| format!("bad state machine snapshot: {e:?}"))?;
    Ok((Members::from_table(snapshot.members.unwrap_or_default()), sm))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_proto::etcdserverpb::PutRequest;
    use tally_proto::tally_v1::{command::Op, Command, NodeSnapshot};

    #[test]
    fn snapshot_framed_by_hand_decodes_like_the_message() {
        let mut sm = StateMachine::default();
        for i in 1..=300u64 {
            let put = PutRequest { key: format!("k{i}").into_bytes(), value: vec![7; 100], ..Default::default() };
            sm.apply(i, &Command { client_id: i, seq: 1, op: Some(Op::Put(put)), ..Default::default() });
        }
        let members = Members::from_table(tally_proto::tally_v1::MemberTable {
            members: vec![tally_proto::tally_v1::MemberInfo {
                id: 7,
                name: "seven".into(),
                peer_urls: vec!["http://127.0.0.1:2380".into()],
                ..Default::default()
            }],
            removed: vec![3],
        });
        let data = encode_snapshot(&members, &sm.copy_for_snapshot());
        let decoded = NodeSnapshot::decode(data.clone()).unwrap();
        assert_eq!(decoded.members, Some(members.to_table()));
        assert_eq!(decoded.state, sm.snapshot());
        let (_, restored) = decode_snapshot(&data).unwrap();
        assert_eq!(restored, sm);
    }

    #[test]
    fn padded_varints_decode_to_their_value() {
        for v in [0u64, 1, 127, 128, 300, 1 << 20, (1 << 35) - 1] {
            let bytes = padded_varint(v);
            assert_eq!(prost::encoding::decode_varint(&mut &bytes[..]).unwrap(), v);
        }
    }

    #[test]
    fn each_snapshot_is_encoded_into_the_last_ones_memory_and_kept_as_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let (disk, _) =
            crate::persist::Disk::open(dir.path(), crate::persist::InitialState::New, &[1], Bytes::new()).unwrap();
        let mut sm = StateMachine::default();
        for i in 1..=100u64 {
            let put = PutRequest { key: format!("k{i}").into_bytes(), value: vec![7; 1000], ..Default::default() };
            sm.apply(i, &Command { client_id: i, seq: 1, op: Some(Op::Put(put)), ..Default::default() });
        }
        let buffer = SpareBuffer::default();
        let job = |index| SnapshotJob {
            meta: SnapshotMeta { index, term: 1, conf: Default::default() },
            members: Members::default(),
            state: sm.copy_for_snapshot(),
            files: disk.snapshot_writer(),
            shared: Arc::new(Shared::default()),
            copied: Duration::ZERO,
            capacity: 0,
            buffer: buffer.clone(),
        };
        let first = job(100).run().unwrap();
        assert_eq!(first.data, encode_snapshot(&Members::default(), &sm.copy_for_snapshot()));
        let kept = buffer.take();
        assert!(kept.is_empty() && kept.capacity() >= first.data.len(), "the encoding's memory is kept");
        let memory = kept.as_ptr();
        buffer.keep(kept);
        let second = job(101).run().unwrap();
        assert_eq!(second.data, first.data);
        let kept = buffer.take();
        assert_eq!(kept.as_ptr(), memory, "the second snapshot went into the first one's memory");
        let on_disk = std::fs::read(dir.path().join(tally_storage::snapshot_name(101, 1))).unwrap();
        // The file: a header, the data, a 4-byte checksum.
        let data_at = on_disk.len() - 4 - second.data.len();
        assert_eq!(&on_disk[data_at..on_disk.len() - 4], &second.data[..], "the kept snapshot is the file's data");
    }
}
