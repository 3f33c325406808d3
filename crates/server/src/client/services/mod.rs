//! The etcd v3 gRPC services.

pub mod auth;
pub mod cluster;
pub mod context;
pub mod election;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod quota;
mod read_query;
pub mod recipe;
pub mod watch;
