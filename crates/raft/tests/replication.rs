//! Log replication and commitment, Raft paper sections 5.3 and 5.4.2.

mod support;

use bytes::Bytes;
use support::{cmd, Network};
use tally_raft::*;

fn entries(terms: &[Term]) -> Vec<Entry> {
    terms
        .iter()
        .enumerate()
        .map(|(i, &term)| Entry {
            index: i as u64 + 1,
            term,
            kind: EntryKind::Normal,
            data: cmd(&format!("e{}", i + 1)),
        })
        .collect()
}

fn persisted(term: Term, log: &[Term], commit: Index) -> Persisted {
    let conf = ConfState::with_voters([1, 2, 3]);
    Persisted {
        hard_state: HardState { term, vote: 0, commit },
        snapshot: Snapshot { meta: SnapshotMeta { index: 0, term: 0, conf }, data: Bytes::new() },
        entries: entries(log),
    }
}

#[test]
fn replicates_and_applies_on_every_node() {
    let mut net = Network::new(3);
    net.elect(1);
    for v in ["a", "b", "c"] {
        net.propose(1, v).unwrap();
    }
    for id in 1..=3 {
        assert_eq!(net.state(id), vec!["a", "b", "c"]);
        assert_eq!(net.node(id).committed(), 5, "bootstrap, no-op and three commands");
    }
}

#[test]
fn leader_repairs_conflicting_follower_with_one_rejection_per_term() {
    let mut net = Network::new(3);
    net.start(1, persisted(3, &[1, 1, 2, 2, 3, 3, 3, 3, 3, 3], 2));
    net.start(2, persisted(3, &[1, 1, 2, 2, 3, 3, 3, 3, 3, 3], 2));
    // Node 3 holds a long suffix of uncommitted term-2 entries that must be replaced.
    net.start(3, persisted(3, &[1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2], 2));
    net.elect(1);
    let rejections =
        net.count_sent(|m| m.from == 3 && matches!(m.body, MessageBody::AppendResp { reject: Some(_), .. }));
    assert_eq!(rejections, 1, "the conflict hint skips the whole term-2 suffix at once");
    for id in 2..=3 {
        for index in 1..=11 {
            assert_eq!(net.node(id).log_term(index), net.node(1).log_term(index), "node {id} index {index}");
        }
        assert_eq!(net.node(id).last_index(), 11);
    }
}

#[test]
fn previous_term_entries_commit_only_through_a_current_term_entry() {
    // Figure 8: entry 2 (term 2) sits on a majority, but the new leader of term 3 may not
    // count it as committed until its own no-op (index 3) is on a majority too.
    for bug in [None, Some(InjectedBug::CommitPreviousTermByCounting)] {
        let mut net =
            Network::with_config(3, move |id| Config { entries_per_msg_max: 1, injected_bug: bug, ..Config::new(id) });
        net.start(1, persisted(2, &[1, 2], 1));
        net.start(2, persisted(2, &[1, 1], 1));
        net.start(3, persisted(2, &[1, 1], 1));
        // The first Append to each follower gets through (and is rejected: their entry 2 is of
        // term 1); after that, entry 3 (the no-op of term 3) never reaches anyone.
        let mut probed = std::collections::BTreeSet::new();
        net.filter = Some(Box::new(move |m| match &m.body {
            MessageBody::Append { entries, .. } => probed.insert(m.to) || entries.iter().all(|e| e.index < 3),
            _ => true,
        }));
        net.elect(1);
        assert_eq!((net.node(3).last_index(), net.node(3).log_term(2)), (2, Some(2)), "repaired up to entry 2 only");
        let expected = if bug.is_some() { 2 } else { 1 };
        assert_eq!(net.node(1).committed(), expected, "bug {bug:?}");
        net.filter = None;
        net.tick_all(3);
        assert_eq!(net.node(1).committed(), 3);
    }
}

#[test]
fn proposals_between_readies_travel_in_one_append() {
    let mut net = Network::new(3);
    net.elect(1);
    let before = net.sent.len();
    for i in 0..100 {
        net.node_mut(1).propose(Bytes::from(format!("v{i}"))).unwrap();
    }
    net.stabilize();
    let appends: Vec<usize> = net.sent[before..]
        .iter()
        .filter(|m| m.to == 2)
        .filter_map(|m| match &m.body {
            MessageBody::Append { entries, .. } if !entries.is_empty() => Some(entries.len()),
            _ => None,
        })
        .collect();
    assert_eq!(appends, vec![100]);
    assert_eq!(net.state(2).len(), 100);
}

#[test]
fn inflight_window_bounds_unacknowledged_appends() {
    let mut net = Network::with_config(3, |id| Config { inflight_msgs_max: 2, ..Config::new(id) });
    net.elect(1);
    // Node 2 receives everything but its acknowledgements are lost.
    net.filter = Some(Box::new(|m| !(m.from == 2 && matches!(m.body, MessageBody::AppendResp { .. }))));
    let before = net.sent.len();
    for i in 0..10 {
        net.propose(1, &format!("v{i}")).unwrap();
    }
    let to_2 = net.sent[before..]
        .iter()
        .filter(|m| m.to == 2 && matches!(&m.body, MessageBody::Append { entries, .. } if !entries.is_empty()))
        .count();
    assert_eq!(to_2, 2, "the window holds two appends");
    assert_eq!(net.node(1).committed(), 12, "node 3 keeps the quorum going");
    net.filter = None;
    net.tick_all(4);
    assert_eq!(net.state(2).len(), 10, "heartbeats reopen the window and node 2 catches up");
}

#[test]
fn lagging_follower_catches_up_after_heal() {
    let mut net = Network::new(3);
    net.elect(1);
    net.isolate(3);
    for i in 0..5 {
        net.propose(1, &format!("v{i}")).unwrap();
    }
    assert!(net.state(3).is_empty());
    net.heal();
    net.tick_all(2);
    assert_eq!(net.state(3), net.state(1));
    assert_eq!(net.node(3).committed(), net.node(1).committed(), "heartbeats carry the commit index");
}

#[test]
fn follower_behind_compacted_log_receives_snapshot() {
    let mut net = Network::new(3);
    net.elect(1);
    net.isolate(3);
    for i in 0..20 {
        net.propose(1, &format!("v{i}")).unwrap();
    }
    net.compact(1);
    assert_eq!(net.node(1).first_index(), 23);
    net.heal();
    net.tick_all(3);
    assert!(net.count_sent(|m| m.to == 3 && matches!(m.body, MessageBody::Snapshot { .. })) >= 1);
    assert_eq!(net.state(3), net.state(1));
    assert_eq!(net.node(3).first_index(), 23, "the follower's log starts after the snapshot");
    // And it keeps replicating normally afterwards, also across a restart.
    net.propose(1, "after").unwrap();
    net.restart(3);
    net.tick_all(3);
    assert_eq!(net.state(3).last().map(String::as_str), Some("after"));
    assert_eq!(net.state(3), net.state(1));
}

/// Node 3 falls behind node 1's compacted log (node 1 leads); returns the cluster, healed.
fn follower_needs_snapshot() -> Network {
    let mut net = Network::new(3);
    net.elect(1);
    net.isolate(3);
    for i in 0..5 {
        net.propose(1, &format!("v{i}")).unwrap();
    }
    net.compact(1);
    net.heal();
    net
}

fn snapshots_to(net: &Network, to: NodeId) -> usize {
    net.count_sent(|m| m.to == to && matches!(m.body, MessageBody::Snapshot { .. }))
}

#[test]
fn lost_snapshot_is_resent_at_the_next_heartbeat() {
    let mut net = follower_needs_snapshot();
    // The transport reports each lost snapshot as failed.
    net.filter = Some(Box::new(|m| !matches!(m.body, MessageBody::Snapshot { .. })));
    net.tick_all(3);
    assert!(net.state(3).is_empty());
    let lost = snapshots_to(&net, 3);
    assert!(lost >= 1);
    net.filter = None;
    // Well within an election timeout: the heartbeat response after the failure resends it.
    net.tick_all(Config::new(1).heartbeat_tick);
    assert_eq!(snapshots_to(&net, 3), lost + 1);
    assert_eq!(net.state(3), net.state(1));
}

#[test]
fn snapshot_in_flight_is_never_resent_by_a_timer() {
    let mut net = follower_needs_snapshot();
    // A transfer that takes forever: never delivered, never reported.
    net.report_snapshots = false;
    net.filter = Some(Box::new(|m| !matches!(m.body, MessageBody::Snapshot { .. })));
    net.tick_all(5 * Config::new(1).election_tick);
    assert_eq!(snapshots_to(&net, 3), 1, "resent while the first transfer was still going");
    assert_eq!(net.node(1).progress()[&3].state, ProgressState::Snapshot);
    assert_eq!(net.leaders(), vec![1], "heartbeats kept flowing meanwhile");
    // It breaks: the next heartbeat response sends a new one.
    net.node_mut(1).report_snapshot(3, false);
    net.report_snapshots = true;
    net.filter = None;
    net.tick_all(Config::new(1).heartbeat_tick);
    assert_eq!(snapshots_to(&net, 3), 2);
    assert_eq!(net.state(3), net.state(1));
}

#[test]
fn snapshot_reported_received_resumes_after_it_though_its_answer_was_lost() {
    let mut net = follower_needs_snapshot();
    net.report_snapshots = false;
    // Node 3's acknowledgements are lost (its rejections lead the leader to the snapshot).
    net.filter = Some(Box::new(|m| !(m.from == 3 && matches!(m.body, MessageBody::AppendResp { reject: None, .. }))));
    net.tick_all(3 * Config::new(1).election_tick);
    assert_eq!(net.state(3), net.state(1), "node 3 installed the snapshot");
    assert_eq!(net.node(1).progress()[&3].state, ProgressState::Snapshot, "but the leader never heard");
    let snapshot_index = net.node(1).snapshot().meta.index;
    net.node_mut(1).report_snapshot(3, true);
    let pr = &net.node(1).progress()[&3];
    assert_eq!((pr.state, pr.next), (ProgressState::Probe, snapshot_index + 1), "probe right after the snapshot");
    assert!(pr.is_paused(), "until the next heartbeat response");
    net.filter = None;
    net.propose(1, "after").unwrap();
    net.tick_all(Config::new(1).heartbeat_tick);
    assert_eq!(net.state(3), net.state(1));
    assert_eq!(net.node(1).progress()[&3].state, ProgressState::Replicate);
    assert_eq!(snapshots_to(&net, 3), 1, "no second snapshot was needed");
    // A report that matches no pending snapshot changes nothing.
    net.node_mut(1).report_snapshot(3, false);
    net.node_mut(2).report_snapshot(3, false);
    assert_eq!(net.node(1).progress()[&3].state, ProgressState::Replicate);
}
