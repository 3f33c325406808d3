//! Authentication records.

use super::jute::record;

record! {
    /// addAuth (xid -4, op 100): credentials under a scheme, e.g. digest with `user:password`.
    pub struct AuthPacket {
        pub auth_type: i32,
        pub scheme: String,
        pub auth: Vec<u8>,
    }
}

record! {
    /// One of whoAmI's answers: a scheme and the user it names.
    pub struct ClientInfo {
        pub auth_scheme: String,
        pub user: String,
    }
}
