//! The headers that frame requests, replies and the ops of a multi.

use super::jute::record;

record! {
    /// Before every request body: the client's sequence number (or a reserved xid) and the op code.
    pub struct RequestHeader {
        pub xid: i32,
        pub op: i32,
    }
}

record! {
    /// Before every reply body: the request's xid, the zxid the server has applied, and the error
    /// code (0 for success, when a body follows).
    pub struct ReplyHeader {
        pub xid: i32,
        pub zxid: i64,
        pub err: i32,
    }
}

record! {
    /// Before each op (and each result) of a multi; a header with `done` ends the list.
    pub struct MultiHeader {
        pub op: i32,
        pub done: bool,
        pub err: i32,
    }
}

impl MultiHeader {
    /// The header that ends a multi's list: type -1, done, err -1.
    pub const END: MultiHeader = MultiHeader { op: -1, done: true, err: -1 };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::jute::encode;

    #[test]
    fn header_layouts() {
        assert_eq!(encode(&RequestHeader { xid: 1, op: 4 }), [0, 0, 0, 1, 0, 0, 0, 4]);
        let reply = encode(&ReplyHeader { xid: -2, zxid: 5, err: -101 });
        assert_eq!(reply.len(), 16);
        assert_eq!(reply[..4], (-2i32).to_be_bytes());
        assert_eq!(reply[12..], (-101i32).to_be_bytes());
        assert_eq!(encode(&MultiHeader::END), [0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff]);
    }
}
