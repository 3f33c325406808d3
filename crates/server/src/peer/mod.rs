//! The network between members: connections, message framing, and snapshot streams. All it
//! tells the node goes through one sink (`events`).

pub(crate) mod direct;
pub(crate) mod events;
pub(crate) mod frame;
pub(crate) mod link;
pub(crate) mod snapshot_stream;
pub(crate) mod traffic;
pub(crate) mod transport;
pub(crate) mod unpack;
