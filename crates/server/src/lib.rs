//! The Tally node: a real server process around the sans-IO core. It persists the core's
//! Ready batches in the write-ahead log, carries messages over TCP to its peers, applies
//! committed commands to the MVCC state machine, and serves the etcd v3 gRPC API.

pub mod client_api;
pub mod client_conn;
pub mod cluster;
pub mod codec;
pub mod driver;
pub mod errors;
pub mod grpc_frame;
mod grpc_unary;
pub mod lease_clock;
pub mod members;
pub mod peer_frame;
pub mod peer_link;
pub mod persist;
pub mod request_ids;
pub mod require_leader;
pub mod server;
pub mod services;
pub mod snapshot_stream;
pub mod transport;
pub mod watch_hub;
