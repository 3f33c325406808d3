//! Errors a caller of either engine handles: not the leader, a pending change, a bad message.

use thiserror::Error;

use crate::types::NodeId;

/// Why a proposal was refused. The caller retries elsewhere or later; nothing was appended.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ProposeError {
    #[error("this node is not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    #[error("a leadership transfer is in progress")]
    TransferInProgress,
    #[error("a configuration change is already pending")]
    ConfChangePending,
    #[error("invalid configuration change: {0}")]
    InvalidConfChange(#[from] ConfChangeError),
}

/// Why a configuration change cannot be applied to the current configuration.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ConfChangeError {
    #[error("the configuration is joint; leave it before starting another change")]
    AlreadyJoint,
    #[error("the configuration is not joint; there is nothing to leave")]
    NotJoint,
    #[error("the change leaves no voter")]
    NoVoters,
    #[error("node id 0 is reserved")]
    ZeroId,
    #[error("malformed configuration change entry")]
    Malformed,
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ReadIndexError {
    #[error("no known leader to serve the read")]
    NoLeader,
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum TransferError {
    #[error("this node is not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    #[error("node {0} is not a voter")]
    NotVoter(NodeId),
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum StepError {
    #[error("message for node {to} delivered to node {me}")]
    WrongRecipient { to: NodeId, me: NodeId },
    #[error("a {0} message reached a member running another consensus engine")]
    WrongEngine(&'static str),
}
