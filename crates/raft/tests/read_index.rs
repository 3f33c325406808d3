//! ReadIndex linearizable reads (Raft thesis 6.4).

mod support;

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use support::Network;
use tally_raft::*;

/// Three members, node 1 leading, with one entry of its own term committed (at index 3): reads
/// may be served.
fn three_members_with_an_entry() -> Network {
    members_with_an_entry(3)
}

fn members_with_an_entry(members: u64) -> Network {
    let mut net = Network::new(members);
    net.elect(1);
    net.propose(1, "a").unwrap();
    net
}

#[test]
fn leader_read_waits_for_a_quorum_heartbeat_round() {
    let mut net = three_members_with_an_entry();
    net.isolate(1);
    net.node_mut(1).read_index(Bytes::from_static(b"r1")).unwrap();
    net.stabilize();
    assert!(net.nodes[&1].read_states.is_empty(), "an isolated leader cannot confirm it still leads");
    net.heal();
    net.tick_all(2);
    let reads = &net.nodes[&1].read_states;
    assert_eq!(reads, &vec![ReadState { index: 3, ctx: Bytes::from_static(b"r1") }]);
}

#[test]
fn follower_read_gets_index_from_leader() {
    let mut net = three_members_with_an_entry();
    net.node_mut(3).read_index(Bytes::from_static(b"f")).unwrap();
    net.stabilize();
    assert_eq!(net.nodes[&3].read_states, vec![ReadState { index: 3, ctx: Bytes::from_static(b"f") }]);
}

#[test]
fn new_leader_serves_reads_only_after_committing_in_its_term() {
    // Without leases, so that node 2 can depose a live leader on demand.
    let mut net = Network::with_config(3, |id| Config { check_quorum: false, ..Config::new(id) });
    net.elect(1);
    // Nobody hears the new leader's no-op, so its commit index may be stale.
    net.filter = Some(Box::new(|m| !matches!(m.body, MessageBody::Append { .. })));
    net.node_mut(2).campaign();
    net.stabilize();
    assert_eq!(net.node(2).role(), Role::Leader);
    net.node_mut(2).read_index(Bytes::from_static(b"r")).unwrap();
    net.stabilize();
    assert!(net.nodes[&2].read_states.is_empty());
    net.filter = None;
    net.tick_all(2);
    let index = net.node(2).committed();
    assert_eq!(net.nodes[&2].read_states, vec![ReadState { index, ctx: Bytes::from_static(b"r") }]);
    assert_eq!(net.node(2).log_term(index), Some(net.node(2).term()));
}

#[test]
fn read_without_leader_is_refused() {
    let mut net = Network::new(3);
    assert_eq!(net.node_mut(2).read_index(Bytes::new()), Err(ReadIndexError::NoLeader));
}

#[test]
fn single_node_reads_immediately() {
    let mut net = Network::new(1);
    net.elect(1);
    net.node_mut(1).read_index(Bytes::from_static(b"x")).unwrap();
    net.stabilize();
    assert_eq!(net.nodes[&1].read_states.len(), 1);
}

#[test]
fn reads_arriving_during_a_round_share_the_next_one() {
    let mut net = three_members_with_an_entry();
    net.sent.clear();
    net.node_mut(1).read_index(Bytes::from_static(b"r1")).unwrap();
    net.handle_ready(1);
    // Round 1 is in flight: these wait for round 2, which starts when round 1 is confirmed.
    net.node_mut(1).read_index(Bytes::from_static(b"r2")).unwrap();
    net.node_mut(3).read_index(Bytes::from_static(b"f")).unwrap();
    net.node_mut(1).read_index(Bytes::from_static(b"r3")).unwrap();
    net.stabilize();
    let ctxs: Vec<&[u8]> = net.nodes[&1].read_states.iter().map(|r| r.ctx.as_ref()).collect();
    assert_eq!(ctxs, vec![&b"r1"[..], b"r2", b"r3"]);
    assert_eq!(net.nodes[&3].read_states, vec![ReadState { index: 3, ctx: Bytes::from_static(b"f") }]);
    let heartbeats = net.count_sent(|m| matches!(m.body, MessageBody::Heartbeat { .. }));
    assert_eq!(heartbeats, 2, "two rounds of one heartbeat each, not one round per read");
}

#[test]
fn a_read_round_asks_only_as_many_followers_as_make_a_quorum() {
    for (members, asked) in [(3, 1), (5, 2)] {
        let mut net = members_with_an_entry(members);
        net.sent.clear();
        net.node_mut(1).read_index(Bytes::from_static(b"r")).unwrap();
        net.stabilize();
        assert_eq!(net.nodes[&1].read_states.len(), 1, "{members} members");
        let heartbeats = net.count_sent(|m| matches!(m.body, MessageBody::Heartbeat { .. }));
        assert_eq!(heartbeats, asked, "{members} members");
    }
}

#[test]
fn a_round_whose_follower_is_silent_is_confirmed_by_the_periodic_heartbeat_and_the_next_asks_another() {
    let mut net = three_members_with_an_entry();
    // Both followers acknowledged the last round alike, so the round goes to node 2: cut it off.
    net.isolate(2);
    net.node_mut(1).read_index(Bytes::from_static(b"r1")).unwrap();
    net.stabilize();
    assert!(net.nodes[&1].read_states.is_empty(), "only the silent follower was asked");
    net.tick_all(Config::new(1).heartbeat_tick);
    assert_eq!(net.nodes[&1].read_states.len(), 1, "node 3 acknowledged the round with the periodic heartbeat");
    // Node 3 answered the last round and node 2 did not: the next round asks node 3 at once.
    net.node_mut(1).read_index(Bytes::from_static(b"r2")).unwrap();
    net.stabilize();
    let ctxs: Vec<&[u8]> = net.nodes[&1].read_states.iter().map(|r| r.ctx.as_ref()).collect();
    assert_eq!(ctxs, vec![&b"r1"[..], b"r2"]);
}

#[test]
fn a_read_is_confirmed_only_by_a_round_sent_after_it_arrived() {
    let mut net = three_members_with_an_entry();
    // Every heartbeat of a later round is lost.
    net.filter = Some(Box::new(|m| !matches!(m.body, MessageBody::Heartbeat { round, .. } if round >= 2)));
    net.node_mut(1).read_index(Bytes::from_static(b"r1")).unwrap();
    net.handle_ready(1);
    net.node_mut(1).read_index(Bytes::from_static(b"r2")).unwrap();
    net.stabilize();
    let ctxs: Vec<&[u8]> = net.nodes[&1].read_states.iter().map(|r| r.ctx.as_ref()).collect();
    assert_eq!(ctxs, vec![&b"r1"[..]], "round 1's acknowledgements must not confirm r2");
    // The periodic heartbeat carries the round again once messages get through.
    net.filter = None;
    net.tick_all(Config::new(1).heartbeat_tick);
    assert_eq!(net.nodes[&1].read_states.len(), 2);
}

#[test]
fn a_follower_read_among_three_members_is_answered_without_a_round() {
    let mut net = three_members_with_an_entry();
    net.sent.clear();
    // The leader and the asker are a quorum by themselves: the third member need not answer.
    net.isolate(2);
    net.node_mut(3).read_index(Bytes::from_static(b"f")).unwrap();
    net.stabilize();
    assert_eq!(net.nodes[&3].read_states, vec![ReadState { index: 3, ctx: Bytes::from_static(b"f") }]);
    assert_eq!(net.count_sent(|m| matches!(m.body, MessageBody::Heartbeat { .. })), 0);
}

#[test]
fn a_follower_read_among_five_members_still_needs_a_round() {
    let mut net = members_with_an_entry(5);
    // Leader and asker are two of five: they need a third member's acknowledgement.
    for other in [3, 4, 5] {
        net.cut(1, other);
    }
    net.node_mut(2).read_index(Bytes::from_static(b"f")).unwrap();
    net.stabilize();
    assert!(net.nodes[&2].read_states.is_empty());
    net.heal();
    net.tick_all(Config::new(1).heartbeat_tick);
    let index = net.node(1).committed();
    assert_eq!(net.nodes[&2].read_states, vec![ReadState { index, ctx: Bytes::from_static(b"f") }]);
}

#[test]
fn a_follower_drops_a_read_index_from_a_term_it_has_left() {
    // Without pre-vote, so that a campaign moves node 3 to a new term at once.
    let mut net = Network::with_config(3, |id| Config { pre_vote: false, check_quorum: false, ..Config::new(id) });
    net.elect(1);
    net.propose(1, "a").unwrap();
    let held = Rc::new(RefCell::new(Vec::new()));
    let holder = held.clone();
    net.filter = Some(Box::new(move |m| {
        let answer = matches!(m.body, MessageBody::ReadIndexResp { .. });
        if answer {
            holder.borrow_mut().push(m.clone());
        }
        !answer
    }));
    net.node_mut(3).read_index(Bytes::from_static(b"f")).unwrap();
    net.stabilize();
    let answer = held.borrow_mut().pop().expect("the leader answered at once");
    // Before the answer arrives, node 3 leaves the leader's term: the pair that would have
    // confirmed the read is gone, so the answer must not serve it.
    net.isolate(3);
    net.node_mut(3).campaign();
    net.stabilize();
    net.node_mut(3).step(answer).unwrap();
    net.handle_ready(3);
    assert!(net.nodes[&3].read_states.is_empty());
}
