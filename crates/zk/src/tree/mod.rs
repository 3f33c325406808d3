//! The replicated ZooKeeper data model: the znode tree and its sessions, changed only by
//! [`ZkState::apply`] of a [`ZkCommand`] at a log index, and read directly by the server.

pub mod acl;
mod apply;
mod children;
mod command;
mod expiry;
mod hash;
mod node;
mod outcome_bytes;
pub mod path;
mod read;
mod session;
mod snapshot;
mod state;
mod tx;
mod write;

pub use acl::digest_id;
pub use apply::{Applied, Outcome, WatchEvent};
pub use command::{Write, ZkCommand};
pub use expiry::is_expired;
pub use node::{NodeKind, NodeStat, Znode, CONTAINER_OWNER, TTL_MAX};
pub use session::{session_id, Session, SESSION_ID_TAG};
pub use snapshot::SnapshotError;
pub use state::ZkState;
