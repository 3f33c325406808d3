//! Conversions between the core's types and their wire form (package `tally.v1`).

use tally_proto::tally_v1 as pb;
use tally_proto::Message as _;
use tally_raft::{ConfState, ConflictHint, Entry, EntryKind, Message, MessageBody, Snapshot, SnapshotMeta};

fn conf_to_pb(conf: &ConfState) -> pb::ConfState {
    pb::ConfState {
        voters: conf.voters.iter().copied().collect(),
        voters_outgoing: conf.voters_outgoing.iter().copied().collect(),
        learners: conf.learners.iter().copied().collect(),
        learners_next: conf.learners_next.iter().copied().collect(),
    }
}

fn conf_from_pb(conf: pb::ConfState) -> ConfState {
    ConfState {
        voters: conf.voters.into_iter().collect(),
        voters_outgoing: conf.voters_outgoing.into_iter().collect(),
        learners: conf.learners.into_iter().collect(),
        learners_next: conf.learners_next.into_iter().collect(),
    }
}

pub fn encode_conf_state(conf: &ConfState) -> Vec<u8> {
    conf_to_pb(conf).encode_to_vec()
}

pub fn decode_conf_state(data: &[u8]) -> Option<ConfState> {
    pb::ConfState::decode(data).ok().map(conf_from_pb)
}

pub(crate) fn entry_to_pb(e: Entry) -> pb::Entry {
    let kind = match e.kind {
        EntryKind::Normal => pb::EntryKind::Normal,
        EntryKind::ConfChange => pb::EntryKind::ConfChange,
    };
    pb::Entry { term: e.term, index: e.index, kind: kind as i32, data: e.data }
}

pub(crate) fn entry_from_pb(e: pb::Entry) -> Entry {
    let kind = if e.kind == pb::EntryKind::ConfChange as i32 { EntryKind::ConfChange } else { EntryKind::Normal };
    Entry { term: e.term, index: e.index, kind, data: e.data }
}

pub(crate) fn snapshot_to_pb(s: Snapshot) -> pb::Snapshot {
    let meta = pb::SnapshotMeta { index: s.meta.index, term: s.meta.term, conf: Some(conf_to_pb(&s.meta.conf)) };
    pb::Snapshot { meta: Some(meta), data: s.data }
}

pub(crate) fn snapshot_from_pb(s: pb::Snapshot) -> Snapshot {
    let meta = s.meta.unwrap_or_default();
    let conf = conf_from_pb(meta.conf.unwrap_or_default());
    Snapshot { meta: SnapshotMeta { index: meta.index, term: meta.term, conf }, data: s.data }
}

pub fn message_to_pb(m: Message) -> pb::RaftMessage {
    use pb::raft_message::Body;
    let body = match m.body {
        MessageBody::PreVote { last_index, last_term } => Body::PreVote(pb::PreVote { last_index, last_term }),
        MessageBody::PreVoteResp { reject } => Body::PreVoteResp(pb::VoteResp { reject }),
        MessageBody::Vote { last_index, last_term, transfer } => {
            Body::Vote(pb::Vote { last_index, last_term, transfer })
        }
        MessageBody::VoteResp { reject } => Body::VoteResp(pb::VoteResp { reject }),
        MessageBody::Append { prev_index, prev_term, entries, commit } => Body::Append(pb::Append {
            prev_index,
            prev_term,
            entries: entries.into_iter().map(entry_to_pb).collect(),
            commit,
        }),
        MessageBody::AppendResp { index, reject } => Body::AppendResp(pb::AppendResp {
            index,
            reject: reject.map(|h| pb::ConflictHint { term: h.term, first_index: h.first_index }),
        }),
        MessageBody::Heartbeat { commit, round } => Body::Heartbeat(pb::Heartbeat { commit, round }),
        MessageBody::HeartbeatResp { round } => Body::HeartbeatResp(pb::HeartbeatResp { round }),
        MessageBody::LeaderDurable { index } => Body::LeaderDurable(pb::LeaderDurable { index }),
        MessageBody::Snapshot { snapshot } => Body::Snapshot(snapshot_to_pb(snapshot)),
        MessageBody::TimeoutNow => Body::TimeoutNow(pb::TimeoutNow {}),
        MessageBody::ReadIndex { ctx } => Body::ReadIndex(pb::ReadIndex { ctx }),
        MessageBody::ReadIndexResp { ctx, index } => Body::ReadIndexResp(pb::ReadIndexResp { ctx, index }),
    };
    pb::RaftMessage { from: m.from, to: m.to, term: m.term, body: Some(body) }
}

/// `None` for a message without a body: a kind this version does not know.
pub fn message_from_pb(m: pb::RaftMessage) -> Option<Message> {
    use pb::raft_message::Body;
    let body = match m.body? {
        Body::PreVote(v) => MessageBody::PreVote { last_index: v.last_index, last_term: v.last_term },
        Body::PreVoteResp(v) => MessageBody::PreVoteResp { reject: v.reject },
        Body::Vote(v) => MessageBody::Vote { last_index: v.last_index, last_term: v.last_term, transfer: v.transfer },
        Body::VoteResp(v) => MessageBody::VoteResp { reject: v.reject },
        Body::Append(a) => MessageBody::Append {
            prev_index: a.prev_index,
            prev_term: a.prev_term,
            entries: a.entries.into_iter().map(entry_from_pb).collect(),
            commit: a.commit,
        },
        Body::AppendResp(a) => MessageBody::AppendResp {
            index: a.index,
            reject: a.reject.map(|h| ConflictHint { term: h.term, first_index: h.first_index }),
        },
        Body::Heartbeat(h) => MessageBody::Heartbeat { commit: h.commit, round: h.round },
        Body::HeartbeatResp(h) => MessageBody::HeartbeatResp { round: h.round },
        Body::LeaderDurable(d) => MessageBody::LeaderDurable { index: d.index },
        Body::Snapshot(s) => MessageBody::Snapshot { snapshot: snapshot_from_pb(s) },
        Body::TimeoutNow(_) => MessageBody::TimeoutNow,
        Body::ReadIndex(r) => MessageBody::ReadIndex { ctx: r.ctx },
        Body::ReadIndexResp(r) => MessageBody::ReadIndexResp { ctx: r.ctx, index: r.index },
    };
    Some(Message { from: m.from, to: m.to, term: m.term, body })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn every_message_kind_round_trips() {
        let entry = Entry { term: 2, index: 7, kind: EntryKind::ConfChange, data: Bytes::from_static(b"cc") };
        let conf = ConfState::with_voters([1, 2, 3]);
        let bodies = vec![
            MessageBody::PreVote { last_index: 1, last_term: 2 },
            MessageBody::PreVoteResp { reject: true },
            MessageBody::Vote { last_index: 3, last_term: 4, transfer: true },
            MessageBody::VoteResp { reject: false },
            MessageBody::Append { prev_index: 6, prev_term: 2, entries: vec![entry], commit: 5 },
            MessageBody::AppendResp { index: 9, reject: Some(ConflictHint { term: None, first_index: 4 }) },
            MessageBody::AppendResp { index: 9, reject: None },
            MessageBody::Heartbeat { commit: 3, round: 8 },
            MessageBody::HeartbeatResp { round: 8 },
            MessageBody::Snapshot {
                snapshot: Snapshot {
                    meta: SnapshotMeta { index: 10, term: 3, conf: conf.clone() },
                    data: Bytes::from_static(b"state"),
                },
            },
            MessageBody::TimeoutNow,
            MessageBody::ReadIndex { ctx: Bytes::from_static(b"r") },
            MessageBody::ReadIndexResp { ctx: Bytes::from_static(b"r"), index: Some(4) },
            MessageBody::ReadIndexResp { ctx: Bytes::new(), index: None },
            MessageBody::LeaderDurable { index: 12 },
        ];
        for body in bodies {
            let m = Message { from: 1, to: 2, term: 5, body };
            let wire = message_to_pb(m.clone()).encode_to_vec();
            let back = message_from_pb(pb::RaftMessage::decode(wire.as_slice()).unwrap()).unwrap();
            assert_eq!(back, m);
        }
        assert_eq!(decode_conf_state(&encode_conf_state(&conf)), Some(conf));
        assert_eq!(message_from_pb(pb::RaftMessage::default()), None);
    }
}
