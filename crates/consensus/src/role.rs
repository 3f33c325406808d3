//! What a member is and knows right now, as both engines report it to the driver.

use bytes::Bytes;

use crate::types::{Index, NodeId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// Volatile state worth reporting (not persisted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftState {
    pub role: Role,
    pub leader: Option<NodeId>,
}

/// A linearizable read point: once the state machine has applied `index`, a read tagged `ctx`
/// may be served from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadState {
    pub index: Index,
    pub ctx: Bytes,
}
