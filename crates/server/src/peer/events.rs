//! What the peer network tells the node, and the one sink it all goes through.

use std::sync::Arc;

use tally_node::PeerMessage;
use tally_proto::tally_v1::Command;
use tally_raft::NodeId;

/// Everything the peer network tells the node. What one connection reports arrives in the
/// order it happened.
#[derive(Debug)]
pub enum Inbound {
    /// A peer's Raft message (a snapshot once it arrived whole).
    Message(PeerMessage),
    /// A follower's client command, for us to propose if we lead.
    Forwarded(Command),
    /// A peer says we were removed from the cluster.
    Rejected(String),
    /// A connection with the peer closed, reset or was refused: its process died or
    /// restarted. A silent network says nothing; only the election timeout notices that.
    ConnectionLost(NodeId),
    /// The transfer of a snapshot to `peer` ended; `ok` if it received all of it (the core
    /// sends a failed one again).
    SnapshotDone { peer: NodeId, ok: bool },
}

/// The sink for [`Inbound`] events, shared by the sending side (`Transport`) and the receiving
/// side (`listen`) so that the node hears the peer network through one path. It is called from
/// tokio tasks and the driver's thread, so it must not block.
#[derive(Clone)]
pub struct PeerEvents(Arc<dyn Fn(Inbound) + Send + Sync>);

impl PeerEvents {
    pub fn new(sink: impl Fn(Inbound) + Send + Sync + 'static) -> Self {
        Self(Arc::new(sink))
    }

    pub fn report(&self, event: Inbound) {
        (self.0)(event)
    }
}
