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
