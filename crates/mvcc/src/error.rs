//! Errors with etcd's exact client-visible messages and gRPC status codes.

/// gRPC status codes (numbering as in `google.golang.org/grpc/codes`), so that callers can build a status
/// without this crate depending on tonic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum GrpcCode {
    /// Not an error.
    Ok = 0,
    /// The operation was cancelled.
    Cancelled = 1,
    /// Unknown error.
    Unknown = 2,
    /// The client specified an invalid argument.
    InvalidArgument = 3,
    /// The deadline expired.
    DeadlineExceeded = 4,
    /// A requested entity was not found.
    NotFound = 5,
    /// The entity already exists.
    AlreadyExists = 6,
    /// The caller lacks permission.
    PermissionDenied = 7,
    /// A resource has been exhausted.
    ResourceExhausted = 8,
    /// The system is not in a state required for the operation.
    FailedPrecondition = 9,
    /// The operation was aborted.
    Aborted = 10,
    /// The operation was attempted past the valid range.
    OutOfRange = 11,
    /// Not implemented.
    Unimplemented = 12,
    /// Internal error.
    Internal = 13,
    /// The service is unavailable.
    Unavailable = 14,
    /// Unrecoverable data loss.
    DataLoss = 15,
    /// Missing or invalid authentication.
    Unauthenticated = 16,
}

impl GrpcCode {
    /// The numeric code, as carried in a gRPC status.
    pub fn as_i32(self) -> i32 {
        self as i32
    }
}

/// An error returned to a client. `Display` (and [`MvccError::message`]) is etcd's exact gRPC status message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum MvccError {
    /// `rpctypes.ErrGRPCEmptyKey`.
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// `rpctypes.ErrGRPCKeyNotFound` (put with ignore_value/ignore_lease on an absent key; empty txn op).
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// `rpctypes.ErrGRPCValueProvided` (ignore_value with a value).
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// `rpctypes.ErrGRPCLeaseProvided` (ignore_lease with a lease).
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// `rpctypes.ErrGRPCTooManyOps`.
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    /// `rpctypes.ErrGRPCDuplicateKey`.
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// `rpctypes.ErrGRPCCompacted`.
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    /// `rpctypes.ErrGRPCFutureRev`.
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRev,
    /// `rpctypes.ErrGRPCLeaseNotFound`.
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// `rpctypes.ErrGRPCLeaseExist`.
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    /// `rpctypes.ErrGRPCLeaseTTLTooLarge`.
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    /// Tally-specific: a command whose sequence number is older than the last one applied for its client
    /// (its response is no longer cached). etcd has no equivalent.
    #[error("tally: request sequence number is older than the client's last applied request")]
    StaleSequence,
    /// `rpctypes.ErrGRPCNoSpace`: the NOSPACE alarm is raised (or this write would raise it).
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    /// `rpctypes.ErrGRPCCorrupt`: the CORRUPT alarm is raised.
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
}

impl MvccError {
    /// etcd's exact error message (the gRPC status message).
    pub fn message(&self) -> &'static str {
        match self {
            MvccError::EmptyKey => "etcdserver: key is not provided",
            MvccError::KeyNotFound => "etcdserver: key not found",
            MvccError::ValueProvided => "etcdserver: value is provided",
            MvccError::LeaseProvided => "etcdserver: lease is provided",
            MvccError::TooManyOps => "etcdserver: too many operations in txn request",
            MvccError::DuplicateKey => "etcdserver: duplicate key given in txn request",
            MvccError::Compacted => "etcdserver: mvcc: required revision has been compacted",
            MvccError::FutureRev => "etcdserver: mvcc: required revision is a future revision",
            MvccError::LeaseNotFound => "etcdserver: requested lease not found",
            MvccError::LeaseExists => "etcdserver: lease already exists",
            MvccError::LeaseTtlTooLarge => "etcdserver: too large lease TTL",
            MvccError::StaleSequence => {
                "tally: request sequence number is older than the client's last applied request"
            }
            MvccError::NoSpace => "etcdserver: mvcc: database space exceeded",
            MvccError::Corrupt => "etcdserver: corrupt cluster",
        }
    }

    /// The gRPC status code etcd returns with this error.
    pub fn code(&self) -> GrpcCode {
        match self {
            MvccError::EmptyKey
            | MvccError::KeyNotFound
            | MvccError::ValueProvided
            | MvccError::LeaseProvided
            | MvccError::TooManyOps
            | MvccError::DuplicateKey => GrpcCode::InvalidArgument,
            MvccError::Compacted | MvccError::FutureRev | MvccError::LeaseTtlTooLarge => GrpcCode::OutOfRange,
            MvccError::LeaseNotFound => GrpcCode::NotFound,
            MvccError::LeaseExists | MvccError::StaleSequence => GrpcCode::FailedPrecondition,
            MvccError::NoSpace => GrpcCode::ResourceExhausted,
            MvccError::Corrupt => GrpcCode::DataLoss,
        }
    }

    /// A stable one-byte tag (used by the snapshot format).
    pub(crate) fn tag(&self) -> u8 {
        match self {
            MvccError::EmptyKey => 1,
            MvccError::KeyNotFound => 2,
            MvccError::ValueProvided => 3,
            MvccError::LeaseProvided => 4,
            MvccError::TooManyOps => 5,
            MvccError::DuplicateKey => 6,
            MvccError::Compacted => 7,
            MvccError::FutureRev => 8,
            MvccError::LeaseNotFound => 9,
            MvccError::LeaseExists => 10,
            MvccError::LeaseTtlTooLarge => 11,
            MvccError::StaleSequence => 12,
            MvccError::NoSpace => 13,
            MvccError::Corrupt => 14,
        }
    }

    pub(crate) fn from_tag(tag: u8) -> Option<MvccError> {
        Some(match tag {
            1 => MvccError::EmptyKey,
            2 => MvccError::KeyNotFound,
            3 => MvccError::ValueProvided,
            4 => MvccError::LeaseProvided,
            5 => MvccError::TooManyOps,
            6 => MvccError::DuplicateKey,
            7 => MvccError::Compacted,
            8 => MvccError::FutureRev,
            9 => MvccError::LeaseNotFound,
            10 => MvccError::LeaseExists,
            11 => MvccError::LeaseTtlTooLarge,
            12 => MvccError::StaleSequence,
            13 => MvccError::NoSpace,
            14 => MvccError::Corrupt,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_message_and_tags_round_trip() {
        for t in 1..=12u8 {
            let e = MvccError::from_tag(t).unwrap();
            assert_eq!(e.tag(), t);
            assert_eq!(e.to_string(), e.message());
        }
        assert!(MvccError::from_tag(0).is_none());
        assert_eq!(MvccError::Compacted.code().as_i32(), 11);
        assert_eq!(MvccError::LeaseNotFound.code().as_i32(), 5);
        assert_eq!(MvccError::KeyNotFound.code(), GrpcCode::InvalidArgument);
    }
}
