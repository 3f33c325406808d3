//! Multi-Paxos's Ready: the shared batch of work, carrying Paxos messages. The contract is
//! Raft's: Prepares, Accepts, heartbeats, snapshots and refusals go in `messages`; promises and
//! acceptances, which vouch for the promised ballot (`hard_state` as (term, vote) = (round,
//! node)) and the accepted values (`entries`), go in `persisted_messages`.

use crate::multi::Message;

/// See [`tally_consensus::Ready`] for the contract.
pub type Ready = tally_consensus::Ready<Message>;
