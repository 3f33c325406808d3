//! The network between members: connections, message framing, and snapshot streams.

pub mod frame;
pub mod link;
pub mod snapshot_stream;
pub mod traffic;
pub mod transport;
