//! What the whole-node simulation checks beside the core's safety properties, one property
//! per file. Linearizability of the clients' history is checked at the end of a run with the
//! WGL checker in `crate::linearizability`.

pub mod leases;
pub mod observations;
pub mod revisions;
pub mod state_hashes;
pub mod watches;
pub mod zk_pipelines;
pub mod zk_sessions;

pub use crate::checker::Violation;
