//! Ballots: the proposal numbers of Multi-Paxos, one per leadership attempt.

use tally_consensus::{HardState, Index, NodeId};

/// A proposal number: a round, made unique by the node that leads it. Ordered by round, then
/// node.
///
/// An acceptor promises each round to one node only, as a Raft voter votes once per term (see
/// [`Ballot::admitted_by`]). So every value accepted in a round was proposed by that round's
/// one leader, and a log entry records its ballot by the round alone (`Entry::term`), which
/// keeps the log in the same durable format as Raft's. A proposer that loses a round moves to
/// a higher one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ballot {
    pub round: u64,
    pub node: NodeId,
}

impl Ballot {
    pub fn new(round: u64, node: NodeId) -> Self {
        Self { round, node }
    }

    /// Whether an acceptor that promised `promised` may promise or accept `self`: a higher
    /// round, or the very ballot it promised. The same round from another node is refused.
    pub fn admitted_by(self, promised: Ballot) -> bool {
        self.round > promised.round || self == promised
    }

    /// The durable form: the promise is Raft's (term, vote) pair.
    pub fn hard_state(self, commit: Index) -> HardState {
        HardState { term: self.round, vote: self.node, commit }
    }

    pub fn from_hard_state(hs: &HardState) -> Self {
        Self { round: hs.term, node: hs.vote }
    }
}

impl std::fmt::Display for Ballot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({}, {:x})", self.round, self.node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_is_promised_to_one_node() {
        let promised = Ballot::new(3, 1);
        assert!(Ballot::new(3, 1).admitted_by(promised));
        assert!(!Ballot::new(3, 2).admitted_by(promised), "same round, other node");
        assert!(!Ballot::new(2, 9).admitted_by(promised));
        assert!(Ballot::new(4, 0).admitted_by(promised));
    }

    #[test]
    fn ballots_order_by_round_then_node() {
        assert!(Ballot::new(2, 1) < Ballot::new(2, 5));
        assert!(Ballot::new(2, 5) < Ballot::new(3, 1));
    }
}
