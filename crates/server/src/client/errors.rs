//! etcd's gRPC errors, with its exact codes and messages (api/v3rpc/rpctypes), so client
//! retry logic behaves the same against Tally.

use tally_mvcc::MvccError;
use tonic::{Code, Status};

pub fn no_leader() -> Status {
    Status::unavailable("etcdserver: no leader")
}

pub fn timeout() -> Status {
    Status::unavailable("etcdserver: request timed out")
}

pub fn not_leader() -> Status {
    Status::failed_precondition("etcdserver: not leader")
}

pub fn request_too_large() -> Status {
    Status::invalid_argument("etcdserver: request is too large")
}

pub fn from_mvcc(e: &MvccError) -> Status {
    Status::new(Code::from_i32(e.code().as_i32()), e.message())
}

/// A membership change refused by the node, in etcd's words.
pub fn from_refusal(r: &tally_node::Refusal) -> Status {
    Status::new(Code::from_i32(r.code.as_i32()), r.message)
}

/// The services Tally serves, by their full gRPC names.
const SERVICES: [&str; 8] = [
    "etcdserverpb.Auth",
    "etcdserverpb.KV",
    "etcdserverpb.Watch",
    "etcdserverpb.Lease",
    "etcdserverpb.Cluster",
    "etcdserverpb.Maintenance",
    "v3lockpb.Lock",
    "v3electionpb.Election",
];

/// grpc-go's answer to a call of a method or service the server does not have (what etcd says):
/// tonic gives the same code with no message.
pub fn unknown_method(path: &str) -> Status {
    let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or((path, ""));
    if SERVICES.contains(&service) {
        Status::unimplemented(format!("unknown method {method} for service {service}"))
    } else {
        Status::unimplemented(format!("unknown service {service}"))
    }
}
