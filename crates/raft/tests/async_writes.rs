//! A driver that writes the log while the core goes on (`advance_unpersisted`, then
//! `log_persisted`): nothing counts as durable before its write is.

mod support;

use support::Network;
use tally_raft::*;

fn is_append_resp(m: &Message) -> bool {
    matches!(m.body, MessageBody::AppendResp { .. })
}

#[test]
fn a_leader_counts_its_own_log_only_once_its_write_is_durable() {
    let mut net = Network::new(3);
    net.elect(1);
    net.async_writes.insert(1);
    net.isolate(3);
    let before = net.node(1).committed();
    let index = net.propose(1, "a").unwrap();
    assert_eq!(net.node(2).log_term(index), Some(net.node(1).term()), "the follower holds it");
    assert_eq!(net.node(1).committed(), before, "committed on the follower's durability alone");
    assert!(net.finish_write(1));
    net.stabilize();
    assert_eq!(net.node(1).committed(), index);
    assert_eq!(net.state(1), vec!["a"]);
}

#[test]
fn a_follower_acknowledges_only_once_its_write_is_durable() {
    let mut net = Network::new(3);
    net.elect(1);
    net.async_writes.extend([2, 3]);
    let before = net.node(1).committed();
    let acks = net.count_sent(is_append_resp);
    let index = net.propose(1, "a").unwrap();
    assert_eq!(net.count_sent(is_append_resp), acks, "an acknowledgement left before the write");
    assert_eq!(net.node(1).committed(), before);
    assert!(net.finish_write(2));
    net.stabilize();
    assert_eq!(net.node(1).committed(), index);
    assert_eq!(net.state(1), vec!["a"]);
}

#[test]
fn a_write_of_entries_a_new_leader_replaced_does_not_count() {
    let mut net = Network::new(5);
    net.elect(1);
    net.async_writes.insert(2);
    for id in [3, 4, 5] {
        net.cut(1, id);
    }
    let (old_term, lost) = (net.node(1).term(), net.propose(1, "lost").unwrap());
    assert_eq!(net.node(2).log_term(lost), Some(old_term), "node 2 holds it, its write pending");
    // Node 2 hears the new leader but cannot stand: nothing it says gets out.
    net.isolate(1);
    net.filter = Some(Box::new(|m| m.from != 2));
    net.tick_all(40);
    let leader = net.leaders().into_iter().find(|id| ![1, 2].contains(id)).expect("3, 4 or 5 took over");
    net.filter = None;
    let kept = net.propose(leader, "kept").unwrap();
    let new_term = net.node(leader).term();
    assert_eq!(net.node(2).log_term(lost), Some(new_term), "replaced while the old write was pending");
    // The old write reports its entry, of the old term: ignored; the newer ones count.
    assert!(net.finish_write(2));
    assert!(net.node(2).persisted() < lost, "counted a replaced entry as durable");
    while net.finish_write(2) {
        net.stabilize();
    }
    net.tick_all(2);
    let disk = &net.nodes[&2].disk;
    assert_eq!(disk.entries.iter().find(|e| e.index == lost).map(|e| e.term), Some(new_term));
    assert_eq!(disk.entries.last().map(|e| e.index), Some(kept));
    assert_eq!(net.node(2).committed(), kept);
    assert_eq!(net.state(2), vec!["kept"]);
}
