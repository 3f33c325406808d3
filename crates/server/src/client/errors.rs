//! etcd's errors as gRPC statuses: the catalogue ([`MvccError`], with etcd's exact codes and
//! messages) turned into tonic's [`Status`], so client retry logic behaves the same against
//! Tally. Besides it only grpc-go's own answer to an unknown method.

use tally_mvcc::MvccError;
use tonic::{Code, Status};

/// The gRPC status of an error of etcd's catalogue.
pub fn from_mvcc(e: &MvccError) -> Status {
    Status::new(Code::from_i32(e.code().as_i32()), e.message())
}

/// [`MvccError::NoLeader`].
pub fn no_leader() -> Status {
    from_mvcc(&MvccError::NoLeader)
}

/// [`MvccError::Timeout`].
pub fn timeout() -> Status {
    from_mvcc(&MvccError::Timeout)
}

/// [`MvccError::NotLeader`].
pub fn not_leader() -> Status {
    from_mvcc(&MvccError::NotLeader)
}

/// [`MvccError::RequestTooLarge`].
pub fn request_too_large() -> Status {
    from_mvcc(&MvccError::RequestTooLarge)
}

/// [`MvccError::Stopped`].
pub fn stopped() -> Status {
    from_mvcc(&MvccError::Stopped)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What these statuses were, spelled out, before they came from the catalogue.
    #[test]
    fn statuses_keep_etcds_codes_and_messages() {
        for (status, code, message) in [
            (no_leader(), Code::Unavailable, "etcdserver: no leader"),
            (timeout(), Code::Unavailable, "etcdserver: request timed out"),
            (not_leader(), Code::FailedPrecondition, "etcdserver: not leader"),
            (request_too_large(), Code::InvalidArgument, "etcdserver: request is too large"),
            (stopped(), Code::Unavailable, "etcdserver: server stopped"),
            (from_mvcc(&MvccError::MemberNotFound), Code::NotFound, "etcdserver: member not found"),
            (from_mvcc(&MvccError::InvalidAuthToken), Code::Unauthenticated, "etcdserver: invalid auth token"),
        ] {
            assert_eq!((status.code(), status.message()), (code, message));
        }
    }
}
