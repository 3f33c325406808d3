//! The checkers must bite: with a deliberately injected bug in the core, the simulator finds a
//! violation within a bounded number of seeds. A checker that cannot fail proves nothing.

use tally_raft::InjectedBug;
use tally_sim::{run_seed, Mix, SimOptions};

/// Runs seeds `0..seeds_max` and returns the first that reports a violation of `property`.
fn first_catch(bug: InjectedBug, mix: Mix, property: &str, seeds_max: u64) -> Option<u64> {
    (0..seeds_max).find(|&seed| {
        let opts = SimOptions { mix: Some(mix), nodes: Some(5), bug: Some(bug), ..SimOptions::new(seed) };
        run_seed(opts).violations.iter().any(|v| v.property == property)
    })
}

#[test]
fn skipping_the_election_restriction_loses_committed_entries() {
    let seed = first_catch(InjectedBug::SkipElectionRestriction, Mix::Crashes, "leader completeness", 50);
    assert!(seed.is_some(), "no leader completeness violation in 50 seeds");
}

#[test]
fn committing_previous_term_entries_by_counting_is_caught() {
    // Raft paper Figure 8. Rare by nature: the bug matters only when a new leader's old-term
    // entry reaches a quorum before its own no-op does.
    let seed = first_catch(InjectedBug::CommitPreviousTermByCounting, Mix::Churn, "commit safety", 1_000);
    assert!(seed.is_some(), "no commit safety violation in 1000 seeds");
}

#[test]
fn voting_twice_in_a_term_is_caught() {
    let seed = first_catch(InjectedBug::VoteTwicePerTerm, Mix::Churn, "one vote per term", 50);
    assert!(seed.is_some());
}

#[test]
fn answering_votes_before_they_are_durable_elects_two_leaders() {
    let seed = first_catch(InjectedBug::VoteBeforePersist, Mix::Churn, "election safety", 1_000);
    assert!(seed.is_some(), "no election safety violation in 1000 seeds");
}

#[test]
fn answering_a_followers_read_without_a_quorum_returns_stale_values() {
    // Five members, so that the leader and the asker are not a quorum by themselves.
    let seed = first_catch(InjectedBug::FollowerReadsWithoutQuorum, Mix::Partitions, "linearizability", 1_000);
    assert!(seed.is_some(), "no linearizability violation in 1000 seeds");
}
