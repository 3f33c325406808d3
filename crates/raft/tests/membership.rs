//! Joint-consensus membership changes (Raft section 6) and learners.

mod support;

use support::Network;
use tally_raft::*;

fn change(ops: &[ConfChangeOp]) -> ConfChange {
    ConfChange::new(ops.to_vec())
}

#[test]
fn learner_catches_up_then_promotion_goes_through_joint_config() {
    let mut net = Network::new(3);
    net.elect(1);
    net.propose(1, "a").unwrap();
    net.start_joining(4);
    net.node_mut(1).propose_conf_change(change(&[ConfChangeOp::AddLearner(4)])).unwrap();
    net.stabilize();
    assert_eq!(net.node(1).conf_state().learners, [4].into());
    net.tick_all(2);
    assert_eq!(net.state(4), vec!["a"], "the learner receives the log");
    assert!(!net.node(4).conf_state().is_voter(4));

    // A learner never campaigns.
    net.tick(4, 100);
    assert_eq!(net.node(4).role(), Role::Follower);

    let before = net.sent.len();
    net.node_mut(1).propose_conf_change(change(&[ConfChangeOp::AddVoter(4)])).unwrap();
    net.stabilize();
    let conf = net.node(1).conf_state().clone();
    assert_eq!(conf, ConfState::with_voters([1, 2, 3, 4]), "joint config entered and left");
    // Both configuration entries went through the log: C_old,new then C_new.
    let conf_entries = net.sent[before..]
        .iter()
        .filter(|m| m.to == 2)
        .flat_map(|m| match &m.body {
            MessageBody::Append { entries, .. } => {
                entries.iter().filter(|e| e.kind == EntryKind::ConfChange).cloned().collect()
            }
            _ => Vec::new(),
        })
        .count();
    assert_eq!(conf_entries, 2);
    for id in 1..=4 {
        assert_eq!(net.node(id).conf_state(), &conf, "node {id}");
    }
}

#[test]
fn only_one_change_may_be_pending() {
    let mut net = Network::new(3);
    net.elect(1);
    net.node_mut(1).propose_conf_change(change(&[ConfChangeOp::AddLearner(4)])).unwrap();
    let second = net.node_mut(1).propose_conf_change(change(&[ConfChangeOp::AddLearner(5)]));
    assert_eq!(second, Err(ProposeError::ConfChangePending));
    let bad = net.node_mut(2).propose_conf_change(change(&[ConfChangeOp::AddLearner(5)]));
    assert_eq!(bad, Err(ProposeError::NotLeader { leader: Some(1) }));
    net.stabilize();
    let none_left = net.node_mut(1).propose_conf_change(change(&[
        ConfChangeOp::Remove(1),
        ConfChangeOp::Remove(2),
        ConfChangeOp::Remove(3),
    ]));
    assert_eq!(none_left, Err(ProposeError::InvalidConfChange(ConfChangeError::NoVoters)));
}

#[test]
fn removed_leader_steps_down_and_the_rest_elect_a_new_one() {
    let mut net = Network::new(3);
    net.elect(1);
    net.propose(1, "a").unwrap();
    net.node_mut(1).propose_conf_change(change(&[ConfChangeOp::Remove(1)])).unwrap();
    net.stabilize();
    assert_ne!(net.node(1).role(), Role::Leader);
    assert_eq!(net.node(2).conf_state(), &ConfState::with_voters([2, 3]));
    net.tick_all(40);
    let leaders = net.leaders();
    assert_eq!(leaders.len(), 1);
    assert_ne!(leaders[0], 1);
    net.propose(leaders[0], "b").unwrap();
    assert_eq!(net.state(2), vec!["a", "b"]);
    assert_eq!(net.state(1), vec!["a"], "the removed node no longer receives the log");
}

#[test]
fn joint_config_needs_majorities_of_both_halves() {
    let mut net = Network::new(3);
    net.elect(1);
    for id in [4, 5] {
        net.start_joining(id);
    }
    net.node_mut(1).propose_conf_change(change(&[ConfChangeOp::AddLearner(4), ConfChangeOp::AddLearner(5)])).unwrap();
    net.tick_all(2);
    // Replace 2 and 3 by 4 and 5, but cut 4 and 5 off right away: the joint config
    // {1,2,3} & {1,4,5} cannot commit anything without them.
    net.filter = Some(Box::new(|m| !(m.to == 4 || m.to == 5) || !matches!(m.body, MessageBody::Append { .. })));
    let cc = change(&[
        ConfChangeOp::AddVoter(4),
        ConfChangeOp::AddVoter(5),
        ConfChangeOp::Remove(2),
        ConfChangeOp::Remove(3),
    ]);
    net.node_mut(1).propose_conf_change(cc).unwrap();
    net.stabilize();
    assert!(net.node(1).conf_state().is_joint());
    let committed = net.node(1).committed();
    net.propose(1, "x").unwrap();
    assert_eq!(net.node(1).committed(), committed, "old majority alone cannot commit in joint config");
    net.filter = None;
    net.tick_all(4);
    assert_eq!(net.node(1).conf_state(), &ConfState::with_voters([1, 4, 5]));
    assert_eq!(net.state(4), vec!["x"]);
}

#[test]
fn leadership_transfer_to_up_to_date_and_lagging_followers() {
    let mut net = Network::new(3);
    net.elect(1);
    let term = net.node(1).term();
    net.node_mut(1).transfer_leader(2).unwrap();
    net.stabilize();
    assert_eq!(net.leaders(), vec![2]);
    assert_eq!(net.node(2).term(), term + 1);

    // Node 3 misses some entries; the transfer first brings it up to date.
    net.isolate(3);
    net.propose(2, "a").unwrap();
    net.heal();
    net.filter = Some(Box::new(|m| !(m.to == 3 && matches!(m.body, MessageBody::Append { .. }))));
    net.node_mut(2).transfer_leader(3).unwrap();
    net.stabilize();
    assert_eq!(net.node_mut(2).propose(bytes::Bytes::from_static(b"b")), Err(ProposeError::TransferInProgress));
    net.filter = None;
    net.tick_all(4);
    assert_eq!(net.leaders(), vec![3]);
    assert_eq!(net.state(3), vec!["a"]);
    assert_eq!(net.node_mut(3).transfer_leader(9), Err(TransferError::NotVoter(9)));
    assert_eq!(net.node_mut(1).transfer_leader(2), Err(TransferError::NotLeader { leader: Some(3) }));
}

#[test]
fn stalled_transfer_is_abandoned_after_an_election_timeout() {
    let mut net = Network::new(3);
    net.elect(1);
    net.isolate(2);
    net.node_mut(1).transfer_leader(2).unwrap();
    net.tick(1, Config::new(1).election_tick);
    assert_eq!(net.node(1).lead_transferee(), None);
    assert!(net.node_mut(1).propose(bytes::Bytes::from_static(b"x")).is_ok());
}
