//! What the log carries for the tree: [`ZkCommand`], with its own compact encoding (jute
//! primitives and a leading tag byte) that the server wraps in a log entry.

use crate::proto::jute::{DecodeError, Reader, Writer};
use crate::proto::{Id, Request, WriteOp, PASSWORD_LEN};

/// A change to the tree, decided by the log's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZkCommand {
    /// A new session; its id follows from the entry's index (see [`session_id`]).
    ///
    /// [`session_id`]: super::session::session_id
    CreateSession { timeout_ms: i32, password: [u8; PASSWORD_LEN] },
    /// A session's end, asked by its client or decided by the leader's session clock: its
    /// ephemerals are deleted.
    CloseSession { session: i64 },
    /// A client's write. `auth` is the caller's identities at the time of the request (ZooKeeper
    /// sends them along with each request to its leader too): auth belongs to a connection, not
    /// to the session, so it is not replicated state. `owner` is the number of the connection
    /// the request came on (as in [`ZkCommand::Attach`]); 0 skips the SessionMoved check.
    Txn { session: i64, owner: u64, auth: Vec<Id>, write: Write },
    /// The leader's deletion of a container or TTL node it found expired; the rule is checked
    /// again when applied, against the entry's own time.
    DeleteIfExpired { path: String },
    /// A client reattached to its session on the connection `owner` (a number its member drew
    /// at random): every other connection of the session, on any member, is closed when this
    /// applies, as ZooKeeper refuses a moved session's old connection. The tree is unchanged;
    /// an unknown session answers SessionExpired.
    Attach { session: i64, owner: u64 },
}

/// A client's write: one op, or a multi applied all or nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    One(WriteOp),
    Multi(Vec<WriteOp>),
}

impl Write {
    /// The write a request asks for; `None` for requests that do not go through the log.
    pub fn from_request(request: &Request) -> Option<Write> {
        match request {
            Request::Write(op) => Some(Write::One(op.clone())),
            Request::Multi(ops) => Some(Write::Multi(ops.clone())),
            _ => None,
        }
    }
}

const CREATE_SESSION: u8 = 1;
const CLOSE_SESSION: u8 = 2;
const TXN: u8 = 3;
const DELETE_IF_EXPIRED: u8 = 4;
const ATTACH: u8 = 5;
/// A `Txn` with its connection's number; `TXN` entries, written before there was one, decode
/// with owner 0.
const OWNED_TXN: u8 = 6;
const ONE: u8 = 0;
const MULTI: u8 = 1;

impl ZkCommand {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            ZkCommand::CreateSession { timeout_ms, password } => {
                w.byte(CREATE_SESSION);
                w.int(*timeout_ms);
                password.iter().for_each(|&b| w.byte(b));
            }
            ZkCommand::CloseSession { session } => {
                w.byte(CLOSE_SESSION);
                w.long(*session);
            }
            ZkCommand::Txn { session, owner, auth, write } => {
                w.byte(OWNED_TXN);
                w.long(*session);
                w.long(*owner as i64);
                w.write(auth);
                match write {
                    Write::One(op) => {
                        w.byte(ONE);
                        put_op(&mut w, op);
                    }
                    Write::Multi(ops) => {
                        w.byte(MULTI);
                        w.vector(ops, put_op);
                    }
                }
            }
            ZkCommand::DeleteIfExpired { path } => {
                w.byte(DELETE_IF_EXPIRED);
                w.ustring(path);
            }
            ZkCommand::Attach { session, owner } => {
                w.byte(ATTACH);
                w.long(*session);
                w.long(*owner as i64);
            }
        }
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<ZkCommand, DecodeError> {
        let r = &mut Reader::new(bytes);
        Ok(match r.byte()? {
            CREATE_SESSION => ZkCommand::CreateSession {
                timeout_ms: r.int()?,
                password: r.take(PASSWORD_LEN)?.try_into().expect("take returns PASSWORD_LEN bytes"),
            },
            CLOSE_SESSION => ZkCommand::CloseSession { session: r.long()? },
            tag @ (TXN | OWNED_TXN) => ZkCommand::Txn {
                session: r.long()?,
                owner: if tag == OWNED_TXN { r.long()? as u64 } else { 0 },
                auth: r.read()?,
                write: match r.byte()? {
                    ONE => Write::One(get_op(r)?),
                    MULTI => Write::Multi(r.vector(get_op)?),
                    tag => return Err(DecodeError::BadTag(tag)),
                },
            },
            DELETE_IF_EXPIRED => ZkCommand::DeleteIfExpired { path: r.ustring()? },
            ATTACH => ZkCommand::Attach { session: r.long()?, owner: r.long()? as u64 },
            tag => return Err(DecodeError::BadTag(tag)),
        })
    }
}

fn put_op(w: &mut Writer, op: &WriteOp) {
    w.int(op.op_code());
    op.put_body(w);
}

fn get_op(r: &mut Reader<'_>) -> Result<WriteOp, DecodeError> {
    let op_code = r.int()?;
    WriteOp::get_body(op_code, r)?.ok_or(DecodeError::UnknownOp(op_code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Acl, CreateRequest, DeleteRequest, SetAclRequest};

    #[test]
    fn every_command_round_trips() {
        let create =
            WriteOp::Create(CreateRequest { path: "/a".into(), data: None, acl: Acl::open_unsafe(), flags: 3 });
        let commands = [
            ZkCommand::CreateSession { timeout_ms: 30_000, password: [7; 16] },
            ZkCommand::Attach { session: 0x1_0000_0000_0001, owner: u64::MAX - 3 },
            ZkCommand::CloseSession { session: 0x0100_0000_0000_0001 },
            ZkCommand::Txn {
                session: 5,
                owner: 9,
                auth: vec![Id::new("digest", "bob:x")],
                write: Write::One(create.clone()),
            },
            ZkCommand::Txn {
                session: 5,
                owner: 0,
                auth: vec![],
                write: Write::Multi(vec![
                    create,
                    WriteOp::Delete(DeleteRequest { path: "/b".into(), version: -1 }),
                    WriteOp::SetAcl(SetAclRequest::default()),
                ]),
            },
            ZkCommand::Txn { session: 5, owner: 9, auth: vec![], write: Write::Multi(vec![]) },
            ZkCommand::DeleteIfExpired { path: "/c".into() },
        ];
        for command in commands {
            assert_eq!(ZkCommand::decode(&command.encode()), Ok(command));
        }
    }

    #[test]
    fn a_txn_logged_before_owners_decodes_with_none() {
        let txn = |owner| ZkCommand::Txn { session: 5, owner, auth: vec![], write: Write::Multi(vec![]) };
        let mut old = txn(9).encode();
        old.drain(1 + 8..1 + 8 + 8);
        old[0] = TXN;
        assert_eq!(ZkCommand::decode(&old), Ok(txn(0)));
    }

    #[test]
    fn a_session_command_is_compact() {
        assert_eq!(ZkCommand::CloseSession { session: 1 }.encode().len(), 9);
        assert_eq!(ZkCommand::CreateSession { timeout_ms: 1, password: [0; 16] }.encode().len(), 21);
    }

    #[test]
    fn bad_tags_and_truncation_are_errors() {
        assert_eq!(ZkCommand::decode(&[9]), Err(DecodeError::BadTag(9)));
        assert!(ZkCommand::decode(&[]).is_err());
        let bytes = ZkCommand::DeleteIfExpired { path: "/abc".into() }.encode();
        assert!(ZkCommand::decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
