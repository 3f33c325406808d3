//! gRPC's length-prefixed messages, for the code that speaks HTTP/2 without tonic's codec: the
//! server's unary KV calls (`grpc_unary.rs`) and the load generator's connections. A message on
//! the wire is a compressed flag, a 4-byte big-endian length and the protobuf bytes.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;

/// The compressed flag and the length in front of every message.
pub const PREFIX: usize = 5;

/// `message` with its prefix (uncompressed), or its length if that does not fit the prefix.
pub fn encode(message: &impl Message) -> Result<Bytes, usize> {
    let len = message.encoded_len();
    let prefix_len = u32::try_from(len).map_err(|_| len)?;
    let mut buf = BytesMut::with_capacity(PREFIX + len);
    buf.put_u8(0);
    buf.put_u32(prefix_len);
    message.encode(&mut buf).expect("the buffer holds the encoded length");
    Ok(buf.freeze())
}

/// The body read so far with the next data frame after it; the first frame is kept as is.
pub fn append(data: Bytes, chunk: Bytes) -> Bytes {
    if data.is_empty() {
        return chunk;
    }
    let mut joined = BytesMut::with_capacity(data.len() + chunk.len());
    joined.extend_from_slice(&data);
    joined.extend_from_slice(&chunk);
    joined.freeze()
}

/// The protobuf bytes of a body that is exactly one uncompressed message.
pub fn single_message(body: &Bytes) -> Option<Bytes> {
    let (prefix, message) = (body.get(..PREFIX)?, body.slice(PREFIX.min(body.len())..));
    let declared = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    (prefix[0] == 0 && declared == message.len()).then_some(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_proto::etcdserverpb::RangeRequest;

    #[test]
    fn an_encoded_message_reads_back_and_nothing_else_does() {
        let request = RangeRequest { key: b"k".to_vec(), limit: 3, ..Default::default() };
        let body = encode(&request).unwrap();
        assert_eq!(body.len(), PREFIX + request.encoded_len());
        let message = single_message(&body).expect("one message");
        assert_eq!(RangeRequest::decode(message).unwrap(), request);

        let mut compressed = BytesMut::from(&body[..]);
        compressed[0] = 1;
        let two = append(body.clone(), body.clone());
        for other in [compressed.freeze(), two, body.slice(..body.len() - 1), body.slice(..3), Bytes::new()] {
            assert_eq!(single_message(&other), None, "{other:?}");
        }
    }

    #[test]
    fn appending_joins_the_chunks_in_order() {
        let first = Bytes::from_static(b"ab");
        assert_eq!(append(Bytes::new(), first.clone()).as_ptr(), first.as_ptr(), "the first chunk is not copied");
        assert_eq!(append(first, Bytes::from_static(b"cd")), Bytes::from_static(b"abcd"));
    }
}
