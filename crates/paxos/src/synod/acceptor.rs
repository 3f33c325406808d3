//! The acceptor: phases 1b and 2b. Its two fields are all that must survive a crash.

use super::{Message, Proposal, ProposalNumber, SynodBug};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Acceptor<V> {
    /// The highest number promised or accepted; durable.
    promised: Option<ProposalNumber>,
    /// The highest-numbered proposal accepted; durable.
    accepted: Option<Proposal<V>>,
    bug: Option<SynodBug>,
}

impl<V> Default for Acceptor<V> {
    fn default() -> Self {
        Self { promised: None, accepted: None, bug: None }
    }
}

impl<V: Clone> Acceptor<V> {
    /// An acceptor restarted from its durable state.
    pub fn restore(promised: Option<ProposalNumber>, accepted: Option<Proposal<V>>) -> Self {
        Self { promised, accepted, bug: None }
    }

    pub fn inject_bug(&mut self, bug: SynodBug) {
        self.bug = Some(bug);
    }

    pub fn promised(&self) -> Option<ProposalNumber> {
        self.promised
    }

    pub fn accepted(&self) -> Option<&Proposal<V>> {
        self.accepted.as_ref()
    }

    /// Phase 1b: promise `number` if it is higher than every number seen so far. The caller
    /// makes the new promise durable before it sends the answer.
    pub fn on_prepare(&mut self, number: ProposalNumber) -> Message<V> {
        if let Some(promised) = self.promised.filter(|&p| number <= p) {
            return Message::Rejected { number, promised };
        }
        self.promised = Some(number);
        Message::Promise { number, accepted: self.accepted.clone() }
    }

    /// Phase 2b: accept unless a higher number was promised. The caller makes the accepted
    /// proposal durable before it sends the answer.
    pub fn on_accept(&mut self, proposal: Proposal<V>) -> Message<V> {
        let below_promise = self.promised.is_some_and(|p| proposal.number < p);
        if below_promise && self.bug != Some(SynodBug::AcceptBelowPromise) {
            let promised = self.promised.expect("a promise to be below");
            return Message::Rejected { number: proposal.number, promised };
        }
        // Accepting n is also a promise not to accept below n.
        self.promised = self.promised.max(Some(proposal.number));
        self.accepted = Some(proposal.clone());
        Message::Accepted(proposal)
    }
}
