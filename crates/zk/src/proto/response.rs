//! A reply body: the server writes a [`ReplyHeader`] and then, when its `err` is 0,
//! `Response::encode`. A failed request has no body.
//!
//! [`ReplyHeader`]: super::headers::ReplyHeader

use super::auth::ClientInfo;
use super::codes::op;
use super::data::{Acl, Stat};
use super::jute::{DecodeError, Reader, Writer};
use super::multi::{read_results, write_results, OpResult};

/// The body of a successful reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// No body: delete, check, ping, closeSession, auth, setWatches, checkWatches, removeWatches.
    Empty,
    /// create: the created path (with a sequential suffix, if any).
    Create {
        path: String,
    },
    /// create2, createContainer and createTTL.
    Create2 {
        path: String,
        stat: Stat,
    },
    /// exists, setData and setACL.
    Stat(Stat),
    GetData {
        data: Option<Vec<u8>>,
        stat: Stat,
    },
    GetAcl {
        acl: Vec<Acl>,
        stat: Stat,
    },
    /// getChildren: the children's names.
    GetChildren {
        children: Vec<String>,
    },
    GetChildren2 {
        children: Vec<String>,
        stat: Stat,
    },
    /// getAllChildrenNumber: every descendant.
    AllChildrenNumber(i32),
    Sync {
        path: String,
    },
    /// multi and multiRead.
    Multi(Vec<OpResult>),
    /// addWatch answers an `ErrorResponse` with err 0.
    AddWatch,
    Ephemerals(Vec<String>),
    WhoAmI(Vec<ClientInfo>),
}

impl Response {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            Response::Empty => {}
            Response::Create { path } | Response::Sync { path } => w.ustring(path),
            Response::Create2 { path, stat } => {
                w.ustring(path);
                w.write(stat);
            }
            Response::Stat(stat) => w.write(stat),
            Response::GetData { data, stat } => {
                w.write(data);
                w.write(stat);
            }
            Response::GetAcl { acl, stat } => {
                w.write(acl);
                w.write(stat);
            }
            Response::GetChildren { children } | Response::Ephemerals(children) => w.write(children),
            Response::GetChildren2 { children, stat } => {
                w.write(children);
                w.write(stat);
            }
            Response::AllChildrenNumber(n) => w.int(*n),
            Response::Multi(results) => write_results(&mut w, results),
            Response::AddWatch => w.int(0),
            Response::WhoAmI(infos) => w.write(infos),
        }
        w.into_bytes()
    }

    /// The successful reply to a request of type `op_code` (a client's view, and the tests').
    pub fn decode(op_code: i32, body: &[u8]) -> Result<Response, DecodeError> {
        let r = &mut Reader::new(body);
        Ok(match op_code {
            op::CREATE => Response::Create { path: r.read()? },
            op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
                Response::Create2 { path: r.read()?, stat: r.read()? }
            }
            op::EXISTS | op::SET_DATA | op::SET_ACL => Response::Stat(r.read()?),
            op::GET_DATA => Response::GetData { data: r.read()?, stat: r.read()? },
            op::GET_ACL => Response::GetAcl { acl: r.read()?, stat: r.read()? },
            op::GET_CHILDREN => Response::GetChildren { children: r.read()? },
            op::GET_CHILDREN2 => Response::GetChildren2 { children: r.read()?, stat: r.read()? },
            op::GET_ALL_CHILDREN_NUMBER => Response::AllChildrenNumber(r.read()?),
            op::SYNC => Response::Sync { path: r.read()? },
            op::MULTI | op::MULTI_READ => Response::Multi(read_results(r)?),
            op::ADD_WATCH => {
                r.int()?;
                Response::AddWatch
            }
            op::GET_EPHEMERALS => Response::Ephemerals(r.read()?),
            op::WHO_AM_I => Response::WhoAmI(r.read()?),
            op::DELETE
            | op::CHECK
            | op::PING
            | op::CLOSE_SESSION
            | op::AUTH
            | op::SET_WATCHES
            | op::SET_WATCHES2
            | op::CHECK_WATCHES
            | op::REMOVE_WATCHES => Response::Empty,
            _ => return Err(DecodeError::UnknownOp(op_code)),
        })
    }
}
