//! The one catalogue of the errors Tally answers clients with: etcd's, each with its exact
//! gRPC status code and message (etcd's `api/v3rpc/rpctypes`), whichever part of Tally refuses
//! (the state machine, the member's membership logic or the server). The server only turns
//! them into gRPC statuses.

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

/// An error returned to a client, from etcd's catalogue (and one of Tally's own,
/// [`MvccError::StaleSequence`]). `Display` (and [`MvccError::message`]) is etcd's exact gRPC
/// status message; [`MvccError::code`] its status code.
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
    /// (its response is no longer cached), or a ZooKeeper write that skips one of its connection's
    /// (it follows a lost write). etcd has no equivalent.
    #[error("tally: request sequence number is older than the client's last applied request")]
    StaleSequence,
    /// `rpctypes.ErrGRPCNoSpace`: the NOSPACE alarm is raised (or this write would raise it).
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    /// `rpctypes.ErrGRPCCorrupt`: the CORRUPT alarm is raised.
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
    /// `rpctypes.ErrGRPCRootUserNotExist`.
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    /// `rpctypes.ErrGRPCRootRoleNotExist`.
    #[error("etcdserver: root user does not have root role")]
    RootRoleNotExist,
    /// `rpctypes.ErrGRPCUserAlreadyExist`.
    #[error("etcdserver: user name already exists")]
    UserAlreadyExist,
    /// `rpctypes.ErrGRPCUserEmpty`: also what a request without credentials gets when auth is on.
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    /// `rpctypes.ErrGRPCUserNotFound`.
    #[error("etcdserver: user name not found")]
    UserNotFound,
    /// `rpctypes.ErrGRPCRoleAlreadyExist`.
    #[error("etcdserver: role name already exists")]
    RoleAlreadyExist,
    /// `rpctypes.ErrGRPCRoleNotFound`.
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    /// `rpctypes.ErrGRPCRoleEmpty`.
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    /// `rpctypes.ErrGRPCAuthFailed`.
    #[error("etcdserver: authentication failed, invalid user ID or password")]
    AuthFailed,
    /// etcd's `auth.ErrNoPasswordUser`, which its gRPC layer passes on as `Unknown` with this text.
    #[error("auth: authentication failed, password was given for no password user")]
    NoPasswordUser,
    /// `rpctypes.ErrGRPCPermissionNotGiven`.
    #[error("etcdserver: permission not given")]
    PermissionNotGiven,
    /// `rpctypes.ErrGRPCPermissionDenied`.
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    /// `rpctypes.ErrGRPCRoleNotGranted`.
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    /// `rpctypes.ErrGRPCPermissionNotGranted`.
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    /// `rpctypes.ErrGRPCAuthNotEnabled`.
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,
    /// `rpctypes.ErrGRPCInvalidAuthToken`.
    #[error("etcdserver: invalid auth token")]
    InvalidAuthToken,
    /// `rpctypes.ErrGRPCInvalidAuthMgmt`.
    #[error("etcdserver: invalid auth management")]
    InvalidAuthMgmt,
    /// `rpctypes.ErrGRPCAuthOldRevision`: the credentials predate a change of users or roles.
    #[error("etcdserver: revision of auth store is old")]
    AuthOldRevision,
    /// `rpctypes.ErrGRPCRequestTooLarge`: a request past `--max-request-bytes`.
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    /// `rpctypes.ErrGRPCNoLeader`.
    #[error("etcdserver: no leader")]
    NoLeader,
    /// `rpctypes.ErrGRPCNotLeader`: what only the leader does, asked of another member.
    #[error("etcdserver: not leader")]
    NotLeader,
    /// `rpctypes.ErrGRPCTimeout`: also a membership change asked while another is in flight.
    #[error("etcdserver: request timed out")]
    Timeout,
    /// `rpctypes.ErrGRPCStopped`.
    #[error("etcdserver: server stopped")]
    Stopped,
    /// `rpctypes.ErrGRPCUnhealthy`: adding a voter would leave too few started members.
    #[error("etcdserver: unhealthy cluster")]
    Unhealthy,
    /// `rpctypes.ErrGRPCBadLeaderTransferee`.
    #[error("etcdserver: bad leader transferee")]
    BadLeaderTransferee,
    /// etcd's `ErrTimeoutLeaderTransfer`: a leadership transfer that did not complete in time.
    #[error("etcdserver: request timed out, leader transfer took too long")]
    TimeoutLeaderTransfer,
    /// `rpctypes.ErrGRPCPeerURLExist`.
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExist,
    /// `rpctypes.ErrGRPCMemberNotFound`.
    #[error("etcdserver: member not found")]
    MemberNotFound,
    /// etcd's `ErrIDRemoved`: a member id once removed cannot come back.
    #[error("etcdserver: ID removed")]
    IdRemoved,
    /// `rpctypes.ErrGRPCTooManyLearners`.
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    /// `rpctypes.ErrGRPCMemberNotEnoughStarted`: removing a voter would leave too few started members.
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    MemberNotEnoughStarted,
    /// `rpctypes.ErrGRPCMemberNotLearner`.
    #[error("etcdserver: can only promote a learner member")]
    MemberNotLearner,
    /// `rpctypes.ErrGRPCLearnerNotReady`.
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
}

/// Every error, in tag order (tags are 1-based positions; new errors go at the end, so that
/// snapshots keep their meaning). Only the state machine's errors are ever written.
const ALL: [MvccError; 47] = [
    MvccError::EmptyKey,
    MvccError::KeyNotFound,
    MvccError::ValueProvided,
    MvccError::LeaseProvided,
    MvccError::TooManyOps,
    MvccError::DuplicateKey,
    MvccError::Compacted,
    MvccError::FutureRev,
    MvccError::LeaseNotFound,
    MvccError::LeaseExists,
    MvccError::LeaseTtlTooLarge,
    MvccError::StaleSequence,
    MvccError::NoSpace,
    MvccError::Corrupt,
    MvccError::RootUserNotExist,
    MvccError::RootRoleNotExist,
    MvccError::UserAlreadyExist,
    MvccError::UserEmpty,
    MvccError::UserNotFound,
    MvccError::RoleAlreadyExist,
    MvccError::RoleNotFound,
    MvccError::RoleEmpty,
    MvccError::AuthFailed,
    MvccError::NoPasswordUser,
    MvccError::PermissionNotGiven,
    MvccError::PermissionDenied,
    MvccError::RoleNotGranted,
    MvccError::PermissionNotGranted,
    MvccError::AuthNotEnabled,
    MvccError::InvalidAuthToken,
    MvccError::InvalidAuthMgmt,
    MvccError::AuthOldRevision,
    MvccError::RequestTooLarge,
    MvccError::NoLeader,
    MvccError::NotLeader,
    MvccError::Timeout,
    MvccError::Stopped,
    MvccError::Unhealthy,
    MvccError::BadLeaderTransferee,
    MvccError::TimeoutLeaderTransfer,
    MvccError::PeerUrlExist,
    MvccError::MemberNotFound,
    MvccError::IdRemoved,
    MvccError::TooManyLearners,
    MvccError::MemberNotEnoughStarted,
    MvccError::MemberNotLearner,
    MvccError::LearnerNotReady,
];

impl MvccError {
    /// etcd's exact error message (the gRPC status message).
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// etcd's auth package's own text for this error, which some of etcd's calls pass on
    /// untranslated (`auth: ...`); other errors keep their message.
    pub fn auth_package_text(&self) -> String {
        match self {
            MvccError::UserEmpty => "auth: user name is empty".into(),
            MvccError::UserNotFound => "auth: user not found".into(),
            MvccError::PermissionDenied => "auth: permission denied".into(),
            MvccError::InvalidAuthToken => "auth: invalid auth token".into(),
            MvccError::AuthOldRevision => "auth: revision in header is old".into(),
            other => other.message(),
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
            | MvccError::DuplicateKey
            | MvccError::RequestTooLarge => GrpcCode::InvalidArgument,
            MvccError::Compacted | MvccError::FutureRev | MvccError::LeaseTtlTooLarge => GrpcCode::OutOfRange,
            MvccError::LeaseNotFound | MvccError::MemberNotFound => GrpcCode::NotFound,
            MvccError::LeaseExists | MvccError::StaleSequence => GrpcCode::FailedPrecondition,
            MvccError::NoSpace => GrpcCode::ResourceExhausted,
            MvccError::Corrupt => GrpcCode::DataLoss,
            MvccError::RootUserNotExist
            | MvccError::RootRoleNotExist
            | MvccError::UserAlreadyExist
            | MvccError::UserNotFound
            | MvccError::RoleAlreadyExist
            | MvccError::RoleNotFound
            | MvccError::RoleNotGranted
            | MvccError::PermissionNotGranted
            | MvccError::AuthNotEnabled => GrpcCode::FailedPrecondition,
            MvccError::UserEmpty
            | MvccError::RoleEmpty
            | MvccError::AuthFailed
            | MvccError::PermissionNotGiven
            | MvccError::InvalidAuthMgmt
            | MvccError::AuthOldRevision => GrpcCode::InvalidArgument,
            MvccError::NoPasswordUser => GrpcCode::Unknown,
            MvccError::PermissionDenied => GrpcCode::PermissionDenied,
            MvccError::InvalidAuthToken => GrpcCode::Unauthenticated,
            MvccError::NoLeader | MvccError::Timeout | MvccError::Stopped | MvccError::Unhealthy => {
                GrpcCode::Unavailable
            }
            MvccError::NotLeader
            | MvccError::BadLeaderTransferee
            | MvccError::PeerUrlExist
            | MvccError::IdRemoved
            | MvccError::TooManyLearners
            | MvccError::MemberNotEnoughStarted
            | MvccError::MemberNotLearner
            | MvccError::LearnerNotReady => GrpcCode::FailedPrecondition,
            MvccError::TimeoutLeaderTransfer => GrpcCode::DeadlineExceeded,
        }
    }

    /// A stable one-byte tag (used by the snapshot format): its 1-based place in `ALL`.
    pub(crate) fn tag(&self) -> u8 {
        ALL.iter().position(|e| e == self).expect("every error is in ALL") as u8 + 1
    }

    pub(crate) fn from_tag(tag: u8) -> Option<MvccError> {
        ALL.get(usize::from(tag).checked_sub(1)?).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_message_and_tags_round_trip() {
        for t in 1..=ALL.len() as u8 {
            let e = MvccError::from_tag(t).unwrap();
            assert_eq!(e.tag(), t);
            assert_eq!(e.to_string(), e.message());
        }
        assert!(MvccError::from_tag(0).is_none());
        assert!(MvccError::from_tag(ALL.len() as u8 + 1).is_none());
        assert_eq!(MvccError::PermissionDenied.code().as_i32(), 7);
        assert_eq!(MvccError::InvalidAuthToken.code().as_i32(), 16);
        assert_eq!(MvccError::Compacted.code().as_i32(), 11);
        assert_eq!(MvccError::LeaseNotFound.code().as_i32(), 5);
        assert_eq!(MvccError::KeyNotFound.code(), GrpcCode::InvalidArgument);
    }

    /// Messages and codes the server and the membership logic answered with before they came
    /// here, as etcd words them (clients match on them).
    #[test]
    fn server_and_membership_errors_keep_etcds_words() {
        use GrpcCode::{DeadlineExceeded, FailedPrecondition, InvalidArgument, NotFound, Unavailable};
        for (e, code, message) in [
            (MvccError::RequestTooLarge, InvalidArgument, "etcdserver: request is too large"),
            (MvccError::NoLeader, Unavailable, "etcdserver: no leader"),
            (MvccError::NotLeader, FailedPrecondition, "etcdserver: not leader"),
            (MvccError::Timeout, Unavailable, "etcdserver: request timed out"),
            (MvccError::Stopped, Unavailable, "etcdserver: server stopped"),
            (MvccError::Unhealthy, Unavailable, "etcdserver: unhealthy cluster"),
            (MvccError::BadLeaderTransferee, FailedPrecondition, "etcdserver: bad leader transferee"),
            (
                MvccError::TimeoutLeaderTransfer,
                DeadlineExceeded,
                "etcdserver: request timed out, leader transfer took too long",
            ),
            (MvccError::PeerUrlExist, FailedPrecondition, "etcdserver: Peer URLs already exists"),
            (MvccError::MemberNotFound, NotFound, "etcdserver: member not found"),
            (MvccError::IdRemoved, FailedPrecondition, "etcdserver: ID removed"),
            (MvccError::TooManyLearners, FailedPrecondition, "etcdserver: too many learner members in cluster"),
            (
                MvccError::MemberNotEnoughStarted,
                FailedPrecondition,
                "etcdserver: re-configuration failed due to not enough started members",
            ),
            (MvccError::MemberNotLearner, FailedPrecondition, "etcdserver: can only promote a learner member"),
            (
                MvccError::LearnerNotReady,
                FailedPrecondition,
                "etcdserver: can only promote a learner member which is in sync with leader",
            ),
        ] {
            assert_eq!((e.code(), e.message().as_str()), (code, message), "{e:?}");
        }
    }

    /// Snapshots store errors by tag: the state machine's must keep theirs.
    #[test]
    fn state_machine_tags_are_stable() {
        assert_eq!(MvccError::EmptyKey.tag(), 1);
        assert_eq!(MvccError::StaleSequence.tag(), 12);
        assert_eq!(MvccError::AuthOldRevision.tag(), 32);
    }
}
