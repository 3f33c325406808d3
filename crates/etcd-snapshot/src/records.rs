//! The protobuf records etcd stores, as prost messages with etcd's field numbers.

/// `mvccpb.KeyValue`: one revision of a key. The same message as `tally_proto::mvccpb::KeyValue`,
/// defined here so that reading a snapshot needs no gRPC stack.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct KeyValue {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// The revision of the key's latest creation.
    #[prost(int64, tag = "2")]
    pub create_revision: i64,
    /// The revision of this change.
    #[prost(int64, tag = "3")]
    pub mod_revision: i64,
    /// Changes since the key's latest creation, counting it as 1.
    #[prost(int64, tag = "4")]
    pub version: i64,
    #[prost(bytes = "vec", tag = "5")]
    pub value: Vec<u8>,
    /// The lease the key is attached to, 0 for none.
    #[prost(int64, tag = "6")]
    pub lease: i64,
}

/// `leasepb.Lease`, as etcd's lessor persists a lease.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Lease {
    #[prost(int64, tag = "1")]
    pub id: i64,
    /// The TTL granted, in seconds.
    #[prost(int64, tag = "2")]
    pub ttl: i64,
    /// The remaining TTL at the last checkpoint, in seconds; 0 unless lease checkpointing
    /// persisted one. etcd restarts every lease's countdown from `ttl` otherwise.
    #[prost(int64, tag = "3")]
    pub remaining_ttl: i64,
}

/// `authpb.User`, as etcd's auth store keeps it in bucket `authUsers`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct User {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    /// The bcrypt hash (e.g. `$2a$10$...`); empty for a user added with `--no-password`.
    #[prost(bytes = "vec", tag = "2")]
    pub password: Vec<u8>,
    /// Sorted: etcd inserts each granted role in order.
    #[prost(string, repeated, tag = "3")]
    pub roles: Vec<String>,
    #[prost(message, optional, tag = "4")]
    pub options: Option<UserAddOptions>,
}

/// `authpb.UserAddOptions`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct UserAddOptions {
    #[prost(bool, tag = "1")]
    pub no_password: bool,
}

/// `authpb.Role`, as etcd keeps it in bucket `authRoles`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Role {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    #[prost(message, repeated, tag = "2")]
    pub key_permission: Vec<Permission>,
}

/// `authpb.Permission`: `perm_type` 0 read, 1 write, 2 readwrite; an empty `range_end` means
/// the key alone.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Permission {
    #[prost(int32, tag = "1")]
    pub perm_type: i32,
    #[prost(bytes = "vec", tag = "2")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub range_end: Vec<u8>,
}
