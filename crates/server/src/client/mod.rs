//! What clients reach: the HTTP/2 server, the etcd gRPC services, and the gRPC plumbing
//! between them (framing, the unary fast path, errors, `WithRequireLeader`).

pub mod api;
pub mod auth;
pub mod conn;
pub mod errors;
pub mod grpc_frame;
pub mod grpc_metrics;
mod grpc_unary;
pub mod require_leader;
pub mod services;
