//! One client connection: the handshake, then its requests one at a time, in order.

use std::io;

use tally_zk::proto::{encode, xid, Id, Reader, ReplyHeader, Request, RequestHeader};
use tally_zk::ZkError;
use tokio::net::TcpStream;

use super::handshake::{self, Attached};
use super::{frames, requests};
use crate::client::services::context::Context;

/// What a connection knows of its client.
pub struct Client {
    pub session: i64,
    /// Identities the client added (`addauth`), and its address: checked against ACLs.
    pub auth: Vec<Id>,
}

pub async fn run(mut stream: TcpStream, ctx: &Context) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let peer_ip = stream.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
    let Some(Attached { session, timeout_ms }) = handshake::attach(&mut stream, ctx).await? else { return Ok(()) };
    // A client silent for its whole session timeout is gone (it pings every third of it).
    let idle_max = std::time::Duration::from_millis(timeout_ms as u64);
    let mut client = Client { session, auth: vec![Id { scheme: "ip".into(), id: peer_ip }] };
    loop {
        let packet = match tokio::time::timeout(idle_max, frames::read(&mut stream)).await {
            Ok(Ok(Some(packet))) => packet,
            Ok(Ok(None)) | Err(_) => return Ok(()),
            Ok(Err(e)) => return Err(e),
        };
        let mut r = Reader::new(&packet);
        let header: RequestHeader = r.read().map_err(|e| invalid(format!("request header: {e}")))?;
        let body = &packet[packet.len() - r.remaining()..];
        let request = Request::decode(header.op, body);
        let closing = matches!(request, Ok(Request::CloseSession));
        let (err, reply) = match request {
            Ok(request) => match requests::handle(ctx, &mut client, request).await {
                Ok(Some(body)) => (0, body),
                Ok(None) => (0, Vec::new()),
                Err(e) => (e.code(), Vec::new()),
            },
            Err(_) => (ZkError::MarshallingError.code(), Vec::new()),
        };
        let zxid = ctx.sm.read().expect("sm lock").zk.last_zxid();
        // Pings are answered with their own xid; everything else with the request's.
        let reply_xid = if header.xid == xid::PING { xid::PING } else { header.xid };
        let reply_header = encode(&ReplyHeader { xid: reply_xid, zxid, err });
        frames::write(&mut stream, &[&reply_header, &reply]).await?;
        if closing {
            return Ok(());
        }
    }
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}
