//! The request bodies that name a znode.

use super::data::Acl;
use super::jute::record;

record! {
    /// create, create2 and createContainer.
    pub struct CreateRequest {
        pub path: String,
        pub data: Option<Vec<u8>>,
        pub acl: Vec<Acl>,
        /// A [`CreateMode`](super::data::CreateMode) number.
        pub flags: i32,
    }
}

record! {
    /// createTTL: a create with a time to live in milliseconds.
    pub struct CreateTtlRequest {
        pub path: String,
        pub data: Option<Vec<u8>>,
        pub acl: Vec<Acl>,
        pub flags: i32,
        pub ttl: i64,
    }
}

record! {
    pub struct DeleteRequest {
        pub path: String,
        /// The expected version, or -1 for any.
        pub version: i32,
    }
}

record! {
    /// exists, getData, getChildren and getChildren2: a path and whether to leave a watch.
    pub struct WatchedPathRequest {
        pub path: String,
        pub watch: bool,
    }
}

record! {
    pub struct SetDataRequest {
        pub path: String,
        pub data: Option<Vec<u8>>,
        pub version: i32,
    }
}

record! {
    pub struct SetAclRequest {
        pub path: String,
        pub acl: Vec<Acl>,
        /// The expected ACL version (aversion), or -1 for any.
        pub version: i32,
    }
}

record! {
    /// check (CheckVersionRequest): only inside a multi, in practice.
    pub struct CheckVersionRequest {
        pub path: String,
        pub version: i32,
    }
}

record! {
    /// getACL, sync, getAllChildrenNumber and getEphemerals (whose path is a prefix).
    pub struct PathRequest {
        pub path: String,
    }
}

impl CreateTtlRequest {
    /// The fields a createTTL shares with a create.
    pub fn to_create(&self) -> CreateRequest {
        CreateRequest { path: self.path.clone(), data: self.data.clone(), acl: self.acl.clone(), flags: self.flags }
    }
}
