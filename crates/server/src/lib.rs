//! The Tally node: a real server process around the sans-IO core. It persists the core's
//! Ready batches in the write-ahead log, carries messages over TCP to its peers, applies
//! committed commands to the MVCC state machine, and serves the etcd v3 gRPC API.
//!
//! Three layers, each using only the ones below it: `client` (the etcd API clients call),
//! `node` (the driver around the Raft core, the log, the state machine and what it publishes),
//! `peer` (the network between members). `ops` (health, version and metrics over HTTP) reads
//! the client and node layers; `tls` (rustls configurations from etcd's flags, certificates that
//! reload) serves the client, ops and peer layers. `server` wires them into one process.

pub mod client;
pub mod go_duration;
pub mod node;
pub(crate) mod ops;
pub(crate) mod peer;
pub mod server;
pub mod tls;
