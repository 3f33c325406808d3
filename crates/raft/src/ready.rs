//! Raft's Ready: the shared batch of work, carrying Raft's messages.

use crate::message::Message;

/// See [`tally_consensus::Ready`] for the contract.
pub type Ready = tally_consensus::Ready<Message>;
