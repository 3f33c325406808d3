//! The Tally process: a member's deterministic logic (`tally_node::Node`: the core, the log, the
//! state machine) run on a thread with the real clock and disk, TCP to its peers, and the etcd
//! v3 gRPC API for clients.
//!
//! Three layers, each using only the ones below it: `client` (the etcd API clients call),
//! `node` (the driver thread running the `Node`, the watch hub it publishes to, backups),
//! `peer` (the network between members). `ops` (health, version and metrics over HTTP) reads
//! the client and node layers; `ui` (the live view of Raft: the embedded page and the event
//! stream the driver publishes to) and `zk` (ZooKeeper's client protocol over the same log) are
//! served beside it; `tls` (rustls configurations from
//! etcd's flags, certificates that reload) serves the client, ops and peer layers. `server`
//! wires them into one process.

pub mod client;
pub mod go_duration;
pub mod node;
pub(crate) mod ops;
pub(crate) mod peer;
pub mod server;
pub mod tls;
pub mod ui;
pub mod zk;
