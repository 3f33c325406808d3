//! ZooKeeper's wire protocol: the jute encoding and the records of `zookeeper.jute` a client and
//! server exchange. Framing (a 4-byte big-endian length before each message) is the server's.

pub mod auth;
pub mod codes;
pub mod connect;
pub mod data;
pub mod headers;
pub mod jute;
pub mod multi;
pub mod request;
pub mod requests;
pub mod response;
pub mod watches;

pub use auth::{AuthPacket, ClientInfo};
pub use codes::{add_watch_mode, op, state, watcher_type, xid, EventType};
pub use connect::{ConnectRequest, ConnectResponse, PASSWORD_LEN};
pub use data::{perms, Acl, CreateMode, Id, Stat};
pub use headers::{MultiHeader, ReplyHeader, RequestHeader};
pub use jute::{decode, encode, DecodeError, Jute, Reader, Record, Writer};
pub use multi::{OpResult, ReadOp, WriteOp};
pub use request::Request;
pub use requests::{
    CheckVersionRequest, CreateRequest, CreateTtlRequest, DeleteRequest, PathRequest, SetAclRequest, SetDataRequest,
    WatchedPathRequest,
};
pub use response::Response;
pub use watches::{AddWatchRequest, SetWatches, SetWatches2, WatcherEvent, WatchesRequest};
