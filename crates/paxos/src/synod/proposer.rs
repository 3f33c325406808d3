//! The proposer: phase 1a, then phase 2a with the value the promises allow.

use std::collections::{BTreeMap, BTreeSet};

use tally_consensus::NodeId;

use super::{Message, Proposal, ProposalNumber, SynodBug};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Proposer<V> {
    id: NodeId,
    majority: usize,
    /// The value proposed when no promise carries an accepted one.
    value: V,
    /// The highest round in any number seen, so the next number beats it.
    round_seen: u64,
    phase: Phase<V>,
    bug: Option<SynodBug>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Phase<V> {
    Idle,
    /// Promises so far, with what each acceptor had accepted.
    Preparing {
        number: ProposalNumber,
        promises: BTreeMap<NodeId, Option<Proposal<V>>>,
    },
    Accepting {
        proposal: Proposal<V>,
        accepted_by: BTreeSet<NodeId>,
    },
    /// A majority accepted `0` under one number.
    Chosen(V),
}

impl<V: Clone + PartialEq> Proposer<V> {
    pub fn new(id: NodeId, acceptors: usize, value: V) -> Self {
        Self { id, majority: super::majority(acceptors), value, round_seen: 0, phase: Phase::Idle, bug: None }
    }

    pub fn inject_bug(&mut self, bug: SynodBug) {
        self.bug = Some(bug);
    }

    /// The value this proposer learned is chosen, if any.
    pub fn chosen(&self) -> Option<&V> {
        match &self.phase {
            Phase::Chosen(value) => Some(value),
            _ => None,
        }
    }

    /// The round the next `prepare` will use.
    pub fn next_round(&self) -> u64 {
        self.round_seen + 1
    }

    /// Phase 1a: a new number, above every one seen, to send to all acceptors. Called at start
    /// and again (after a back-off) when a round fails; abandons the current one.
    pub fn prepare(&mut self) -> Message<V> {
        self.round_seen += 1;
        let number = ProposalNumber { round: self.round_seen, proposer: self.id };
        self.phase = Phase::Preparing { number, promises: BTreeMap::new() };
        Message::Prepare { number }
    }

    /// An acceptor's answer. Returns the Accept to send to all acceptors once a majority has
    /// promised. Answers to abandoned numbers, and duplicates, change nothing.
    pub fn on_message(&mut self, from: NodeId, message: Message<V>) -> Option<Message<V>> {
        match message {
            Message::Promise { number, accepted } => self.on_promise(from, number, accepted),
            Message::Accepted(proposal) => {
                self.on_accepted(from, proposal);
                None
            }
            Message::Rejected { promised, .. } => {
                self.round_seen = self.round_seen.max(promised.round);
                None
            }
            Message::Prepare { .. } | Message::Accept(_) => None,
        }
    }

    fn on_promise(
        &mut self,
        from: NodeId,
        number: ProposalNumber,
        accepted: Option<Proposal<V>>,
    ) -> Option<Message<V>> {
        let Phase::Preparing { number: current, promises } = &mut self.phase else { return None };
        if number != *current || promises.contains_key(&from) {
            return None;
        }
        promises.insert(from, accepted);
        if promises.len() < self.majority {
            return None;
        }
        let value = value_to_propose(&self.value, self.bug, promises);
        let proposal = Proposal { number, value };
        self.phase = Phase::Accepting { proposal: proposal.clone(), accepted_by: BTreeSet::new() };
        Some(Message::Accept(proposal))
    }

    fn on_accepted(&mut self, from: NodeId, proposal: Proposal<V>) {
        let Phase::Accepting { proposal: current, accepted_by } = &mut self.phase else { return };
        if proposal.number != current.number {
            return;
        }
        accepted_by.insert(from);
        if accepted_by.len() >= self.majority {
            self.phase = Phase::Chosen(proposal.value);
        }
    }
}

/// The value of the highest-numbered proposal among the promises, else our own: a value that
/// may have been chosen under a lower number is carried forward.
fn value_to_propose<V: Clone>(own: &V, bug: Option<SynodBug>, promises: &BTreeMap<NodeId, Option<Proposal<V>>>) -> V {
    let mut carried = promises.values().flatten();
    let adopted = match bug {
        Some(SynodBug::ForgetHighestAccepted) => None,
        Some(SynodBug::AdoptFirstAccepted) => carried.next(),
        _ => carried.max_by_key(|p| p.number),
    };
    adopted.map_or_else(|| own.clone(), |p| p.value.clone())
}
