//! ZooKeeper's framing: a big-endian i32 length, then the jute-encoded packet.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// ZooKeeper's default `jute.maxbuffer` (0xfffff bytes): larger packets are refused.
pub const PACKET_BYTES_MAX: usize = 0xfffff;

/// The next packet, or None at a clean end of the stream.
pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<Vec<u8>>> {
    match read_header(r).await? {
        Some(header) => read_body(r, header).await.map(Some),
        None => Ok(None),
    }
}

/// A packet's length prefix (or a four-letter word), or None at a clean end of the stream.
pub async fn read_header<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<[u8; 4]>> {
    let mut header = [0u8; 4];
    match r.read_exact(&mut header).await {
        Ok(_) => Ok(Some(header)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// The packet whose length prefix was `header`.
pub async fn read_body<R: AsyncRead + Unpin>(r: &mut R, header: [u8; 4]) -> io::Result<Vec<u8>> {
    let len = i32::from_be_bytes(header);
    if len < 0 || len as usize > PACKET_BYTES_MAX {
        return Err(invalid(format!("packet of {len} bytes")));
    }
    let mut packet = vec![0; len as usize];
    r.read_exact(&mut packet).await?;
    Ok(packet)
}

/// Writes `parts` as one packet.
pub async fn write<W: AsyncWrite + Unpin>(w: &mut W, parts: &[&[u8]]) -> io::Result<()> {
    let mut frame = Vec::new();
    append(&mut frame, parts);
    w.write_all(&frame).await
}

/// Appends `parts` to `out` as one packet.
pub fn append(out: &mut Vec<u8>, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    out.reserve(4 + len);
    out.extend_from_slice(&(len as i32).to_be_bytes());
    for p in parts {
        out.extend_from_slice(p);
    }
}

/// A malformed packet: the connection ends.
pub fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}
