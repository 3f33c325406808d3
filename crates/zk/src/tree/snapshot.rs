//! Snapshots of the whole state: `TALLYZK1`, a format version, the body, and a checksum of
//! everything before it (8 bytes: CRC-32C from version 2, which hardware computes ~20x faster
//! than version 1's byte-wise FNV-1a over a tree of hundreds of MB). All integers big-endian
//! (jute's primitives).
//!
//! Body: the last applied index; the sessions by id (id, timeout, password, and from version 2
//! the owning connection); the nodes in path
//! order (path, data, ACL, the nine persisted stat fields). Children and the ephemeral, container
//! and TTL indexes are rebuilt from the paths and owners.

use super::hash::fnv1a;
use super::node::{NodeStat, Znode};
use super::session::Session;
use super::state::ZkState;
use crate::proto::jute::{DecodeError, Reader, Writer};
use crate::proto::PASSWORD_LEN;

const MAGIC: &[u8; 8] = b"TALLYZK1";
const FORMAT_VERSION: i32 = 2;
/// Version 1 had no session owners: its sessions restore as on their creating connection.
const FORMAT_VERSION_WITHOUT_OWNERS: i32 = 1;

/// Why a snapshot could not be restored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("zk snapshot: bad magic")]
    BadMagic,
    #[error("zk snapshot: unsupported format version {0}")]
    UnsupportedVersion(i32),
    #[error("zk snapshot: checksum mismatch")]
    Checksum,
    #[error("zk snapshot: malformed: {0}")]
    Malformed(#[from] DecodeError),
    /// Well-formed but inconsistent: the tree's invariants do not hold.
    #[error("zk snapshot: corrupt: {0}")]
    Corrupt(String),
}

impl ZkState {
    pub fn encode_snapshot(&self) -> Vec<u8> {
        self.encode_snapshot_appending(Vec::new())
    }

    /// Appends the snapshot to `buf`: a caller that frames it in a larger snapshot copies
    /// nothing (for a tree of 300 MB, a copy and the page faults of a second buffer).
    pub fn encode_snapshot_appending(&self, mut buf: Vec<u8>) -> Vec<u8> {
        let start = buf.len();
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        let mut buf = self.encode_body_into(Writer::appending(buf));
        let sum = checksum(FORMAT_VERSION, &buf[start..]);
        buf.extend_from_slice(&sum.to_be_bytes());
        buf
    }

    pub fn decode_snapshot(bytes: &[u8]) -> Result<ZkState, SnapshotError> {
        if bytes.len() < MAGIC.len() + 4 + 8 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let (content, sum) = bytes.split_at(bytes.len() - 8);
        let r = &mut Reader::new(&content[MAGIC.len()..]);
        let version = r.int()?;
        if checksum(version, content).to_be_bytes() != sum {
            return Err(SnapshotError::Checksum);
        }
        let owners = match version {
            FORMAT_VERSION => true,
            FORMAT_VERSION_WITHOUT_OWNERS => false,
            _ => return Err(SnapshotError::UnsupportedVersion(version)),
        };
        let state = decode_body(r, owners)?;
        if r.remaining() != 0 {
            return Err(SnapshotError::Corrupt("bytes after the nodes".into()));
        }
        state.check_invariants().map_err(SnapshotError::Corrupt)?;
        Ok(state)
    }

    pub(crate) fn encode_body(&self) -> Vec<u8> {
        self.encode_body_into(Writer::new())
    }

    /// Appends the body to what `w` holds.
    fn encode_body_into(&self, mut w: Writer) -> Vec<u8> {
        w.long(self.last_zxid);
        w.long(self.sessions.len() as i64);
        for (&id, session) in &self.sessions {
            w.long(id);
            w.int(session.timeout_ms);
            session.password.iter().for_each(|&b| w.byte(b));
            w.long(session.owner as i64);
        }
        w.long(self.nodes.len() as i64);
        for (path, node) in self.nodes_in_path_order() {
            w.ustring(path);
            w.write(&node.data);
            w.write(&node.acl);
            let s = &node.stat;
            for v in [s.czxid, s.mzxid, s.ctime, s.mtime] {
                w.long(v);
            }
            for v in [s.version, s.cversion, s.aversion] {
                w.int(v);
            }
            w.long(s.ephemeral_owner);
            w.long(s.pzxid);
        }
        w.into_bytes()
    }
}

fn decode_body(r: &mut Reader<'_>, owners: bool) -> Result<ZkState, SnapshotError> {
    let mut state = ZkState::empty();
    state.last_zxid = r.long()?;
    for _ in 0..count(r)? {
        let id = r.long()?;
        let timeout_ms = r.int()?;
        let password = r.take(PASSWORD_LEN)?.try_into().expect("take returns PASSWORD_LEN bytes");
        let owner = if owners { r.long()? as u64 } else { 0 };
        if state.sessions.insert(id, Session { timeout_ms, password, owner }).is_some() {
            return Err(SnapshotError::Corrupt(format!("session {id:#x} twice")));
        }
    }
    for _ in 0..count(r)? {
        let path = r.ustring()?;
        let data = r.read()?;
        let acl = r.read()?;
        let stat = NodeStat {
            czxid: r.long()?,
            mzxid: r.long()?,
            ctime: r.long()?,
            mtime: r.long()?,
            version: r.int()?,
            cversion: r.int()?,
            aversion: r.int()?,
            ephemeral_owner: r.long()?,
            pzxid: r.long()?,
        };
        let node = Znode { data, acl, stat, num_children: 0 };
        if !state.restore_node(path.clone(), node) {
            return Err(SnapshotError::Corrupt(format!("{path} out of order, repeated or without a parent")));
        }
    }
    if state.node("/").is_none() {
        return Err(SnapshotError::Corrupt("no root".into()));
    }
    Ok(state)
}

/// The checksum a snapshot of format `version` ends with.
fn checksum(version: i32, content: &[u8]) -> u64 {
    match version {
        FORMAT_VERSION_WITHOUT_OWNERS => fnv1a(content),
        _ => u64::from(crc32c::crc32c(content)),
    }
}

/// A count that cannot exceed the bytes left (each item takes more than one).
fn count(r: &mut Reader<'_>) -> Result<u64, SnapshotError> {
    let n = r.long()?;
    if n < 0 || n as u64 > r.remaining() as u64 {
        return Err(SnapshotError::Corrupt(format!("count {n}")));
    }
    Ok(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_tree_round_trips() {
        let state = ZkState::new();
        assert_eq!(ZkState::decode_snapshot(&state.encode_snapshot()), Ok(state));
    }

    #[test]
    fn a_version_1_snapshot_restores_its_sessions_unowned() {
        let mut state = ZkState::new();
        let session = Session { timeout_ms: 4000, password: [3; PASSWORD_LEN], owner: 77 };
        state.sessions.insert(0x0100_0000_0000_0001, session);
        let v2 = state.encode_snapshot();
        // Version 1: the same without the session's owner (the last 8 bytes of its record).
        let owner_at = MAGIC.len() + 4 + 8 + 8 + 8 + 4 + PASSWORD_LEN;
        let mut v1 = [&v2[..MAGIC.len()], &1i32.to_be_bytes(), &v2[MAGIC.len() + 4..owner_at]].concat();
        v1.extend_from_slice(&v2[owner_at + 8..v2.len() - 8]);
        v1.extend_from_slice(&fnv1a(&v1).to_be_bytes());

        let restored = ZkState::decode_snapshot(&v1).expect("a version 1 snapshot restores");
        assert_eq!(restored.session(0x0100_0000_0000_0001), Some(&Session { owner: 0, ..session }));
        assert_eq!(ZkState::decode_snapshot(&v2), Ok(state));
    }

    #[test]
    fn damage_is_detected() {
        let bytes = ZkState::new().encode_snapshot();
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert_eq!(ZkState::decode_snapshot(&flipped), Err(SnapshotError::Checksum));
        assert_eq!(ZkState::decode_snapshot(&bytes[..bytes.len() - 1]), Err(SnapshotError::Checksum));
        assert_eq!(ZkState::decode_snapshot(b"TALLYMVC0000000000000"), Err(SnapshotError::BadMagic));
        assert_eq!(ZkState::decode_snapshot(&[]), Err(SnapshotError::BadMagic));
    }

    #[test]
    fn nodes_without_a_parent_or_a_valid_path_are_corrupt() {
        for path in ["/a/b", "abc", "/a/"] {
            let mut state = ZkState::new();
            state.nodes.insert(path.into(), Default::default());
            let decoded = ZkState::decode_snapshot(&state.encode_snapshot());
            assert!(matches!(decoded, Err(SnapshotError::Corrupt(_))), "{path}: {decoded:?}");
        }
    }

    #[test]
    fn ephemerals_of_a_session_not_in_the_snapshot_are_corrupt() {
        let mut state = ZkState::new();
        let ephemeral = Znode {
            stat: NodeStat { ephemeral_owner: 0x0100_0000_0000_0001, ..NodeStat::default() },
            ..Znode::default()
        };
        state.restore_node("/e".into(), ephemeral);
        assert!(matches!(ZkState::decode_snapshot(&state.encode_snapshot()), Err(SnapshotError::Corrupt(_))));
    }
}
