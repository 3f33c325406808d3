//! The synod, model-checked: stateright explores every reachable state of 3 acceptors and 2
//! proposers (each with its own value) on a network that loses, duplicates and reorders
//! messages.
//!
//! The network is the set of every message sent. Delivering one leaves it there, so it may be
//! delivered again (duplication) in any order (reordering); a message never delivered is lost.
//! The checker visits every interleaving, so every pattern of loss is among them: the states
//! of the acceptors and proposers reached are exactly those of a network that drops messages.

use std::collections::BTreeSet;

use stateright::{Checker, HasDiscoveries, Model, Property};
use tally_consensus::NodeId;
use tally_paxos::synod::{Acceptor, Learner, Message, Proposal, Proposer, SynodBug};

const ACCEPTORS: [NodeId; 3] = [1, 2, 3];
/// Each proposer's id, its own value, and how many proposal numbers it may try: three numbers
/// in all, (1, 11) < (1, 12) < (2, 11), enough for a value to be carried across two others.
const PROPOSERS: [(NodeId, char, u64); 2] = [(11, 'a', 2), (12, 'b', 1)];

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Envelope {
    from: NodeId,
    to: NodeId,
    message: Message<char>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct State {
    acceptors: Vec<Acceptor<char>>,
    proposers: Vec<Proposer<char>>,
    network: BTreeSet<Envelope>,
    /// Every acceptance ever made, as (acceptor, proposal): what is chosen is defined by these,
    /// not by what the acceptors hold now.
    acceptances: BTreeSet<(NodeId, Proposal<char>)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Action {
    /// Proposer `0` (an index) starts phase 1 with a new number, abandoning its current one.
    Prepare(usize),
    Deliver(Envelope),
}

struct Synod {
    bug: Option<SynodBug>,
}

impl Model for Synod {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let mut acceptors = vec![Acceptor::default(); ACCEPTORS.len()];
        let mut proposers: Vec<_> = PROPOSERS.iter().map(|&(id, v, _)| Proposer::new(id, ACCEPTORS.len(), v)).collect();
        if let Some(bug) = self.bug {
            acceptors.iter_mut().for_each(|a| a.inject_bug(bug));
            proposers.iter_mut().for_each(|p| p.inject_bug(bug));
        }
        vec![State { acceptors, proposers, network: BTreeSet::new(), acceptances: BTreeSet::new() }]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        for (i, proposer) in state.proposers.iter().enumerate() {
            if proposer.chosen().is_none() && proposer.next_round() <= PROPOSERS[i].2 {
                actions.push(Action::Prepare(i));
            }
        }
        actions.extend(state.network.iter().cloned().map(Action::Deliver));
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut state = last.clone();
        match action {
            Action::Prepare(i) => {
                let prepare = state.proposers[i].prepare();
                broadcast(&mut state.network, PROPOSERS[i].0, prepare);
            }
            Action::Deliver(Envelope { from, to, message }) => deliver(&mut state, from, to, message),
        }
        (state != *last).then_some(state)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("at most one value is chosen", |_, s: &State| chosen(s).len() <= 1),
            Property::always("a proposer learns only the chosen value", |_, s: &State| {
                let chosen = chosen(s);
                s.proposers.iter().filter_map(|p| p.chosen()).all(|v| chosen.contains(v))
            }),
            Property::always("a learner of every acceptance learns only the chosen value", |_, s: &State| {
                let mut learner = Learner::new(ACCEPTORS.len());
                for (acceptor, proposal) in &s.acceptances {
                    learner.on_accepted(*acceptor, proposal.clone());
                }
                learner.chosen().is_none_or(|v| chosen(s).contains(v))
            }),
            Property::sometimes("a's value is chosen", |_, s: &State| chosen(s).contains(&'a')),
            Property::sometimes("b's value is chosen", |_, s: &State| chosen(s).contains(&'b')),
            Property::sometimes("a value is carried forward under another proposer's number", |_, s: &State| {
                s.acceptances
                    .iter()
                    .any(|(_, p)| PROPOSERS.iter().any(|&(id, v, _)| v == p.value && id != p.number.proposer))
            }),
        ]
    }
}

fn deliver(state: &mut State, from: NodeId, to: NodeId, message: Message<char>) {
    if let Some(i) = ACCEPTORS.iter().position(|&id| id == to) {
        let answer = match message {
            Message::Prepare { number } => state.acceptors[i].on_prepare(number),
            Message::Accept(proposal) => state.acceptors[i].on_accept(proposal),
            _ => return,
        };
        match &answer {
            Message::Accepted(proposal) => _ = state.acceptances.insert((to, proposal.clone())),
            // A refusal only hurries a proposer to a higher number; with each proposer's numbers
            // bounded, it adds states and no behaviour, so the model loses every one.
            Message::Rejected { .. } => return,
            _ => {}
        }
        state.network.insert(Envelope { from: to, to: from, message: answer });
    } else if let Some(i) = PROPOSERS.iter().position(|&(id, _, _)| id == to) {
        if let Some(accept) = state.proposers[i].on_message(from, message) {
            broadcast(&mut state.network, to, accept);
        }
    }
}

fn broadcast(network: &mut BTreeSet<Envelope>, from: NodeId, message: Message<char>) {
    for &to in &ACCEPTORS {
        network.insert(Envelope { from, to, message: message.clone() });
    }
}

/// The values a majority of acceptors accepted under one number, counted naively.
fn chosen(state: &State) -> BTreeSet<char> {
    let majority = ACCEPTORS.len() / 2 + 1;
    let proposals: BTreeSet<&Proposal<char>> = state.acceptances.iter().map(|(_, p)| p).collect();
    proposals
        .into_iter()
        .filter(|p| state.acceptances.iter().filter(|(_, q)| q == *p).count() >= majority)
        .map(|p| p.value)
        .collect()
}

/// Depth-first: the stack holds one path, where breadth-first would hold a whole frontier.
fn check(bug: Option<SynodBug>) -> impl Checker<Synod> {
    let checker = Synod { bug }.checker().threads(2);
    let checker = if bug.is_some() { checker.finish_when(HasDiscoveries::AnyFailures) } else { checker };
    checker.spawn_dfs().join()
}

#[test]
fn every_reachable_state_chooses_at_most_one_value() {
    let checker = check(None);
    checker.assert_properties();
    eprintln!("synod: {} states, every property holds", checker.unique_state_count());
}

fn counterexample(bug: SynodBug) -> usize {
    let checker = check(Some(bug));
    let path = checker.discovery("at most one value is chosen").unwrap_or_else(|| panic!("{bug:?} was not caught"));
    path.into_actions().len()
}

#[test]
fn accepting_below_the_promise_chooses_two_values() {
    assert!(counterexample(SynodBug::AcceptBelowPromise) > 0);
}

#[test]
fn forgetting_the_highest_accepted_value_chooses_two_values() {
    assert!(counterexample(SynodBug::ForgetHighestAccepted) > 0);
}

#[test]
fn adopting_the_first_accepted_value_not_the_highest_chooses_two_values() {
    assert!(counterexample(SynodBug::AdoptFirstAccepted) > 0);
}
