//! ZooKeeper compatibility for Tally, sans-IO: ZooKeeper's wire records and their jute encoding
//! ([`proto`]), and the replicated ZooKeeper data model, the znode tree and its sessions, as a
//! deterministic state machine ([`tree`]). No sockets, clocks, threads or randomness: time and
//! ids come in as arguments, so the same code runs in the server and in the simulator.
//!
//! The server reads a frame, its [`RequestHeader`](proto::RequestHeader), then
//! [`Request::decode`](proto::Request::decode); a write becomes a [`ZkCommand`] in the Raft log,
//! whose [`ZkState::apply`] at the entry's index yields the reply and the watch events; reads are
//! answered from the replica by [`ZkState::read`].
//!
//! Znodes are a namespace of their own, not keys in the etcd MVCC store. ZooKeeper's tree
//! semantics do not map onto etcd's flat, revisioned keyspace: a parent's cversion and pzxid,
//! sequential names taken from the parent's cversion, ephemeral owners, per-node ACLs and the
//! listing of children all belong to the tree, and etcd clients must not see znodes (nor
//! ZooKeeper clients etcd keys). ClickHouse Keeper made the same choice.

pub mod error;
pub mod proto;
pub mod tree;

pub use error::ZkError;
pub use tree::{Applied, Outcome, WatchEvent, Write, ZkCommand, ZkState};
