//! A raw ZooKeeper client over `tally_zk::proto`, for tests that need what no client library
//! gives: many requests sent without waiting, and every frame seen in the order it arrived.

use std::io;

use tally_zk::proto::{decode, encode, ConnectRequest, ConnectResponse, Reader, ReplyHeader, Request, RequestHeader};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// A reply (or, with xid -1, a watch notification) as it came off the wire.
#[derive(Debug)]
pub struct Frame {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
    pub body: Vec<u8>,
}

pub struct Sender {
    write: OwnedWriteHalf,
    next_xid: i32,
}

pub struct Receiver {
    read: OwnedReadHalf,
}

/// Opens a new session on `127.0.0.1:port`; returns its halves and the session id.
pub async fn connect(port: u16) -> io::Result<(Sender, Receiver, i64)> {
    connect_with_timeout(port, 10_000).await
}

/// Opens a new session asking for a timeout of `timeout_ms` (the client sends no pings of
/// its own).
pub async fn connect_with_timeout(port: u16, timeout_ms: i32) -> io::Result<(Sender, Receiver, i64)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.set_nodelay(true)?;
    let request = ConnectRequest { timeout_ms, password: vec![0; 16], ..Default::default() };
    write_frame(&mut stream, &encode(&request)).await?;
    let response: ConnectResponse =
        decode(&read_frame(&mut stream).await?).map_err(|e| io::Error::other(format!("connect response: {e}")))?;
    if response.session_id == 0 {
        return Err(io::Error::other("the server refused a new session"));
    }
    let (read, write) = stream.into_split();
    Ok((Sender { write, next_xid: 1 }, Receiver { read }, response.session_id))
}

impl Sender {
    /// The xid the next request sent gets.
    pub fn next_xid(&self) -> i32 {
        self.next_xid
    }

    /// Sends `request` without waiting for its reply; returns its xid.
    pub async fn send(&mut self, request: &Request) -> io::Result<i32> {
        let xid = self.next_xid;
        self.next_xid += 1;
        let mut packet = encode(&RequestHeader { xid, op: request.op_code() });
        packet.extend_from_slice(&request.encode());
        write_frame(&mut self.write, &packet).await?;
        Ok(xid)
    }
}

impl Receiver {
    pub async fn recv(&mut self) -> io::Result<Frame> {
        let packet = read_frame(&mut self.read).await?;
        let mut r = Reader::new(&packet);
        let header: ReplyHeader = r.read().map_err(|e| io::Error::other(format!("reply header: {e}")))?;
        let body = packet[packet.len() - r.remaining()..].to_vec();
        Ok(Frame { xid: header.xid, zxid: header.zxid, err: header.err, body })
    }

    /// The next reply, past any notifications.
    pub async fn reply(&mut self) -> io::Result<Frame> {
        loop {
            let frame = self.recv().await?;
            if frame.xid != tally_zk::proto::xid::NOTIFICATION {
                return Ok(frame);
            }
        }
    }
}

/// Sends `request` and waits for its reply.
pub async fn call(tx: &mut Sender, rx: &mut Receiver, request: &Request) -> io::Result<Frame> {
    let xid = tx.send(request).await?;
    let frame = rx.reply().await?;
    assert_eq!(frame.xid, xid, "a reply out of order");
    Ok(frame)
}

async fn write_frame<W: AsyncWriteExt + Unpin>(w: &mut W, packet: &[u8]) -> io::Result<()> {
    let mut frame = (packet.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(packet);
    w.write_all(&frame).await
}

async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R) -> io::Result<Vec<u8>> {
    let len = r.read_i32().await?;
    let mut packet = vec![0; len as usize];
    r.read_exact(&mut packet).await?;
    Ok(packet)
}
