//! ZooKeeper's framing: a big-endian i32 length, then the jute-encoded packet.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// ZooKeeper's default `jute.maxbuffer` (0xfffff bytes): larger packets are refused.
pub const PACKET_BYTES_MAX: usize = 0xfffff;

/// The next packet, or None at a clean end of the stream.
pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = i32::from_be_bytes(len);
    if len < 0 || len as usize > PACKET_BYTES_MAX {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("packet of {len} bytes")));
    }
    let mut packet = vec![0; len as usize];
    r.read_exact(&mut packet).await?;
    Ok(Some(packet))
}

/// Writes `parts` as one packet.
pub async fn write<W: AsyncWrite + Unpin>(w: &mut W, parts: &[&[u8]]) -> io::Result<()> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut frame = Vec::with_capacity(4 + len);
    frame.extend_from_slice(&(len as i32).to_be_bytes());
    for p in parts {
        frame.extend_from_slice(p);
    }
    w.write_all(&frame).await
}
