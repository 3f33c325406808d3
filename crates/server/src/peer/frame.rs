//! How peers frame what they send each other on a connection: a big-endian `u32` length, then
//! a protobuf message (a `PeerHello` first, then `PeerBatch`es, or a `PeerRejection`). Written
//! by `peer_link` and by the transport's receiving side, read by both.

use tokio::io::AsyncReadExt;

/// The length prefix.
pub const HEADER_BYTES: u64 = 4;

/// Largest frame accepted.
const FRAME_BYTES_MAX: usize = 1 << 30;

/// A message encoded straight into its length-prefixed frame.
pub fn encode(message: &impl tally_proto::Message) -> Vec<u8> {
    let len = message.encoded_len();
    let mut frame = Vec::with_capacity(4 + len);
    frame.extend_from_slice(&(len as u32).to_be_bytes());
    message.encode(&mut frame).expect("a Vec grows as needed");
    frame
}

/// The payload length a frame's header gives, if it is not too large.
pub fn payload_len(header: [u8; HEADER_BYTES as usize]) -> std::io::Result<usize> {
    let len = u32::from_be_bytes(header) as usize;
    if len > FRAME_BYTES_MAX {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("frame of {len} bytes is too large")));
    }
    Ok(len)
}

/// Reads the next frame's payload into `buf`.
pub async fn read<R: AsyncReadExt + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut header = [0u8; HEADER_BYTES as usize];
    r.read_exact(&mut header).await?;
    let len = payload_len(header)?;
    buf.resize(len, 0);
    r.read_exact(buf).await?;
    Ok(())
}
