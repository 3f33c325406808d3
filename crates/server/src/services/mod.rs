//! The etcd v3 gRPC services.

pub mod cluster;
pub mod context;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod watch;
