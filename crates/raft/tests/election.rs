//! Leader election, Raft paper section 5.2 and 5.4.1, thesis 9.6 (pre-vote, check-quorum).

mod support;

use support::Network;
use tally_raft::*;

fn no_prevote_no_lease(id: NodeId) -> Config {
    Config { pre_vote: false, check_quorum: false, ..Config::new(id) }
}

#[test]
fn timeouts_elect_exactly_one_leader() {
    let mut net = Network::new(3);
    net.tick_all(40);
    let leaders = net.leaders();
    assert_eq!(leaders.len(), 1, "leaders: {leaders:?}");
    let term = net.node(leaders[0]).term();
    for id in 1..=3 {
        assert_eq!(net.node(id).term(), term);
        assert_eq!(net.node(id).leader(), Some(leaders[0]));
    }
}

#[test]
fn randomized_timeouts_resolve_split_votes_for_many_seeds() {
    for seed in 0..50 {
        let mut net = Network::with_config(5, move |id| Config { seed, ..Config::new(id) });
        let mut ticks = 0;
        while net.leaders().is_empty() {
            net.tick_all(1);
            ticks += 1;
            assert!(ticks < 200, "seed {seed}: no leader after {ticks} ticks");
        }
    }
}

#[test]
fn forced_split_vote_resolves_in_a_later_term() {
    let mut net = Network::with_config(4, no_prevote_no_lease);
    // 1 and 3 campaign at once; 2 only hears 3, 4 only hears 1: two votes each of four.
    net.filter = Some(Box::new(|m| !matches!((m.from, m.to), (1, 2) | (3, 4))));
    net.node_mut(1).campaign();
    net.node_mut(3).campaign();
    net.stabilize();
    assert!(net.leaders().is_empty(), "nobody can have a majority");
    assert_eq!(net.node(1).role(), Role::Candidate);
    net.filter = None;
    let mut ticks = 0;
    while net.leaders().is_empty() {
        net.tick_all(1);
        ticks += 1;
        assert!(ticks < 100);
    }
    assert!(net.node(net.leaders()[0]).term() >= 2);
}

#[test]
fn one_vote_per_term() {
    let mut node = Raft::new(no_prevote_no_lease(3), Persisted::bootstrap([1, 2, 3])).unwrap();
    node.ready();
    node.advance();
    let vote = |from| Message {
        from,
        to: 3,
        term: 2,
        body: MessageBody::Vote { last_index: 1, last_term: 1, transfer: false },
    };
    node.step(vote(1)).unwrap();
    node.step(vote(2)).unwrap();
    let ready = node.ready();
    assert_eq!(ready.hard_state.unwrap().vote, 1);
    let answers: Vec<_> = ready.persisted_messages.iter().map(|m| (m.to, m.body.clone())).collect();
    assert_eq!(
        answers,
        vec![(1, MessageBody::VoteResp { reject: false }), (2, MessageBody::VoteResp { reject: true })]
    );
    assert!(ready.messages.is_empty(), "a vote must not leave before it is durable");
    assert_eq!(ready.vote_refusals, vec![VoteRefusal { to: 2, pre: false, reason: RefusalReason::AlreadyVoted }]);
}

#[test]
fn refusals_say_why() {
    let mut node = Raft::new(no_prevote_no_lease(3), Persisted::bootstrap([1, 2, 3])).unwrap();
    node.ready();
    node.advance();
    let request = |from, term, last_index, pre| Message {
        from,
        to: 3,
        term,
        body: if pre {
            MessageBody::PreVote { last_index, last_term: 0 }
        } else {
            MessageBody::Vote { last_index, last_term: 0, transfer: false }
        },
    };
    // Our log holds the bootstrap entries at term 1: a log ending at term 0 is behind it.
    node.step(request(1, 2, 0, false)).unwrap();
    let ready = node.ready();
    assert_eq!(ready.vote_refusals, vec![VoteRefusal { to: 1, pre: false, reason: RefusalReason::StaleLog }]);
    node.advance();
    node.step(request(2, 1, 9, true)).unwrap();
    let ready = node.ready();
    assert_eq!(ready.vote_refusals, vec![VoteRefusal { to: 2, pre: true, reason: RefusalReason::StaleTerm }]);
    node.advance();
}

#[test]
fn election_restriction_rejects_candidate_with_stale_log() {
    let mut net = Network::with_config(3, no_prevote_no_lease);
    net.elect(1);
    net.isolate(3);
    net.propose(1, "x").unwrap();
    net.heal();
    net.isolate(1);
    net.node_mut(3).campaign();
    net.stabilize();
    assert_ne!(net.node(3).role(), Role::Leader, "2 holds a newer log and must refuse 3");
    assert!(net.count_sent(|m| m.from == 2 && m.body == MessageBody::VoteResp { reject: true }) == 1);
    net.elect(2);
    assert_eq!(net.state(2), vec!["x"]);
}

#[test]
fn rejoining_partitioned_node_does_not_disturb_leader() {
    let mut net = Network::new(3);
    net.elect(1);
    let term = net.node(1).term();
    net.isolate(3);
    net.tick(3, 100);
    assert_eq!(net.node(3).term(), term, "pre-vote keeps an isolated node's term");
    net.heal();
    net.tick_all(30);
    assert_eq!(net.leaders(), vec![1]);
    assert_eq!(net.node(1).term(), term);
}

#[test]
fn follower_in_lease_ignores_higher_term_vote_request() {
    let mut net = Network::new(3);
    net.elect(1);
    let term = net.node(1).term();
    let m = Message {
        from: 3,
        to: 2,
        term: term + 5,
        body: MessageBody::Vote { last_index: 100, last_term: term + 4, transfer: false },
    };
    net.node_mut(2).step(m).unwrap();
    assert_eq!(net.node(2).term(), term);
    assert_eq!(net.node(2).leader(), Some(1));
}

#[test]
fn leader_without_quorum_steps_down() {
    let mut net = Network::new(3);
    net.elect(1);
    net.isolate(1);
    net.tick(1, 2 * Config::new(1).election_tick);
    assert_eq!(net.node(1).role(), Role::Follower);
}

#[test]
fn stale_leader_learns_newer_term_and_steps_down() {
    let mut net = Network::new(3);
    net.elect(1);
    net.isolate(1);
    net.tick_all(40);
    let new_leader = net.leaders().into_iter().find(|&id| id != 1).expect("2 or 3 took over");
    net.heal();
    net.tick_all(5);
    assert_eq!(net.leaders(), vec![new_leader]);
    assert_eq!(net.node(1).leader(), Some(new_leader));
}

#[test]
fn restart_keeps_term_vote_and_log() {
    let mut net = Network::new(3);
    net.elect(1);
    net.propose(1, "a").unwrap();
    let (term, last) = (net.node(2).term(), net.node(2).last_index());
    net.restart(2);
    assert_eq!(net.node(2).term(), term);
    assert_eq!(net.node(2).last_index(), last);
    net.restart(1);
    net.tick_all(40);
    assert_eq!(net.leaders().len(), 1);
    net.propose(net.leaders()[0], "b").unwrap();
    for id in 1..=3 {
        assert_eq!(net.state(id), vec!["a", "b"], "node {id}");
    }
}

#[test]
fn propose_to_follower_names_the_leader() {
    let mut net = Network::new(3);
    net.elect(1);
    assert_eq!(net.propose(2, "x"), Err(ProposeError::NotLeader { leader: Some(1) }));
}

#[test]
fn bad_config_and_misrouted_messages_are_errors() {
    assert_eq!(Raft::new(Config::new(0), Persisted::bootstrap([1])).err(), Some(ConfigError::ZeroId));
    let cfg = Config { election_tick: 2, heartbeat_tick: 2, ..Config::new(1) };
    assert!(matches!(Raft::new(cfg, Persisted::bootstrap([1])), Err(ConfigError::ElectionTick { .. })));
    let mut node = Raft::new(Config::new(1), Persisted::bootstrap([1, 2])).unwrap();
    let m = Message { from: 2, to: 7, term: 1, body: MessageBody::TimeoutNow };
    assert_eq!(node.step(m), Err(StepError::WrongRecipient { to: 7, me: 1 }));
}

fn fast_failover(id: NodeId) -> Config {
    Config { fast_election_ticks: 2, ..Config::new(id) }
}

#[test]
fn reported_connection_reset_elects_in_a_few_ticks() {
    let mut net = Network::with_config(3, fast_failover);
    net.elect(1);
    let term = net.node(1).term();
    // Node 1's process dies: its peers' connections to it reset at once.
    net.isolate(1);
    net.node_mut(2).report_unreachable(1);
    net.node_mut(3).report_unreachable(1);
    let mut ticks = 0;
    while net.leaders().iter().all(|&l| l == 1) {
        net.node_mut(2).tick();
        net.node_mut(3).tick();
        net.stabilize();
        ticks += 1;
        assert!(ticks <= 3, "no new leader within the fast election window");
    }
    assert!(ticks < Config::new(1).election_tick, "faster than an election timeout");
    assert_eq!(net.node(net.leaders().into_iter().find(|&l| l != 1).unwrap()).term(), term + 1);
}

#[test]
fn a_reset_seen_by_one_voter_elects_as_soon_as_the_others_lease_ends() {
    let election_tick = Config::new(1).election_tick;
    for seed in 0..20 {
        let mut net = Network::with_config(3, move |id| Config { seed, ..fast_failover(id) });
        net.elect(1);
        net.isolate(1);
        // Only node 2 sees the reset; node 3 ignores pre-votes until its lease runs out.
        net.node_mut(2).report_unreachable(1);
        let mut ticks = 0;
        while net.leaders().iter().all(|&l| l == 1) {
            net.node_mut(2).tick();
            net.node_mut(3).tick();
            net.stabilize();
            ticks += 1;
            assert!(ticks <= election_tick + 2, "seed {seed}: node 2's quick retries should win right after the lease");
        }
    }
}

#[test]
fn spurious_reset_never_deposes_a_live_leader() {
    let mut net = Network::with_config(3, fast_failover);
    net.elect(1);
    let term = net.node(1).term();
    for _ in 0..20 {
        net.node_mut(2).report_unreachable(1);
        net.tick_all(1);
    }
    assert_eq!(net.leaders(), vec![1]);
    assert_eq!(net.node(1).term(), term, "the pre-votes were ignored by voters holding the lease");
    assert_eq!(net.node(2).leader(), Some(1), "the next heartbeat restored the leader");
}

#[test]
fn resets_about_a_non_leader_or_with_the_feature_off_change_nothing() {
    let mut net = Network::new(3);
    net.elect(1);
    net.node_mut(2).report_unreachable(1);
    assert_eq!(net.node(2).leader(), Some(1), "fast_election_ticks = 0: off");
    let mut net = Network::with_config(3, fast_failover);
    net.elect(1);
    net.node_mut(2).report_unreachable(3);
    assert_eq!(net.node(2).leader(), Some(1));
    let no_lease = Config { check_quorum: false, ..fast_failover(1) };
    assert_eq!(Raft::new(no_lease, Persisted::bootstrap([1])).err(), Some(ConfigError::FastElectionWithoutLease));
}

fn early_suspicion(id: NodeId) -> Config {
    Config { leader_silence_jitter_ticks: 2, ..Config::new(id) }
}

/// Elects node 1, lets its followers hear it for a few ticks, then cuts it off. Returns its term.
fn cut_off_settled_leader(net: &mut Network) -> u64 {
    net.elect(1);
    net.tick_all(5);
    net.isolate(1);
    net.node(1).term()
}

/// Ticks after the leader (node 1) is cut off until node 2 or 3 leads; the survivors tick one
/// after the other, as two processes whose clocks are not in step.
fn ticks_to_replace_leader(config: impl Fn(NodeId) -> Config + 'static) -> u32 {
    let mut net = Network::with_config(3, config);
    cut_off_settled_leader(&mut net);
    for t in 1..=100 {
        net.tick(2, 1);
        net.tick(3, 1);
        if net.leaders().iter().any(|&id| id != 1) {
            return t;
        }
    }
    panic!("no new leader in 100 ticks");
}

#[test]
fn a_silent_leader_is_replaced_soon_after_the_minimum_timeout() {
    let election_tick = Config::new(1).election_tick;
    let mut classic = Vec::new();
    for seed in 0..30 {
        let early = ticks_to_replace_leader(move |id| Config { seed: id + 1000 * seed, ..early_suspicion(id) });
        assert!(early <= election_tick + 2, "seed {seed}: {early} ticks, more than the timeout plus the jitter");
        classic.push(ticks_to_replace_leader(move |id| Config { seed: id + 1000 * seed, ..Config::new(id) }));
    }
    // Without the option the first survivor waits anywhere in [election_tick, 2 * election_tick).
    assert!(classic.iter().any(|&t| t > election_tick + 2), "classic draws: {classic:?}");
}

#[test]
fn early_suspicion_never_deposes_a_live_leader() {
    let mut net = Network::with_config(3, early_suspicion);
    net.elect(1);
    let term = net.node(1).term();
    net.tick_all(300);
    assert_eq!((net.leaders(), net.node(1).term()), (vec![1], term), "a healthy cluster keeps its leader");
    // Node 2 no longer hears the leader and suspects it at every minimum timeout, but node 3
    // does hear it and refuses the pre-votes.
    net.cut(1, 2);
    net.tick_all(300);
    assert_eq!((net.leaders(), net.node(1).term()), (vec![1], term));
    assert!(net.count_sent(|m| matches!(m.body, MessageBody::PreVote { .. })) >= 10, "node 2 did suspect");
    let no_lease = Config { check_quorum: false, ..early_suspicion(1) };
    assert_eq!(Raft::new(no_lease, Persisted::bootstrap([1])).err(), Some(ConfigError::JitterWithoutLease));
}

#[test]
fn survivors_suspecting_together_do_not_split_the_vote() {
    let election_tick = Config::new(1).election_tick;
    for seed in 0..30 {
        let mut net = Network::with_config(3, move |id| Config { seed: id + 1000 * seed, ..early_suspicion(id) });
        let term = cut_off_settled_leader(&mut net);
        // Lockstep ticks: when both survivors time out in the same tick, their pre-votes cross.
        let mut ticks = 0;
        while !net.leaders().iter().any(|&id| id != 1) {
            net.tick_all(1);
            ticks += 1;
            assert!(ticks <= 100, "seed {seed}: no new leader");
        }
        let leader = *net.leaders().iter().find(|&&id| id != 1).unwrap();
        assert_eq!(net.node(leader).term(), term + 1, "seed {seed}: the first election split");
        assert!(ticks <= election_tick + 2, "seed {seed}: {ticks} ticks");
    }
}

#[test]
fn a_survivor_refused_by_a_lease_steps_aside_for_the_next() {
    let election_tick = Config::new(1).election_tick;
    let mut net = Network::with_config(3, early_suspicion);
    let term = cut_off_settled_leader(&mut net);
    // Node 3's clock runs ahead: it suspects the leader while node 2 still holds the lease.
    while net.node(3).role() != Role::PreCandidate {
        net.tick(3, 1);
    }
    assert_eq!(net.node(2).leader(), Some(1), "node 2 refused: the lease holds");
    // Node 3 has the better claim (higher id, same log) but was refused, so it must not block
    // node 2's campaign.
    let mut ticks = 0;
    while !net.leaders().iter().any(|&id| id != 1) {
        net.tick(2, 1);
        ticks += 1;
        assert!(ticks <= election_tick + 2, "node 2 not elected within its timeout");
    }
    assert_eq!((net.leaders(), net.node(2).term()), (vec![1, 2], term + 1));
}
