//! Multi-Paxos messages in their wire form (`tally.v1.PaxosMessage`), and where either
//! engine's messages go in a peer frame.

use tally_paxos::multi::{Ballot, Message, MessageBody};
use tally_proto::tally_v1 as pb;

use crate::codec::{entry_from_pb, entry_to_pb, message_to_pb, snapshot_from_pb, snapshot_to_pb};
use crate::engine::PeerMessage;

pub fn paxos_to_pb(m: Message) -> pb::PaxosMessage {
    use pb::paxos_message::Body;
    let entries = |entries: Vec<tally_raft::Entry>| entries.into_iter().map(entry_to_pb).collect();
    let body = match m.body {
        MessageBody::Prepare { commit, force } => Body::Prepare(pb::Prepare { commit, force }),
        MessageBody::Promise { commit, snapshot_index, entries: e } => {
            Body::Promise(pb::Promise { commit, snapshot_index, entries: entries(e) })
        }
        MessageBody::Nack { promised } => {
            Body::Nack(pb::Nack { promised_round: promised.round, promised_node: promised.node })
        }
        MessageBody::Accept { entries: e, commit } => Body::Accept(pb::Accept { entries: entries(e), commit }),
        MessageBody::Accepted { through, gap } => Body::Accepted(pb::Accepted { through, gap }),
        MessageBody::Heartbeat { commit, round } => Body::Heartbeat(pb::Heartbeat { commit, round }),
        MessageBody::HeartbeatResp { round, through } => Body::HeartbeatResp(pb::PaxosHeartbeatResp { round, through }),
        MessageBody::Snapshot { snapshot } => Body::Snapshot(snapshot_to_pb(snapshot)),
        MessageBody::TimeoutNow => Body::TimeoutNow(pb::TimeoutNow {}),
        MessageBody::ReadIndex { ctx } => Body::ReadIndex(pb::ReadIndex { ctx }),
        MessageBody::ReadIndexResp { ctx, index } => Body::ReadIndexResp(pb::ReadIndexResp { ctx, index }),
    };
    let (ballot_round, ballot_node) = (m.ballot.round, m.ballot.node);
    pb::PaxosMessage { from: m.from, to: m.to, ballot_round, ballot_node, body: Some(body) }
}

/// `None` for a message without a body: a kind this version does not know.
pub fn paxos_from_pb(m: pb::PaxosMessage) -> Option<Message> {
    use pb::paxos_message::Body;
    let entries = |entries: Vec<pb::Entry>| entries.into_iter().map(entry_from_pb).collect();
    let body = match m.body? {
        Body::Prepare(p) => MessageBody::Prepare { commit: p.commit, force: p.force },
        Body::Promise(p) => {
            MessageBody::Promise { commit: p.commit, snapshot_index: p.snapshot_index, entries: entries(p.entries) }
        }
        Body::Nack(n) => MessageBody::Nack { promised: Ballot::new(n.promised_round, n.promised_node) },
        Body::Accept(a) => MessageBody::Accept { entries: entries(a.entries), commit: a.commit },
        Body::Accepted(a) => MessageBody::Accepted { through: a.through, gap: a.gap },
        Body::Heartbeat(h) => MessageBody::Heartbeat { commit: h.commit, round: h.round },
        Body::HeartbeatResp(h) => MessageBody::HeartbeatResp { round: h.round, through: h.through },
        Body::Snapshot(s) => MessageBody::Snapshot { snapshot: snapshot_from_pb(s) },
        Body::TimeoutNow(_) => MessageBody::TimeoutNow,
        Body::ReadIndex(r) => MessageBody::ReadIndex { ctx: r.ctx },
        Body::ReadIndexResp(r) => MessageBody::ReadIndexResp { ctx: r.ctx, index: r.index },
    };
    Some(Message { from: m.from, to: m.to, ballot: Ballot::new(m.ballot_round, m.ballot_node), body })
}

/// Adds `m` to the frame for its peer.
pub fn push_to_batch(batch: &mut pb::PeerBatch, m: PeerMessage) {
    match m {
        PeerMessage::Raft(m) => batch.messages.push(message_to_pb(m)),
        PeerMessage::Paxos(m) => batch.paxos.push(paxos_to_pb(m)),
    }
}

/// Every message of a frame, in order per engine. A message whose kind this version does not
/// know (a newer peer's; to us it has no body) is left out, as if lost on the way: consensus
/// tolerates lost messages, and the rest of the frame still counts.
pub fn batch_messages(batch: &mut pb::PeerBatch) -> Vec<PeerMessage> {
    let raft = std::mem::take(&mut batch.messages)
        .into_iter()
        .filter_map(|m| crate::codec::message_from_pb(m).map(PeerMessage::Raft));
    let paxos = std::mem::take(&mut batch.paxos).into_iter().filter_map(|m| paxos_from_pb(m).map(PeerMessage::Paxos));
    raft.chain(paxos).collect()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use tally_proto::Message as _;
    use tally_raft::{ConfState, Entry, EntryKind, Snapshot, SnapshotMeta};

    use super::*;

    #[test]
    fn every_paxos_message_kind_round_trips() {
        let entry = Entry { term: 2, index: 7, kind: EntryKind::Normal, data: Bytes::from_static(b"v") };
        let snapshot = Snapshot {
            meta: SnapshotMeta { index: 10, term: 3, conf: ConfState::with_voters([1, 2, 3]) },
            data: Bytes::from_static(b"state"),
        };
        let bodies = vec![
            MessageBody::Prepare { commit: 4, force: true },
            MessageBody::Promise { commit: 4, snapshot_index: 2, entries: vec![entry.clone()] },
            MessageBody::Nack { promised: Ballot::new(9, 3) },
            MessageBody::Accept { entries: vec![entry], commit: 6 },
            MessageBody::Accepted { through: 7, gap: Some(5) },
            MessageBody::Accepted { through: 7, gap: None },
            MessageBody::Heartbeat { commit: 3, round: 8 },
            MessageBody::HeartbeatResp { round: 8, through: 7 },
            MessageBody::Snapshot { snapshot },
            MessageBody::TimeoutNow,
            MessageBody::ReadIndex { ctx: Bytes::from_static(b"r") },
            MessageBody::ReadIndexResp { ctx: Bytes::from_static(b"r"), index: Some(4) },
            MessageBody::ReadIndexResp { ctx: Bytes::new(), index: None },
        ];
        for body in bodies {
            let m = Message { from: 1, to: 2, ballot: Ballot::new(5, 1), body };
            let wire = paxos_to_pb(m.clone()).encode_to_vec();
            let back = paxos_from_pb(pb::PaxosMessage::decode(wire.as_slice()).unwrap()).unwrap();
            assert_eq!(back, m);
        }
        assert_eq!(paxos_from_pb(pb::PaxosMessage::default()), None);
    }

    #[test]
    fn a_message_of_an_unknown_kind_is_left_out_of_its_frame() {
        let known = tally_raft::Message { from: 1, to: 2, term: 3, body: tally_raft::MessageBody::TimeoutNow };
        let unknown = pb::RaftMessage { from: 1, to: 2, term: 3, body: None };
        let mut batch = pb::PeerBatch::default();
        batch.messages.push(unknown);
        push_to_batch(&mut batch, PeerMessage::Raft(known.clone()));
        let messages = batch_messages(&mut batch);
        assert!(matches!(messages.as_slice(), [PeerMessage::Raft(m)] if *m == known), "{messages:?}");
    }
}
