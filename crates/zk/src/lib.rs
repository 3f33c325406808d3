//! ZooKeeper compatibility for Tally, sans-IO: ZooKeeper's wire records and their jute encoding
//! ([`proto`]), and the replicated ZooKeeper data model, the znode tree and its sessions, as a
//! deterministic state machine ([`tree`]). No sockets, clocks, threads or randomness: time and
//! ids come in as arguments, so the same code runs in the server and in the simulator.

pub mod error;
pub mod proto;

pub use error::ZkError;
