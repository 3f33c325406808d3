//! One Tally member as a deterministic state machine. [`Node`] owns the consensus engine (Raft,
//! or Multi-Paxos; see [`engine`]), the
//! write-ahead log, the MVCC state machine, the callers waiting for their writes and reads,
//! the leader's lease clock and the member's snapshots, and handles each Ready in the order
//! the core's contract requires: send the leader's messages, persist, send the rest, apply,
//! answer. Everything it cannot decide by itself comes from a [`Host`]: the time, the file
//! system under the log, the network, the thread that writes snapshots. `tally server` hosts
//! it on a thread with TCP and the real disk; the simulator hosts the very same code in
//! virtual time over simulated links and a disk that loses what was not synced.

pub mod cluster;
pub mod codec;
pub mod engine;
pub mod histogram;
mod host;
pub mod leases;
pub mod members;
pub mod membership;
pub mod metrics;
mod node;
pub mod observe;
mod outcomes;
pub mod paxos_codec;
pub mod persist;
pub mod reads;
mod ready;
pub mod request_ids;
mod snapshot_schedule;
pub mod snapshots;
mod zk_nodes;
mod zk_sessions;

pub use engine::{ConsensusKind, Engine, PeerMessage};
pub use host::{Host, Reply};
pub use membership::{MembershipOutcome, MembershipRequest};
pub use node::{Node, NodeBug, NodeConfig};
pub use outcomes::{LeaseOutcome, ProposeOutcome, ReadOutcome, Shared, StatusInfo};
pub use snapshots::{encode_snapshot, Retired, SnapshotJob};
