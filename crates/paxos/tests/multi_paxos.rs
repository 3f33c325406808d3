//! Multi-Paxos scenarios: election, recovery of accepted values, catch-up, leases, reads,
//! membership.

mod support;

use support::{cmd, Cluster};
use tally_consensus::{ConfChange, ConfChangeOp, Role};
use tally_paxos::multi::{Ballot, Config, MessageBody, PaxosBug};

#[test]
fn a_leader_gets_values_chosen_on_every_member() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose(1, "a").unwrap();
    c.propose(1, "b").unwrap();
    c.tick_all(2);
    for id in 1..=3 {
        assert_eq!(c.state(id), ["a", "b"], "member {id}");
    }
    assert_eq!(c.paxos(2).leader(), Some(1));
    c.assert_safe();
}

#[test]
fn a_new_leader_adopts_a_value_only_one_acceptor_holds() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(1);
    let slot = c.paxos_mut(1).propose(cmd("lonely")).unwrap();
    c.stabilize();
    assert_eq!(c.paxos(1).committed(), slot - 1, "not chosen: no quorum accepted it");
    c.tick(1, 20);
    assert_ne!(c.paxos(1).role(), Role::Leader, "check-quorum: it stepped down");
    // Member 3 leads with promises from 1 (which holds the value) and itself.
    c.heal();
    c.isolate(2);
    c.elect(3);
    c.tick_all(2);
    assert_eq!(c.state(3), ["lonely"]);
    assert_eq!(c.state(1), ["lonely"]);
    c.assert_safe();
}

/// Five members. Member 1 (round 2) gets "old" accepted at slot 3 by itself and 3 only, so it
/// is not chosen; member 2 then leads a higher round with 2, 4 and 5, whose opening no-op at
/// slot 3 is chosen. Member 3 finally leads with promises from 1, itself and one of 2, 4, 5.
fn two_values_at_one_slot(bug: Option<PaxosBug>) -> Cluster {
    let mut c = Cluster::with_config(5, move |id| Config { bug, ..Config::new(id) });
    c.elect(1);
    for other in [2, 4, 5] {
        c.cut(1, other);
    }
    assert_eq!(c.paxos_mut(1).propose(cmd("old")).unwrap(), 3);
    c.stabilize();
    c.tick(1, 20);
    assert_ne!(c.paxos(1).role(), Role::Leader, "check-quorum: 1 stepped down");
    c.heal();
    c.isolate(1);
    c.isolate(3);
    for id in [2, 4, 5] {
        c.tick(id, 10); // until 1's lease runs out
    }
    c.elect(2);
    assert_eq!(c.paxos(2).committed(), 3, "2's no-op is chosen at slot 3");
    c.tick(2, 20);
    c.heal();
    for id in [4, 5] {
        c.tick(id, 10); // until 2's lease runs out
    }
    // A first campaign may hit a round already promised to another node; the next outbids it.
    for _ in 0..3 {
        if c.paxos(3).role() != Role::Leader {
            c.paxos_mut(3).campaign();
            c.stabilize();
        }
    }
    assert_eq!(c.leaders(), [3]);
    c.tick_all(2);
    c
}

#[test]
fn a_new_leader_adopts_the_highest_numbered_of_two_accepted_values() {
    let c = two_values_at_one_slot(None);
    for id in 1..=5 {
        assert!(c.state(id).is_empty(), "member {id} applied {:?}: slot 3 is the no-op", c.state(id));
    }
    c.assert_safe();
}

#[test]
fn a_leader_that_keeps_its_own_value_instead_is_caught() {
    let c = two_values_at_one_slot(Some(PaxosBug::ForgetHighestAccepted));
    assert!(!c.violations.is_empty(), "slot 3 applied as both the no-op and \"old\"");
}

#[test]
fn a_restarted_leader_keeps_what_was_chosen() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose(1, "a").unwrap();
    c.restart(1);
    c.restart(2);
    c.restart(3);
    c.elect(2);
    c.propose(2, "b").unwrap();
    c.tick_all(2);
    for id in 1..=3 {
        assert_eq!(c.state(id), ["a", "b"], "member {id}");
    }
    c.assert_safe();
}

#[test]
fn a_lagging_acceptor_catches_up_from_the_log_and_from_a_snapshot() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(3);
    for i in 0..5 {
        c.propose(1, &format!("v{i}")).unwrap();
    }
    c.heal();
    c.tick_all(2);
    assert_eq!(c.state(3).len(), 5, "caught up from the log");
    c.isolate(3);
    for i in 5..10 {
        c.propose(1, &format!("v{i}")).unwrap();
    }
    c.compact(1);
    c.heal();
    c.tick_all(2);
    assert_eq!(c.state(3).len(), 10, "caught up from a snapshot");
    c.assert_safe();
}

#[test]
fn a_member_cut_off_does_not_depose_the_leader_when_it_returns() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(3);
    c.tick_all(40);
    assert_eq!(c.paxos(3).role(), Role::Candidate);
    let before = c.paxos(1).promised();
    c.heal();
    c.tick_all(2);
    assert_eq!(c.leaders(), [1]);
    assert_eq!(c.paxos(1).promised(), before);
    assert_eq!(c.paxos(3).leader(), Some(1));
    c.assert_safe();
}

#[test]
fn dueling_proposers_settle_on_one_leader() {
    let mut c = Cluster::with_config(3, |id| Config { seed: 7, ..Config::new(id) });
    // Everyone campaigns at once, again and again: back-off must let one win.
    for id in 1..=3 {
        c.paxos_mut(id).campaign();
    }
    c.stabilize();
    for _ in 0..100 {
        if c.leaders().len() == 1 {
            break;
        }
        c.tick_all(1);
    }
    assert_eq!(c.leaders().len(), 1);
    let leader = c.leaders()[0];
    c.propose(leader, "x").unwrap();
    c.tick_all(2);
    assert!((1..=3).all(|id| c.state(id) == ["x"]));
    c.assert_safe();
}

#[test]
fn of_two_candidates_of_one_round_the_higher_node_wins_at_once() {
    let mut c = Cluster::new(3);
    c.paxos_mut(2).campaign();
    c.paxos_mut(3).campaign();
    assert_eq!(c.paxos(2).term(), c.paxos(3).term());
    c.stabilize();
    assert_eq!(c.leaders(), [3], "no split: 2 yields its round to 3");
}

#[test]
fn an_acceptor_refuses_a_round_promised_to_another_node() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let promised = c.paxos(2).promised();
    let same_round = Ballot::new(promised.round, 3);
    let m = tally_paxos::multi::Message {
        from: 3,
        to: 2,
        ballot: same_round,
        body: MessageBody::Prepare { commit: 0, force: true },
    };
    c.paxos_mut(2).step(m).unwrap();
    let ready = c.paxos_mut(2).ready();
    c.paxos_mut(2).advance();
    assert!(matches!(ready.messages[..], [tally_paxos::multi::Message { body: MessageBody::Nack { .. }, .. }]));
    assert_eq!(c.paxos(2).promised(), promised);
}

#[test]
fn reads_wait_for_a_quorum_and_the_ballots_first_slot() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose(1, "a").unwrap();
    c.paxos_mut(1).read_index(cmd("r1")).unwrap();
    c.stabilize();
    let index = c.paxos(1).committed();
    assert_eq!(c.members[&1].read_states.last().map(|r| r.index), Some(index));
    c.paxos_mut(2).read_index(cmd("r2")).unwrap();
    c.stabilize();
    assert_eq!(c.members[&2].read_states.last().map(|r| r.ctx.clone()), Some(cmd("r2")));
    // A leader cut off from everyone answers no read.
    c.isolate(1);
    c.paxos_mut(1).read_index(cmd("r3")).unwrap();
    c.stabilize();
    assert!(c.members[&1].read_states.iter().all(|r| r.ctx != cmd("r3")));
}

#[test]
fn members_join_as_learners_then_voters() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose(1, "a").unwrap();
    c.start(4, Default::default());
    c.paxos_mut(1).propose_conf_change(ConfChange::new(vec![ConfChangeOp::AddLearner(4)])).unwrap();
    c.tick_all(3);
    assert!(c.paxos(1).conf_state().learners.contains(&4));
    assert_eq!(c.state(4), ["a"]);
    c.paxos_mut(1).propose_conf_change(ConfChange::new(vec![ConfChangeOp::AddVoter(4)])).unwrap();
    c.tick_all(3);
    assert!(c.paxos(4).conf_state().voters.contains(&4));
    c.isolate(1);
    c.tick_all(40);
    let leaders: Vec<_> = c.leaders().into_iter().filter(|&id| id != 1).collect();
    assert_eq!(leaders.len(), 1, "the other three elect a leader");
    c.propose(leaders[0], "b").unwrap();
    assert_eq!(c.state(4), ["a", "b"]);
    c.assert_safe();
}

#[test]
fn leadership_moves_on_request() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.propose(1, "a").unwrap();
    c.paxos_mut(1).transfer_leader(3).unwrap();
    c.stabilize();
    assert_eq!(c.leaders(), [3]);
    c.propose(3, "b").unwrap();
    c.tick_all(2);
    assert_eq!(c.state(1), ["a", "b"]);
    c.assert_safe();
}
