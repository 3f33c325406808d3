//! Followers that commit by the leader's durable hint, where the two are a quorum.

mod support;

use bytes::Bytes;
use support::Network;
use tally_raft::*;

fn is_hint(m: &Message) -> bool {
    matches!(m.body, MessageBody::LeaderDurable { .. })
}

/// The leader hears no acknowledgement of entries, so its commit index stays where it is.
fn drop_append_responses(net: &mut Network) {
    net.filter = Some(Box::new(|m| !matches!(m.body, MessageBody::AppendResp { .. })));
}

#[test]
fn a_follower_of_three_commits_what_it_and_the_leader_hold_durably() {
    let mut net = Network::new(3);
    net.elect(1);
    let before = net.node(1).committed();
    drop_append_responses(&mut net);
    let index = net.propose(1, "a").unwrap();
    assert_eq!(net.node(1).committed(), before, "the leader heard no follower");
    for id in [2, 3] {
        assert_eq!(net.node(id).committed(), index, "follower {id}");
        assert_eq!(net.state(id), vec!["a"], "follower {id} applied it");
    }
    // The leader commits it once it hears a follower.
    net.filter = None;
    net.tick_all(2);
    assert_eq!(net.node(1).committed(), index);
}

#[test]
fn no_hints_where_a_follower_and_the_leader_are_not_a_quorum() {
    let mut net = Network::new(5);
    net.elect(1);
    let before = net.node(2).committed();
    drop_append_responses(&mut net);
    net.propose(1, "a").unwrap();
    assert_eq!(net.count_sent(is_hint), 0);
    assert_eq!(net.node(2).committed(), before);
}

#[test]
fn no_hints_while_a_configuration_change_is_unapplied() {
    let mut net = Network::new(3);
    net.elect(1);
    drop_append_responses(&mut net);
    let change = ConfChange::new(vec![ConfChangeOp::AddLearner(4)]);
    let cc = net.node_mut(1).propose_conf_change(change).unwrap();
    net.stabilize();
    net.propose(1, "a").unwrap();
    assert!(net.sent.iter().all(|m| !matches!(m.body, MessageBody::LeaderDurable { index } if index >= cc)));
    assert!(net.node(2).committed() < cc);
}

#[test]
fn a_hint_commits_only_entries_of_the_hinting_leaders_term() {
    let mut net = Network::new(3);
    // Node 2 holds entries 2 and 3 of term 2, which no quorum may hold.
    let conf = ConfState::with_voters([1, 2, 3]);
    let entry = |index, term| Entry { index, term, kind: EntryKind::Normal, data: Bytes::new() };
    net.start(
        2,
        Persisted {
            hard_state: HardState { term: 2, vote: 0, commit: 1 },
            snapshot: Snapshot { meta: SnapshotMeta { index: 0, term: 0, conf }, data: Bytes::new() },
            entries: vec![entry(1, 1), entry(2, 2), entry(3, 2)],
        },
    );
    // A leader of term 3 says its log is durable up to 3: that is its own entries, not ours.
    let hint = Message { from: 1, to: 2, term: 3, body: MessageBody::LeaderDurable { index: 3 } };
    net.node_mut(2).step(hint).unwrap();
    net.handle_ready(2);
    assert_eq!(net.node(2).term(), 3);
    assert_eq!(net.node(2).committed(), 1);
}

#[test]
fn the_leaders_read_index_covers_what_a_follower_committed_by_its_hint() {
    let mut net = Network::new(3);
    net.elect(1);
    drop_append_responses(&mut net);
    let index = net.propose(1, "a").unwrap();
    assert_eq!(net.node(2).committed(), index);
    assert!(net.node(1).committed() < index);
    net.node_mut(1).read_index(Bytes::from_static(b"r")).unwrap();
    net.stabilize();
    assert_eq!(net.nodes[&1].read_states, vec![ReadState { index, ctx: Bytes::from_static(b"r") }]);
}

#[test]
fn followers_that_commit_by_the_hint_get_no_append_to_tell_them() {
    let mut net = Network::new(3);
    net.elect(1);
    net.sent.clear();
    let index = net.propose(1, "a").unwrap();
    let empty_appends =
        net.count_sent(|m| matches!(&m.body, MessageBody::Append { entries, .. } if entries.is_empty()));
    assert_eq!(empty_appends, 0);
    for id in 1..=3 {
        assert_eq!(net.node(id).committed(), index, "node {id}");
    }
}
