//! The learner: a value is chosen once a majority of acceptors accepted it under one number.

use std::collections::{BTreeMap, BTreeSet};

use tally_consensus::NodeId;

use super::{Proposal, ProposalNumber};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Learner<V> {
    majority: usize,
    /// Who accepted each number, and its value (one per number: a number has one proposer,
    /// which sends one value).
    accepted: BTreeMap<ProposalNumber, (V, BTreeSet<NodeId>)>,
    chosen: Option<V>,
}

impl<V: Clone + PartialEq + std::fmt::Debug> Learner<V> {
    pub fn new(acceptors: usize) -> Self {
        Self { majority: super::majority(acceptors), accepted: BTreeMap::new(), chosen: None }
    }

    pub fn chosen(&self) -> Option<&V> {
        self.chosen.as_ref()
    }

    /// Counts `acceptor`'s acceptance; returns the chosen value once there is one.
    pub fn on_accepted(&mut self, acceptor: NodeId, proposal: Proposal<V>) -> Option<&V> {
        let (value, by) =
            self.accepted.entry(proposal.number).or_insert_with(|| (proposal.value.clone(), BTreeSet::new()));
        assert_eq!(
            *value, proposal.value,
            "two values under number {:?}: was a proposal number reused?",
            proposal.number
        );
        by.insert(acceptor);
        if by.len() >= self.majority && self.chosen.is_none() {
            self.chosen = Some(value.clone());
        }
        self.chosen.as_ref()
    }
}
