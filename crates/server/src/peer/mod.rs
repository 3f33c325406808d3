//! The network between members: connections, message framing, and snapshot streams. All it
//! tells the node goes through one sink (`events`).

pub mod events;
pub mod frame;
pub mod link;
pub mod snapshot_stream;
pub mod traffic;
pub mod transport;
