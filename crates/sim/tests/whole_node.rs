//! The whole-node simulation: the production node stays correct under faults, and each planted
//! bug of the node's I/O ordering, forwarding, reads and leases is caught by some check.

use tally_node::{ConsensusKind, NodeBug};
use tally_paxos::multi::PaxosBug;
use tally_raft::InjectedBug;
use tally_sim::whole::{run_whole_seed, WholeOptions};

#[test]
fn the_production_node_passes_every_check() {
    for seed in 0..40 {
        let report = run_whole_seed(WholeOptions::new(seed));
        assert!(report.violations.is_empty(), "seed {seed}: {:?}", report.violations);
        assert!(report.operations > 0, "seed {seed} ran no client operation");
    }
}

#[test]
fn the_production_node_on_multi_paxos_passes_every_check() {
    for seed in 0..40 {
        let report = run_whole_seed(WholeOptions { consensus: ConsensusKind::Paxos, ..WholeOptions::new(seed) });
        assert!(report.violations.is_empty(), "seed {seed}: {:?}", report.violations);
        assert!(report.operations > 0, "seed {seed} ran no client operation");
    }
}

/// The first seed (of at most `seeds`) whose run with `planted` (a bug) reports a violation, and
/// what it was.
fn first_caught_with(seeds: u64, planted: impl Fn(WholeOptions) -> WholeOptions) -> Option<(u64, &'static str)> {
    (0..seeds).find_map(|seed| {
        run_whole_seed(planted(WholeOptions::new(seed))).violations.first().map(|v| (seed, v.property))
    })
}

/// The first seed (of at most `seeds`) whose Multi-Paxos run with `bug` reports a violation.
fn first_caught_paxos(bug: PaxosBug, seeds: u64) -> Option<(u64, &'static str)> {
    first_caught_with(seeds, |o| WholeOptions { consensus: ConsensusKind::Paxos, paxos_bug: Some(bug), ..o })
}

#[test]
fn a_paxos_acceptor_accepting_below_its_promise_is_caught() {
    assert!(first_caught_paxos(PaxosBug::AcceptBelowPromise, 120).is_some());
}

#[test]
fn a_paxos_leader_forgetting_the_highest_accepted_value_is_caught() {
    assert!(first_caught_paxos(PaxosBug::ForgetHighestAccepted, 120).is_some());
}

#[test]
fn a_paxos_acceptor_answering_before_persisting_is_caught() {
    assert!(first_caught_paxos(PaxosBug::AnswerBeforePersist, 170).is_some());
}

/// The first seed (of at most `seeds`) whose run with `bug` reports a violation, and what it was.
fn first_caught(bug: NodeBug, seeds: u64) -> Option<(u64, &'static str)> {
    first_caught_with(seeds, |o| WholeOptions { bug: Some(bug), ..o })
}

#[test]
fn answering_a_write_before_it_is_durable_on_a_quorum_is_caught() {
    let caught = first_caught(NodeBug::AnswerBeforeFsync, 100);
    // An answered write later lost: a key-value client sees it as a history no order explains,
    // a pipelining ZooKeeper client as its acknowledged write never applied.
    let lost = ["linearizability", "an acknowledged pipelined write applied"];
    assert!(caught.is_some_and(|(_, property)| lost.contains(&property)), "{caught:?}");
}

#[test]
fn leaving_a_changed_vote_unsynced_is_caught() {
    assert!(first_caught(NodeBug::LazyVote, 200).is_some());
}

#[test]
fn a_leader_losing_forwarded_writes_is_caught() {
    let caught = first_caught(NodeBug::DropForwarded, 20);
    assert!(matches!(caught, Some((_, "a healthy cluster answers every request"))), "{caught:?}");
}

#[test]
fn serving_a_linearizable_read_without_read_index_is_caught() {
    let caught = first_caught(NodeBug::ReadWithoutReadIndex, 100);
    assert!(matches!(caught, Some((_, "linearizability"))), "{caught:?}");
}

#[test]
fn a_read_index_missing_what_followers_committed_by_hint_is_caught() {
    // A rare interleaving: seed 320 is the first to catch it (3 of the first 3,000 seeds).
    let caught =
        first_caught_with(400, |o| WholeOptions { raft_bug: Some(InjectedBug::ReadIndexIgnoresFollowerCommits), ..o });
    assert!(matches!(caught, Some((_, "linearizability"))), "{caught:?}");
}

#[test]
fn expiring_leases_early_after_a_leader_change_is_caught() {
    let caught = first_caught(NodeBug::NoLeaseGraceOnPromote, 50);
    assert!(matches!(caught, Some((_, "a kept-alive lease never expires"))), "{caught:?}");
}

#[test]
fn expiring_zookeeper_sessions_after_a_leader_change_is_caught() {
    let caught = first_caught(NodeBug::NoZkSessionGraceOnPromote, 50);
    assert!(matches!(caught, Some((_, "a session never expires while its client is heard from"))), "{caught:?}");
}

/// Bugs the whole-node simulation found, replayed by their seeds.
#[test]
fn found_a_write_covered_by_a_leader_snapshot_still_answers_its_caller() {
    // A follower got entry 66, then the leader's snapshot at 67 instead of entries 66-67 and
    // their commit: its callers of 66 and 67 were never answered (fixed: answered from the
    // snapshot's client sessions). Found as seeds 3790 and 3938; since the simulator's clients
    // changed, seed 2962 is the one of 0..5000 that fails without the fix (replayed without
    // the pipelining ZooKeeper clients that came later).
    let report = run_whole_seed(WholeOptions { zk_pipelines: false, ..WholeOptions::new(2962) });
    assert!(report.violations.is_empty(), "seed 2962: {:?}", report.violations);
}

#[test]
fn found_a_member_removed_while_cut_off_still_learns_it() {
    // A member partitioned away while it was removed, following a leader that had left too,
    // heard from nobody again and never answered its clients' reads. `tally server` tells a
    // removed peer so over TCP, which the simulator did not model (now
    // `world/removal_notice.rs`). Found as seed 2470, then 8478 once the model changed.
    let report = run_whole_seed(WholeOptions::new(8478));
    assert!(report.violations.is_empty(), "seed 8478: {:?}", report.violations);
}

#[test]
fn zookeeper_pipelines_keep_their_order_through_a_small_exactly_once_table() {
    // With room for 4 clients, the table evicts ZooKeeper connections between their writes. A
    // write that followed a lost one of an evicted connection applied, and so did a retry of
    // one that applied before the eviction (fixed: a connection the table does not know has
    // only the first attempt of its first write applied; `out_of_order`).
    for seed in 0..60 {
        let report = run_whole_seed(WholeOptions { sessions_max: Some(4), ..WholeOptions::new(seed) });
        assert!(report.violations.is_empty(), "seed {seed}: {:?}", report.violations);
        assert!(report.operations > 0, "seed {seed} ran no client operation");
    }
}
