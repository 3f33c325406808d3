//! The records of `org.apache.zookeeper.data`: identities, ACL entries and a znode's Stat, with the
//! permission bits and create modes that go with them.

use super::jute::{record, DecodeError};

record! {
    /// An identity under an auth scheme: `world:anyone`, `digest:user:base64(sha1)`, `ip:10.0.0.0/8`.
    pub struct Id {
        pub scheme: String,
        pub id: String,
    }
}

record! {
    /// One ACL entry: the permission bits granted to an identity.
    pub struct Acl {
        pub perms: i32,
        pub id: Id,
    }
}

record! {
    /// A znode's metadata as clients see it.
    pub struct Stat {
        /// The zxid of the create.
        pub czxid: i64,
        /// The zxid of the last create or setData.
        pub mzxid: i64,
        /// Milliseconds since the epoch, from the leader's clock, at create.
        pub ctime: i64,
        /// ... at the last create or setData.
        pub mtime: i64,
        /// Number of setData since create.
        pub version: i32,
        /// Number of children created (not deleted) since create.
        pub cversion: i32,
        /// Number of setACL since create.
        pub aversion: i32,
        /// The owning session of an ephemeral, a container or TTL marker, or 0.
        pub ephemeral_owner: i64,
        pub data_length: i32,
        pub num_children: i32,
        /// The zxid of the last child create or delete.
        pub pzxid: i64,
    }
}

impl Id {
    pub fn new(scheme: &str, id: &str) -> Id {
        Id { scheme: scheme.to_string(), id: id.to_string() }
    }

    /// `world:anyone`.
    pub fn anyone() -> Id {
        Id::new("world", "anyone")
    }
}

impl Acl {
    pub fn new(perms: i32, id: Id) -> Acl {
        Acl { perms, id }
    }

    /// `ZooDefs.Ids.OPEN_ACL_UNSAFE`: everything for everyone.
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl::new(perms::ALL, Id::anyone())]
    }

    /// `ZooDefs.Ids.READ_ACL_UNSAFE`: read for everyone.
    pub fn read_unsafe() -> Vec<Acl> {
        vec![Acl::new(perms::READ, Id::anyone())]
    }
}

/// `ZooDefs.Perms`.
pub mod perms {
    pub const READ: i32 = 1;
    pub const WRITE: i32 = 2;
    pub const CREATE: i32 = 4;
    pub const DELETE: i32 = 8;
    pub const ADMIN: i32 = 16;
    pub const ALL: i32 = READ | WRITE | CREATE | DELETE | ADMIN;
}

/// `CreateMode`: what the `flags` of a create request ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateMode {
    Persistent = 0,
    Ephemeral = 1,
    PersistentSequential = 2,
    EphemeralSequential = 3,
    Container = 4,
    PersistentWithTtl = 5,
    PersistentSequentialWithTtl = 6,
}

impl CreateMode {
    /// The mode of these flags; ZooKeeper answers anything else with BadArguments.
    pub fn from_flags(flags: i32) -> Result<CreateMode, DecodeError> {
        Ok(match flags {
            0 => CreateMode::Persistent,
            1 => CreateMode::Ephemeral,
            2 => CreateMode::PersistentSequential,
            3 => CreateMode::EphemeralSequential,
            4 => CreateMode::Container,
            5 => CreateMode::PersistentWithTtl,
            6 => CreateMode::PersistentSequentialWithTtl,
            _ => return Err(DecodeError::BadCreateFlags(flags)),
        })
    }

    pub fn is_ephemeral(self) -> bool {
        matches!(self, CreateMode::Ephemeral | CreateMode::EphemeralSequential)
    }

    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl
        )
    }

    pub fn is_container(self) -> bool {
        self == CreateMode::Container
    }

    pub fn is_ttl(self) -> bool {
        matches!(self, CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::jute::{decode, encode};

    #[test]
    fn stat_is_68_bytes_in_field_order() {
        let stat = Stat { czxid: 1, pzxid: 2, num_children: 3, ..Stat::default() };
        let bytes = encode(&stat);
        assert_eq!(bytes.len(), 8 * 4 + 4 * 3 + 8 + 4 * 2 + 8);
        assert_eq!(bytes[..8], 1i64.to_be_bytes());
        assert_eq!(bytes[56..60], 3i32.to_be_bytes());
        assert_eq!(bytes[60..], 2i64.to_be_bytes());
        assert_eq!(decode::<Stat>(&bytes), Ok(stat));
    }

    #[test]
    fn acl_is_perms_then_scheme_then_id() {
        let acl = Acl::new(perms::READ, Id::new("ip", "1"));
        assert_eq!(encode(&acl), [0, 0, 0, 1, 0, 0, 0, 2, b'i', b'p', 0, 0, 0, 1, b'1']);
    }

    #[test]
    fn create_modes_from_flags() {
        assert_eq!(CreateMode::from_flags(3), Ok(CreateMode::EphemeralSequential));
        assert!(CreateMode::from_flags(6).unwrap().is_sequential());
        assert!(CreateMode::from_flags(6).unwrap().is_ttl());
        assert!(!CreateMode::from_flags(4).unwrap().is_ephemeral());
        assert_eq!(CreateMode::from_flags(7), Err(DecodeError::BadCreateFlags(7)));
        assert_eq!(CreateMode::from_flags(-1), Err(DecodeError::BadCreateFlags(-1)));
    }
}
