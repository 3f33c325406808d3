//! A member's own snapshots. Every `snapshot_count` applied entries the driver copies the
//! state machine and a background thread encodes and syncs it, seconds for a large store, while
//! the driver goes on; once the file is durable the driver adopts it (WAL marker, log
//! compaction, `Raft::compact`), unless the leader's newer snapshot was installed meanwhile.
//! One snapshot at a time. Members snapshot at staggered points (`next_snapshot_at`), so that
//! a quorum is never encoding and syncing at once. The copy is cheap: the state machine's maps are shared with it shard
//! by shard, the writes that follow copy only what they change (tally-mvcc's `sharded`), and
//! the key order is not copied at all (`SnapshotCopy` sorts the keys while encoding).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tally_consensus::Consensus;
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
}

impl<F: FileSystem> SnapshotJob<F> {
    /// Encodes and syncs the snapshot; hand the result to [`Node::snapshot_written`].
    pub fn run(self) -> Result<Snapshot, String> {
        let began = Instant::now();
        let snapshot = Snapshot { meta: self.meta, data: encode_snapshot(&self.members, &self.state) };
        drop(self.state);
        let writing = Instant::now();
        self.files.write(&snapshot).map_err(|e| e.to_string())?;
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
        if self.snapshot_in_flight || applied <= self.snapshot_index {
            return;
        }
        let members = self.engine.conf_state().members();
        let rank = members.iter().position(|&id| id == self.engine.id()).unwrap_or(0) as u64;
        let stagger = rank * self.snapshot_count / (members.len() as u64).max(1);
        if applied < next_snapshot_at(self.snapshot_index, self.snapshot_count, stagger) {
            return;
        }
        let Some(term) = self.engine.log_term(applied) else { return };
        let meta = SnapshotMeta { index: applied, term, conf: self.engine.conf_state().clone() };
        let began = Instant::now();
        let members = self.members.read().expect("members lock").clone();
        let state = self.sm.read().expect("sm lock").copy_for_snapshot();
        let files = self.disk.snapshot_writer();
        let job = SnapshotJob { meta, members, state, files, shared: self.shared.clone(), copied: began.elapsed() };
        self.snapshot_in_flight = true;
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
        match self.disk.adopt_snapshot(&snapshot) {
            Err(e) => self.host.fatal("saving a snapshot", &e),
            // The leader's newer snapshot was installed meanwhile.
            Ok(false) => {}
            Ok(true) => {
                self.snapshot_index = self.snapshot_index.max(snapshot.meta.index);
                let (index, term) = (snapshot.meta.index, snapshot.meta.term);
                self.observe(crate::observe::Observation::Snapshot { taken: true, index, term });
                self.engine.compact(snapshot);
            }
        }
    }
}

/// The first index after `snapshot_index` on this member's grid: every `count` entries, shifted
/// by `stagger`. Members take staggers `rank * count / members` (rank of their id), so their
/// snapshots are evenly spread: on one machine, or a disk they share, snapshots of a 36 MB
/// state taken by all three members at once cost 260-455 ms each, and puts stalled for that
/// long (max latency 120-370 ms against 14-104 ms without snapshots).
fn next_snapshot_at(snapshot_index: u64, count: u64, stagger: u64) -> u64 {
    let count = count.max(1);
    if snapshot_index < stagger {
        return stagger;
    }
    stagger + ((snapshot_index - stagger) / count + 1) * count
}

/// A node's snapshot: the member table and the state machine, as a `NodeSnapshot` message.
/// Its framing is written by hand around the state machine's encoding, so the store-sized
/// bytes are written once instead of encoded and then copied into the message. The state's
/// length goes in a varint padded to a fixed width, which protobuf decoders accept.
pub fn encode_snapshot(members: &Members, sm: &SnapshotCopy) -> Bytes {
    use prost::encoding::{encode_key, message, WireType};
    let mut buf = Vec::new();
    message::encode(1, &members.to_table(), &mut buf);
    encode_key(2, WireType::LengthDelimited, &mut buf);
    let len_at = buf.len();
    buf.extend_from_slice(&[0; PADDED_VARINT_LEN]);
    sm.snapshot_into(&mut buf);
    let state_len = buf.len() - len_at - PADDED_VARINT_LEN;
    buf[len_at..len_at + PADDED_VARINT_LEN].copy_from_slice(&padded_varint(state_len as u64));
    Bytes::from(buf)
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
    fn members_snapshot_every_count_entries_at_their_own_offsets() {
        // Three members, 300 entries apart: ranks 0, 1, 2 get staggers 0, 100, 200.
        let points = |stagger| {
            let mut at = 0;
            (0..3)
                .map(|_| {
                    at = next_snapshot_at(at, 300, stagger);
                    at
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(points(0), [300, 600, 900]);
        assert_eq!(points(100), [100, 400, 700]);
        assert_eq!(points(200), [200, 500, 800]);
        // After the leader's snapshot at an arbitrary index, back on the member's own grid.
        assert_eq!(next_snapshot_at(450, 300, 100), 700);
        assert_eq!(next_snapshot_at(400, 300, 100), 700);
        assert_eq!(next_snapshot_at(399, 300, 100), 400);
        assert_eq!(next_snapshot_at(5, 1, 0), 6);
    }

    #[test]
    fn padded_varints_decode_to_their_value() {
        for v in [0u64, 1, 127, 128, 300, 1 << 20, (1 << 35) - 1] {
            let bytes = padded_varint(v);
            assert_eq!(prost::encoding::decode_varint(&mut &bytes[..]).unwrap(), v);
        }
    }
}
