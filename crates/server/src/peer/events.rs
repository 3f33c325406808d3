//! What the peer network tells the node, and the one sink it all goes through.

use std::sync::atomic::AtomicU64;
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
    /// A peer's connection, after its hello, for the sink's thread to read from now on (only
    /// to a sink made with [`PeerEvents::adopting`]).
    Connection(Handover),
}

/// An inbound peer connection handed over after its hello (see `peer::direct`).
pub struct Handover {
    pub from: NodeId,
    /// Non-blocking.
    pub stream: std::net::TcpStream,
    /// Counts the bytes received on it.
    pub received: Arc<AtomicU64>,
    /// Whether a peer was removed from the cluster (it is refused, and told so).
    pub is_removed: Arc<dyn Fn(NodeId) -> bool + Send + Sync>,
}

impl std::fmt::Debug for Handover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handover").field("from", &self.from).field("stream", &self.stream).finish_non_exhaustive()
    }
}

/// The sink for [`Inbound`] events, shared by the sending side (`Transport`) and the receiving
/// side (`listen`) so that the node hears the peer network through one path. It is called from
/// tokio tasks and the driver's thread, so it must not block.
#[derive(Clone)]
pub struct PeerEvents {
    sink: Arc<dyn Fn(Inbound) + Send + Sync>,
    adopts: bool,
}

impl PeerEvents {
    /// A sink that hears every message as an event.
    pub fn new(sink: impl Fn(Inbound) + Send + Sync + 'static) -> Self {
        Self { sink: Arc::new(sink), adopts: false }
    }

    /// A sink that takes unencrypted inbound connections over after their hello
    /// ([`Inbound::Connection`]) and reads their messages itself.
    pub fn adopting(sink: impl Fn(Inbound) + Send + Sync + 'static) -> Self {
        Self { sink: Arc::new(sink), adopts: true }
    }

    pub fn adopts(&self) -> bool {
        self.adopts
    }

    pub fn report(&self, event: Inbound) {
        (self.sink)(event)
    }
}
