//! The session handshake: the first frame each way on a connection, before any header.
//!
//! Both records end with a `readOnly` boolean that clients older than 3.4 neither send nor expect;
//! a reader takes it when present, as ZooKeeper's server does.

use super::jute::{DecodeError, Jute, Reader, Writer};

/// Length of a session password.
pub const PASSWORD_LEN: usize = 16;

/// A client's connect: a new session (`session_id` 0) or a reconnect to an existing one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    /// The last zxid the client saw; the server must not serve it an older state.
    pub last_zxid_seen: i64,
    /// The session timeout the client asks for, in milliseconds.
    pub timeout_ms: i32,
    pub session_id: i64,
    /// Zeros for a new session; the password the server issued for a reconnect.
    pub password: Vec<u8>,
    /// Whether the client accepts a read-only server.
    pub read_only: bool,
}

/// The server's answer: the negotiated timeout and the session's id and password. A refused
/// reconnect answers session 0 and timeout 0 and then closes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub password: Vec<u8>,
    /// Whether this server is read-only.
    pub read_only: bool,
}

/// The trailing `readOnly`, or false when the peer did not send it.
fn optional_bool(r: &mut Reader<'_>) -> Result<bool, DecodeError> {
    if r.remaining() == 0 {
        Ok(false)
    } else {
        r.bool()
    }
}

impl Jute for ConnectRequest {
    fn put(&self, w: &mut Writer) {
        w.int(self.protocol_version);
        w.long(self.last_zxid_seen);
        w.int(self.timeout_ms);
        w.long(self.session_id);
        w.write(&self.password);
        w.bool(self.read_only);
    }

    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ConnectRequest {
            protocol_version: r.int()?,
            last_zxid_seen: r.long()?,
            timeout_ms: r.int()?,
            session_id: r.long()?,
            password: r.read()?,
            read_only: optional_bool(r)?,
        })
    }
}

impl Jute for ConnectResponse {
    fn put(&self, w: &mut Writer) {
        w.int(self.protocol_version);
        w.int(self.timeout_ms);
        w.long(self.session_id);
        w.write(&self.password);
        w.bool(self.read_only);
    }

    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ConnectResponse {
            protocol_version: r.int()?,
            timeout_ms: r.int()?,
            session_id: r.long()?,
            password: r.read()?,
            read_only: optional_bool(r)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::jute::{decode, encode};

    /// What the Java client sends for a new session with a 30 s timeout, after seeing zxid 0x10:
    /// 4 + 8 + 4 + 8 + (4 + 16) + 1 bytes.
    #[test]
    fn java_clients_new_session_connect_byte_for_byte() {
        let request = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0x10,
            timeout_ms: 30_000,
            session_id: 0,
            password: vec![0; PASSWORD_LEN],
            read_only: false,
        };
        let mut expected = vec![0, 0, 0, 0];
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0x10]);
        expected.extend_from_slice(&[0, 0, 0x75, 0x30]);
        expected.extend_from_slice(&[0; 8]);
        expected.extend_from_slice(&[0, 0, 0, 16]);
        expected.extend_from_slice(&[0; 16]);
        expected.push(0);
        let bytes = encode(&request);
        assert_eq!(bytes.len(), 45);
        assert_eq!(bytes, expected);
        assert_eq!(decode::<ConnectRequest>(&bytes), Ok(request));
    }

    #[test]
    fn read_only_is_optional() {
        let request = ConnectRequest { timeout_ms: 5, password: vec![1; 16], read_only: true, ..Default::default() };
        let bytes = encode(&request);
        let old_client = decode::<ConnectRequest>(&bytes[..bytes.len() - 1]).unwrap();
        assert!(!old_client.read_only);
        assert_eq!(old_client.password, vec![1; 16]);
        assert!(decode::<ConnectRequest>(&bytes).unwrap().read_only);
    }

    #[test]
    fn connect_response_byte_for_byte() {
        let response = ConnectResponse {
            protocol_version: 0,
            timeout_ms: 4000,
            session_id: 0x0100_0000_0000_0007,
            password: vec![0xab; 16],
            read_only: false,
        };
        let bytes = encode(&response);
        assert_eq!(bytes.len(), 4 + 4 + 8 + 4 + 16 + 1);
        assert_eq!(bytes[4..8], 4000i32.to_be_bytes());
        assert_eq!(bytes[8..16], [1, 0, 0, 0, 0, 0, 0, 7]);
        assert_eq!(decode::<ConnectResponse>(&bytes), Ok(response));
    }

    #[test]
    fn truncated_connect_is_an_error() {
        let bytes = encode(&ConnectRequest { password: vec![0; 16], ..Default::default() });
        assert!(decode::<ConnectRequest>(&bytes[..30]).is_err());
    }
}
