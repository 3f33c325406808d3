//! Single-decree Paxos (the synod), as the seeds state it: proposers, acceptors and learners
//! agreeing on one value.
//!
//! - Phase 1a: a proposer picks a proposal number higher than any it has seen and sends
//!   `Prepare(n)` to the acceptors ([`Proposer::prepare`]).
//! - Phase 1b: an acceptor that has seen no number as high as `n` promises never to accept a
//!   lower one, and sends back the highest-numbered proposal it has accepted, if any
//!   ([`Acceptor::on_prepare`]).
//! - Phase 2a: with promises from a majority, the proposer sends `Accept(n, v)`, where `v` is the
//!   value of the highest-numbered proposal among the promises, or its own value if none
//!   carried one ([`Proposer::on_message`]).
//! - Phase 2b: an acceptor accepts unless it has promised a higher number
//!   ([`Acceptor::on_accept`]); learners count acceptances, and a value accepted by a majority
//!   under one number is chosen ([`Learner::on_accepted`]).
//!
//! Sans-IO: each call returns the message to send; an acceptor's state must be durable before
//! its answer leaves. `tests/synod_model.rs` model-checks it exhaustively with stateright; the
//! log engine (`multi`) runs the same phases for many slots at once.

mod acceptor;
mod learner;
mod message;
mod proposer;

pub use acceptor::Acceptor;
pub use learner::Learner;
pub use message::{Message, Proposal, ProposalNumber};
pub use proposer::Proposer;

/// A deliberately wrong behaviour, switched on only by tests, to prove the model check finds
/// it. Never set outside tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SynodBug {
    /// An acceptor accepts a proposal numbered below its promise.
    AcceptBelowPromise,
    /// A proposer proposes its own value even when a promise carried an accepted one.
    ForgetHighestAccepted,
    /// A proposer adopts the value of any promise that carries one (the lowest acceptor id's),
    /// not the highest-numbered.
    AdoptFirstAccepted,
}

/// The number of acceptors that makes a majority of `acceptors`.
pub fn majority(acceptors: usize) -> usize {
    acceptors / 2 + 1
}
