//! A request body decoded by its op code: the server reads a frame, its [`RequestHeader`], then
//! `Request::decode(header.op, rest)`.
//!
//! [`RequestHeader`]: super::headers::RequestHeader

use super::auth::AuthPacket;
use super::codes::op;
use super::jute::{DecodeError, Jute, Reader, Writer};
use super::multi::{read_read_ops, read_write_ops, write_read_ops, write_write_ops, ReadOp, WriteOp};
use super::requests::{PathRequest, WatchedPathRequest};
use super::watches::{AddWatchRequest, SetWatches, SetWatches2, WatchesRequest};

/// Every request this crate decodes. Writes go through the replicated log; the rest are served
/// by the server (reads from the tree, watches, auth and session traffic on the connection).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// create, create2, createContainer, createTTL, delete, setData, setACL or check.
    Write(WriteOp),
    /// multi: writes applied all or nothing.
    Multi(Vec<WriteOp>),
    /// multiRead: reads answered one by one.
    MultiRead(Vec<ReadOp>),
    Exists(WatchedPathRequest),
    GetData(WatchedPathRequest),
    GetChildren(WatchedPathRequest),
    /// getChildren that also answers the parent's Stat.
    GetChildren2(WatchedPathRequest),
    GetAcl(PathRequest),
    GetAllChildrenNumber(PathRequest),
    /// The session's ephemerals under a path prefix.
    GetEphemerals(PathRequest),
    Sync(PathRequest),
    Ping,
    CloseSession,
    Auth(AuthPacket),
    SetWatches(SetWatches),
    SetWatches2(SetWatches2),
    AddWatch(AddWatchRequest),
    CheckWatches(WatchesRequest),
    RemoveWatches(WatchesRequest),
    WhoAmI,
}

impl Request {
    /// The request of type `op_code` in `body`. Unknown types (and sasl, reconfig) are
    /// `UnknownOp`; trailing bytes are ignored, as ZooKeeper's server does.
    pub fn decode(op_code: i32, body: &[u8]) -> Result<Request, DecodeError> {
        let r = &mut Reader::new(body);
        if let Some(write) = WriteOp::get_body(op_code, r)? {
            return Ok(Request::Write(write));
        }
        Ok(match op_code {
            op::MULTI => Request::Multi(read_write_ops(r)?),
            op::MULTI_READ => Request::MultiRead(read_read_ops(r)?),
            op::EXISTS => Request::Exists(r.read()?),
            op::GET_DATA => Request::GetData(r.read()?),
            op::GET_CHILDREN => Request::GetChildren(r.read()?),
            op::GET_CHILDREN2 => Request::GetChildren2(r.read()?),
            op::GET_ACL => Request::GetAcl(r.read()?),
            op::GET_ALL_CHILDREN_NUMBER => Request::GetAllChildrenNumber(r.read()?),
            op::GET_EPHEMERALS => Request::GetEphemerals(r.read()?),
            op::SYNC => Request::Sync(r.read()?),
            op::PING => Request::Ping,
            op::CLOSE_SESSION => Request::CloseSession,
            op::AUTH => Request::Auth(r.read()?),
            op::SET_WATCHES => Request::SetWatches(r.read()?),
            op::SET_WATCHES2 => Request::SetWatches2(r.read()?),
            op::ADD_WATCH => Request::AddWatch(r.read()?),
            op::CHECK_WATCHES => Request::CheckWatches(r.read()?),
            op::REMOVE_WATCHES => Request::RemoveWatches(r.read()?),
            op::WHO_AM_I => Request::WhoAmI,
            _ => return Err(DecodeError::UnknownOp(op_code)),
        })
    }

    pub fn op_code(&self) -> i32 {
        match self {
            Request::Write(w) => w.op_code(),
            Request::Multi(_) => op::MULTI,
            Request::MultiRead(_) => op::MULTI_READ,
            Request::Exists(_) => op::EXISTS,
            Request::GetData(_) => op::GET_DATA,
            Request::GetChildren(_) => op::GET_CHILDREN,
            Request::GetChildren2(_) => op::GET_CHILDREN2,
            Request::GetAcl(_) => op::GET_ACL,
            Request::GetAllChildrenNumber(_) => op::GET_ALL_CHILDREN_NUMBER,
            Request::GetEphemerals(_) => op::GET_EPHEMERALS,
            Request::Sync(_) => op::SYNC,
            Request::Ping => op::PING,
            Request::CloseSession => op::CLOSE_SESSION,
            Request::Auth(_) => op::AUTH,
            Request::SetWatches(_) => op::SET_WATCHES,
            Request::SetWatches2(_) => op::SET_WATCHES2,
            Request::AddWatch(_) => op::ADD_WATCH,
            Request::CheckWatches(_) => op::CHECK_WATCHES,
            Request::RemoveWatches(_) => op::REMOVE_WATCHES,
            Request::WhoAmI => op::WHO_AM_I,
        }
    }

    /// The body, without the header (what a client sends after its `RequestHeader`).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            Request::Write(op) => op.put_body(&mut w),
            Request::Multi(ops) => write_write_ops(&mut w, ops),
            Request::MultiRead(ops) => write_read_ops(&mut w, ops),
            Request::Exists(r) | Request::GetData(r) | Request::GetChildren(r) | Request::GetChildren2(r) => {
                r.put(&mut w)
            }
            Request::GetAcl(r) | Request::GetAllChildrenNumber(r) | Request::GetEphemerals(r) | Request::Sync(r) => {
                r.put(&mut w)
            }
            Request::Ping | Request::CloseSession | Request::WhoAmI => {}
            Request::Auth(r) => r.put(&mut w),
            Request::SetWatches(r) => r.put(&mut w),
            Request::SetWatches2(r) => r.put(&mut w),
            Request::AddWatch(r) => r.put(&mut w),
            Request::CheckWatches(r) | Request::RemoveWatches(r) => r.put(&mut w),
        }
        w.into_bytes()
    }
}
