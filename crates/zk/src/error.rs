//! ZooKeeper's error codes (`KeeperException.Code`), with their exact numbers: clients switch on them.

/// A ZooKeeper error. Success is code 0 and has no variant, so that `Result<T, ZkError>` reads
/// naturally; [`ZkError::code_of`] gives the number a reply header carries either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ZkError {
    #[error("SystemError")]
    SystemError,
    /// Also what a failed multi reports for the ops after the failing one.
    #[error("RuntimeInconsistency")]
    RuntimeInconsistency,
    #[error("DataInconsistency")]
    DataInconsistency,
    #[error("ConnectionLoss")]
    ConnectionLoss,
    /// The request could not be decoded.
    #[error("MarshallingError")]
    MarshallingError,
    #[error("Unimplemented")]
    Unimplemented,
    #[error("OperationTimeout")]
    OperationTimeout,
    /// An invalid path, create mode or TTL.
    #[error("BadArguments")]
    BadArguments,
    #[error("UnknownSession")]
    UnknownSession,
    #[error("NewConfigNoQuorum")]
    NewConfigNoQuorum,
    #[error("ReconfigInProgress")]
    ReconfigInProgress,
    #[error("APIError")]
    ApiError,
    #[error("NoNode")]
    NoNode,
    #[error("NoAuth")]
    NoAuth,
    #[error("BadVersion")]
    BadVersion,
    #[error("NoChildrenForEphemerals")]
    NoChildrenForEphemerals,
    #[error("NodeExists")]
    NodeExists,
    #[error("NotEmpty")]
    NotEmpty,
    #[error("SessionExpired")]
    SessionExpired,
    #[error("InvalidCallback")]
    InvalidCallback,
    #[error("InvalidACL")]
    InvalidAcl,
    #[error("AuthFailed")]
    AuthFailed,
    #[error("SessionMoved")]
    SessionMoved,
    #[error("NotReadOnly")]
    NotReadOnly,
    #[error("EphemeralOnLocalSession")]
    EphemeralOnLocalSession,
    #[error("NoWatcher")]
    NoWatcher,
    #[error("RequestTimeout")]
    RequestTimeout,
    #[error("ReconfigDisabled")]
    ReconfigDisabled,
    #[error("SessionClosedRequireSaslAuth")]
    SessionClosedRequireSasl,
    #[error("QuotaExceeded")]
    QuotaExceeded,
    #[error("Throttled")]
    Throttled,
}

/// The code of success.
pub const OK: i32 = 0;

/// Every error with its code, the one table both directions read.
const CODES: [(ZkError, i32); 31] = [
    (ZkError::SystemError, -1),
    (ZkError::RuntimeInconsistency, -2),
    (ZkError::DataInconsistency, -3),
    (ZkError::ConnectionLoss, -4),
    (ZkError::MarshallingError, -5),
    (ZkError::Unimplemented, -6),
    (ZkError::OperationTimeout, -7),
    (ZkError::BadArguments, -8),
    (ZkError::UnknownSession, -12),
    (ZkError::NewConfigNoQuorum, -13),
    (ZkError::ReconfigInProgress, -14),
    (ZkError::ApiError, -100),
    (ZkError::NoNode, -101),
    (ZkError::NoAuth, -102),
    (ZkError::BadVersion, -103),
    (ZkError::NoChildrenForEphemerals, -108),
    (ZkError::NodeExists, -110),
    (ZkError::NotEmpty, -111),
    (ZkError::SessionExpired, -112),
    (ZkError::InvalidCallback, -113),
    (ZkError::InvalidAcl, -114),
    (ZkError::AuthFailed, -115),
    (ZkError::SessionMoved, -118),
    (ZkError::NotReadOnly, -119),
    (ZkError::EphemeralOnLocalSession, -120),
    (ZkError::NoWatcher, -121),
    (ZkError::RequestTimeout, -122),
    (ZkError::ReconfigDisabled, -123),
    (ZkError::SessionClosedRequireSasl, -124),
    (ZkError::QuotaExceeded, -125),
    (ZkError::Throttled, -127),
];

impl ZkError {
    /// The number on the wire.
    pub fn code(self) -> i32 {
        CODES.iter().find(|(e, _)| *e == self).map(|&(_, c)| c).expect("every variant is in CODES")
    }

    /// The error with this number; `None` for 0 (success) and for numbers ZooKeeper does not define.
    pub fn from_code(code: i32) -> Option<ZkError> {
        CODES.iter().find(|&&(_, c)| c == code).map(|&(e, _)| e)
    }

    /// The code a reply header carries for this outcome.
    pub fn code_of<T>(result: &Result<T, ZkError>) -> i32 {
        result.as_ref().err().map_or(OK, |e| e.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_zookeepers() {
        assert_eq!(ZkError::NoNode.code(), -101);
        assert_eq!(ZkError::NodeExists.code(), -110);
        assert_eq!(ZkError::SessionExpired.code(), -112);
        assert_eq!(ZkError::Throttled.code(), -127);
        assert_eq!(ZkError::code_of::<()>(&Ok(())), 0);
        assert_eq!(ZkError::code_of::<()>(&Err(ZkError::BadVersion)), -103);
    }

    #[test]
    fn codes_round_trip_and_are_distinct() {
        for (e, c) in CODES {
            assert_eq!(ZkError::from_code(c), Some(e));
            assert_eq!(e.code(), c);
        }
        let mut codes: Vec<i32> = CODES.iter().map(|&(_, c)| c).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), CODES.len());
        assert_eq!(ZkError::from_code(0), None);
        assert_eq!(ZkError::from_code(-126), None);
    }
}
