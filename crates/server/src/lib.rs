pub mod cluster;
pub mod codec;
pub mod persist;
pub mod transport;
