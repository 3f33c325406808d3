//! Proposal numbers, proposals and the messages of the two phases.

use tally_consensus::NodeId;

/// A proposal number, unique because the proposer's id breaks ties between equal rounds.
/// Ordered by round, then proposer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProposalNumber {
    pub round: u64,
    pub proposer: NodeId,
}

/// A value under a proposal number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Proposal<V> {
    pub number: ProposalNumber,
    pub value: V,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Message<V> {
    /// Phase 1a, proposer to acceptors.
    Prepare { number: ProposalNumber },
    /// Phase 1b, acceptor to proposer: the promise, with the highest-numbered proposal the
    /// acceptor has accepted.
    Promise { number: ProposalNumber, accepted: Option<Proposal<V>> },
    /// Phase 2a, proposer to acceptors.
    Accept(Proposal<V>),
    /// Phase 2b, acceptor to proposer and learners.
    Accepted(Proposal<V>),
    /// Not among the seed's four: tells a proposer that `number` lost to `promised`, so it can
    /// try a higher number at once instead of waiting for a timeout. Safety does not depend on it.
    Rejected { number: ProposalNumber, promised: ProposalNumber },
}
