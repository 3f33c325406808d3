//! What one received `PeerBatch` frame tells the node, whoever reads the connection (a tokio
//! task for an encrypted one, the driver's thread for a plain one).

use std::io;

use tally_node::paxos_codec;
use tally_proto::tally_v1::{PeerBatch, PeerRejection};
use tally_proto::Message as _;
use tally_raft::NodeId;

use crate::peer::events::Inbound;
use crate::peer::frame as peer_frame;

/// What the reader of the connection does after a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Unpacked {
    /// Its messages were reported; read on.
    Delivered,
    /// The peer told us we were removed (reported): the connection ends.
    WeWereRemoved,
    /// The sender was removed from the cluster: send it [`rejection_frame`], then close.
    SenderRemoved,
}

/// Reports the messages and forwarded commands of the frame `payload` from `from`, in order.
pub fn unpack(
    from: NodeId,
    payload: &[u8],
    is_removed: &dyn Fn(NodeId) -> bool,
    report: &mut dyn FnMut(Inbound),
) -> io::Result<Unpacked> {
    let mut batch = PeerBatch::decode(payload).map_err(|e| invalid(format!("bad frame: {e}")))?;
    if let Some(rejection) = batch.rejected {
        report(Inbound::Rejected(rejection.reason));
        return Ok(Unpacked::WeWereRemoved);
    }
    if is_removed(from) {
        // Removed after this connection opened: it must hear it, or it would wait for a
        // leader forever.
        return Ok(Unpacked::SenderRemoved);
    }
    let messages = paxos_codec::batch_messages(&mut batch);
    if messages.iter().any(|m| m.from() != from) {
        return Err(invalid("a message from another sender".into()));
    }
    for m in messages {
        report(Inbound::Message(m));
    }
    for cmd in batch.forwarded {
        report(Inbound::Forwarded(cmd));
    }
    Ok(Unpacked::Delivered)
}

/// The frame that tells a removed member so.
pub fn rejection_frame(removed: NodeId) -> Vec<u8> {
    peer_frame::encode(&PeerRejection { reason: format!("member {removed:x} was removed from the cluster") })
}

pub fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}
