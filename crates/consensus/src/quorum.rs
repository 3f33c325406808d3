//! Quorum arithmetic, free of any other Raft state: a voter set and what each voter has
//! acknowledged in, a commit index or an election result out. Joint configurations need a
//! majority of both halves.

use std::collections::{BTreeMap, BTreeSet};

use crate::types::{ConfState, Index, NodeId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    Won,
    Lost,
    Pending,
}

/// The highest value acknowledged by a majority of `voters` (the value at the median position).
/// An empty voter set imposes no constraint, so it returns `u64::MAX` and a joint
/// configuration with an empty outgoing half behaves like its incoming half alone.
pub fn majority_acked(voters: &BTreeSet<NodeId>, acked: impl Fn(NodeId) -> u64) -> u64 {
    if voters.is_empty() {
        return u64::MAX;
    }
    let mut values: Vec<u64> = voters.iter().map(|&id| acked(id)).collect();
    values.sort_unstable_by(|a, b| b.cmp(a));
    values[voters.len() / 2]
}

pub fn majority_vote(voters: &BTreeSet<NodeId>, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
    if voters.is_empty() {
        return VoteResult::Won;
    }
    let granted = voters.iter().filter(|id| votes.get(id) == Some(&true)).count();
    let rejected = voters.iter().filter(|id| votes.get(id) == Some(&false)).count();
    let quorum = voters.len() / 2 + 1;
    if granted >= quorum {
        VoteResult::Won
    } else if voters.len() - rejected < quorum {
        VoteResult::Lost
    } else {
        VoteResult::Pending
    }
}

/// Highest index acknowledged by a quorum of the (possibly joint) configuration.
pub fn committed_index(conf: &ConfState, acked: impl Fn(NodeId) -> Index) -> Index {
    let incoming = majority_acked(&conf.voters, &acked);
    let outgoing = majority_acked(&conf.voters_outgoing, &acked);
    incoming.min(outgoing)
}

/// Whether `members` alone are a quorum of the (possibly joint) configuration.
pub fn is_quorum(conf: &ConfState, members: &[NodeId]) -> bool {
    committed_index(conf, |id| u64::from(members.contains(&id))) > 0
}

pub fn vote_result(conf: &ConfState, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
    let incoming = majority_vote(&conf.voters, votes);
    let outgoing = majority_vote(&conf.voters_outgoing, votes);
    match (incoming, outgoing) {
        (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
        (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
        _ => VoteResult::Pending,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The definition, checked by brute force: the largest value v such that more than half of
    /// the voters acknowledged at least v.
    fn naive_majority_acked(voters: &BTreeSet<NodeId>, acked: &BTreeMap<NodeId, u64>) -> u64 {
        if voters.is_empty() {
            return u64::MAX;
        }
        let candidates: BTreeSet<u64> = voters.iter().map(|id| acked[id]).chain([0]).collect();
        candidates
            .into_iter()
            .filter(|&v| voters.iter().filter(|id| acked[id] >= v).count() * 2 > voters.len())
            .max()
            .unwrap()
    }

    fn naive_vote(voters: &BTreeSet<NodeId>, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
        if voters.is_empty() {
            return VoteResult::Won;
        }
        let yes = voters.iter().filter(|id| votes.get(id) == Some(&true)).count();
        let undecided = voters.iter().filter(|id| !votes.contains_key(id)).count();
        if 2 * yes > voters.len() {
            VoteResult::Won
        } else if 2 * (yes + undecided) > voters.len() {
            VoteResult::Pending
        } else {
            VoteResult::Lost
        }
    }

    fn arb_conf() -> impl Strategy<Value = ConfState> {
        (prop::collection::btree_set(1u64..10, 1..7), prop::collection::btree_set(1u64..10, 0..7))
            .prop_map(|(voters, voters_outgoing)| ConfState { voters, voters_outgoing, ..ConfState::default() })
    }

    proptest! {
        #[test]
        fn committed_index_matches_naive(conf in arb_conf(), acks in prop::collection::vec(0u64..20, 10)) {
            let acked: BTreeMap<NodeId, u64> = (1..10).map(|id| (id, acks[id as usize])).collect();
            let expect = naive_majority_acked(&conf.voters, &acked)
                .min(naive_majority_acked(&conf.voters_outgoing, &acked));
            prop_assert_eq!(committed_index(&conf, |id| acked[&id]), expect);
        }

        #[test]
        fn vote_result_matches_naive(conf in arb_conf(), raw in prop::collection::vec(0u8..3, 10)) {
            let votes: BTreeMap<NodeId, bool> = (1..10u64)
                .filter_map(|id| match raw[id as usize] { 0 => None, 1 => Some((id, true)), _ => Some((id, false)) })
                .collect();
            let (a, b) = (naive_vote(&conf.voters, &votes), naive_vote(&conf.voters_outgoing, &votes));
            let expect = if a == VoteResult::Won && b == VoteResult::Won {
                VoteResult::Won
            } else if a == VoteResult::Lost || b == VoteResult::Lost {
                VoteResult::Lost
            } else {
                VoteResult::Pending
            };
            prop_assert_eq!(vote_result(&conf, &votes), expect);
        }

        #[test]
        fn is_quorum_means_more_than_half_of_each_half(conf in arb_conf(), members in prop::collection::vec(1u64..10, 0..4)) {
            let more_than_half = |voters: &BTreeSet<NodeId>| {
                voters.is_empty() || 2 * voters.iter().filter(|id| members.contains(id)).count() > voters.len()
            };
            let expect = more_than_half(&conf.voters) && more_than_half(&conf.voters_outgoing);
            prop_assert_eq!(is_quorum(&conf, &members), expect);
        }
    }

    #[test]
    fn a_leader_and_one_follower_are_a_quorum_of_three_not_of_five() {
        let three = ConfState { voters: [1, 2, 3].into(), ..ConfState::default() };
        let five = ConfState { voters: [1, 2, 3, 4, 5].into(), ..ConfState::default() };
        assert!(is_quorum(&three, &[1, 2]));
        assert!(!is_quorum(&three, &[1, 1]));
        assert!(!is_quorum(&five, &[1, 2]));
        let with_learner = ConfState { voters: [1, 2, 3].into(), learners: [4].into(), ..ConfState::default() };
        assert!(!is_quorum(&with_learner, &[1, 4]), "a learner's acknowledgement counts for nothing");
    }

    #[test]
    fn joint_commit_needs_both_majorities() {
        let conf = ConfState { voters: [1, 2, 3].into(), voters_outgoing: [3, 4, 5].into(), ..ConfState::default() };
        // 1, 2, 3 acked 10 but only node 3 of the outgoing half did.
        let acked = |id: NodeId| if id <= 3 { 10 } else { 0 };
        assert_eq!(committed_index(&conf, acked), 0);
        let acked = |id: NodeId| if id <= 4 { 10 } else { 0 };
        assert_eq!(committed_index(&conf, acked), 10);
    }
}
