//! Sessions as the tree knows them: created and closed through the log, so every replica agrees
//! on which sessions own ephemerals. Keep-alives are not replicated: the leader's session clock
//! times sessions out and proposes their close, as etcd's lessor does with leases.

use crate::proto::PASSWORD_LEN;

/// The high byte of every session id. ZooKeeper puts its server id there; one fixed byte is
/// enough for us because the rest, the log index of the CreateSession entry, is unique across
/// the cluster. Not 0x80 or 0xff, which mark containers and TTL nodes in `ephemeralOwner`.
pub const SESSION_ID_TAG: i64 = 0x01 << 56;

/// Largest log index that still yields a session id.
pub const SESSION_ZXID_MAX: i64 = (1 << 56) - 1;

/// The id of the session created by the log entry at `zxid`.
pub fn session_id(zxid: i64) -> i64 {
    assert!((1..=SESSION_ZXID_MAX).contains(&zxid), "session ids need a log index in 1..2^56, got {zxid}");
    SESSION_ID_TAG | zxid
}

/// A live session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    /// The negotiated timeout, for the leader's session clock.
    pub timeout_ms: i32,
    /// The password a reconnecting client must present, from the server that created the session.
    pub password: [u8; PASSWORD_LEN],
    /// The connection the session was last attached on, or 0 while it is on the connection
    /// that created it: a write from any other connection is SessionMoved.
    pub owner: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_carry_the_index_under_a_fixed_tag() {
        assert_eq!(session_id(7), 0x0100_0000_0000_0007);
        assert_eq!(session_id(SESSION_ZXID_MAX), 0x01ff_ffff_ffff_ffff);
    }

    #[test]
    #[should_panic(expected = "session ids need a log index")]
    fn index_zero_has_no_session_id() {
        session_id(0);
    }
}
