//! One client connection: the handshake, then its requests, pipelined: writes are proposed as
//! they are read (`pipeline.rs`), anything else waits for the writes before it, and replies go
//! out in request order, with the notifications of its watches written between replies, never
//! after a reply they precede.
//!
//! Replies and notifications are gathered and written together once nothing more is ready at
//! once (no request read and waiting, no write answered, no notification queued): a session's
//! pipelined requests answered together cost one write, and the client one read, not one each.

use std::io;
use std::time::Instant;

use tally_zk::proto::{encode, xid, Id, Reader, ReplyHeader, Request, RequestHeader, WatcherEvent};
use tally_zk::ZkError;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::frames::invalid;
use super::handshake::{self, Attached};
use super::pipeline::{Attempt, Pipeline};
use super::requests::Reply;
use super::stats::ZkStats;
use super::watches::{ConnectionId, ZkWatches};
use super::{four_letter, frames, requests};
use crate::client::services::context::Context;
use tokio::io::{AsyncWriteExt, BufReader};

/// What one read takes from a client's socket at most (a buffer of it per connection).
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// Replies gathered beyond this are written without waiting for the rest.
const WRITE_GATHER_BYTES: usize = 64 * 1024;

/// How often a busy connection tells the leader its session is alive (well within the 4 s
/// shortest session timeout).
const TOUCH_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// What a connection knows of its client.
pub struct Client {
    pub session: i64,
    /// Identities the client added (`addauth`), and its address: checked against ACLs.
    pub auth: Vec<Id>,
    /// Its watches' registration on this member.
    pub connection: ConnectionId,
    /// The session timeout negotiated at the handshake.
    pub timeout_ms: i32,
    /// This connection's number, drawn at random: the session's owner once it attaches here
    /// (its writes are SessionMoved after the session attaches elsewhere).
    pub owner: u64,
}

pub async fn run(mut stream: TcpStream, ctx: &Context, watches: &ZkWatches, stats: &ZkStats) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let peer_ip = stream.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
    let Some(header) = frames::read_header(&mut stream).await? else { return Ok(()) };
    if let Some(word) = four_letter::word(header) {
        let port = stream.local_addr().map_or(0, |a| a.port());
        stream.write_all(four_letter::answer(word, ctx, watches, stats, port).as_bytes()).await?;
        return stream.shutdown().await;
    }
    let packet = frames::read_body(&mut stream, header).await?;
    stats.packet_received();
    let Some(Attached { session, timeout_ms, owner }) = handshake::attach(&mut stream, ctx, packet).await? else {
        return Ok(());
    };
    stats.packet_sent();
    let (events_tx, events) = mpsc::unbounded_channel();
    let connection = watches.connect(events_tx, session, owner);
    let auth = vec![Id { scheme: "ip".into(), id: peer_ip }];
    let mut client = Client { session, auth, connection, timeout_ms, owner };
    watches.authenticate(connection, &client.auth);
    let (read, write) = stream.into_split();
    let result = serve(read, write, events, ctx, watches, stats, &mut client).await;
    watches.disconnect(connection);
    result
}

/// The connection after its handshake: what it writes to, and its requests' state.
struct Serving<'a> {
    write: OwnedWriteHalf,
    events: mpsc::UnboundedReceiver<WatcherEvent>,
    ctx: &'a Context,
    client: &'a mut Client,
    writes: Pipeline,
    stats: &'a ZkStats,
    /// Requests read and not yet answered, taken off the outstanding count if the connection
    /// ends first.
    unanswered: u64,
    /// Framed replies and notifications not yet written, in order.
    out: Vec<u8>,
}

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        self.stats.requests_abandoned(self.unanswered);
    }
}

async fn serve(
    read: OwnedReadHalf,
    write: OwnedWriteHalf,
    events: mpsc::UnboundedReceiver<WatcherEvent>,
    ctx: &Context,
    watches: &ZkWatches,
    stats: &ZkStats,
    client: &mut Client,
) -> io::Result<()> {
    let packets = read_packets(read);
    let writes = Pipeline::new(ctx);
    let mut s = Serving { write, events, ctx, client, writes, stats, unanswered: 0, out: Vec::new() };
    s.serve(packets, watches).await?;
    // The last replies (a CloseSession's) go out before the connection closes.
    s.flush().await
}

impl Serving<'_> {
    async fn serve(&mut self, mut packets: mpsc::Receiver<io::Result<Vec<u8>>>, watches: &ZkWatches) -> io::Result<()> {
        let ctx = self.ctx;
        let mut touched = std::time::Instant::now() - TOUCH_EVERY;
        // A client silent for its whole session timeout is gone (it pings every third of it).
        let idle_max = std::time::Duration::from_millis(self.client.timeout_ms as u64);
        // CloseSession was read: nothing after it is.
        let mut closing = false;
        loop {
            let reading = !closing && self.writes.accepting();
            let more_now = (reading && !packets.is_empty()) || self.writes.answer_ready() || !self.events.is_empty();
            if !self.out.is_empty() && (!more_now || self.out.len() >= WRITE_GATHER_BYTES) {
                self.flush().await?;
            }
            let packet = tokio::select! {
                biased;
                event = self.events.recv() => match event {
                    Some(event) => {
                        self.notify(&event);
                        continue;
                    }
                    // The session was reattached on another connection: this one is closed.
                    None => return Ok(()),
                },
                attempt = self.writes.answer(), if !self.writes.is_empty() => {
                    if self.settle(attempt).await? {
                        return Ok(());
                    }
                    continue;
                }
                packet = tokio::time::timeout(idle_max, packets.recv()), if reading => match packet {
                    Ok(Some(Ok(packet))) => packet,
                    Ok(Some(Err(e))) => return Err(e),
                    Ok(None) | Err(_) => return Ok(()),
                },
            };
            let arrived = self.request_received();
            // The client is alive: its session lives on (told the leader at most so often).
            if touched.elapsed() >= TOUCH_EVERY {
                touched = std::time::Instant::now();
                ctx.node.zk_touch(self.client.session);
            }
            let mut r = Reader::new(&packet);
            let header: RequestHeader = r.read().map_err(|e| invalid(format!("request header: {e}")))?;
            let body = &packet[packet.len() - r.remaining()..];
            let request = Request::decode(header.op, body);
            if let Some(command) = request.as_ref().ok().and_then(|r| requests::write_command(self.client, r)) {
                // Proposed now, behind the writes in flight: pipelined, as ZooKeeper does.
                closing = matches!(request, Ok(Request::CloseSession));
                self.writes.propose(ctx, header.xid, arrived, &command, closing);
                continue;
            }
            // Anything else must see every earlier write of the session, and no later one: it
            // waits for the writes in flight, and nothing more is proposed until it is answered.
            while !self.writes.is_empty() {
                if !self.writes.answer_ready() {
                    self.flush().await?;
                }
                let attempt = self.writes.answer().await;
                if self.settle(attempt).await? {
                    return Ok(());
                }
            }
            if matches!(request, Ok(Request::Sync(_))) {
                // It waits for the leader.
                self.flush().await?;
            }
            let reply = match request {
                Ok(request) => requests::handle(ctx, watches, self.client, request).await,
                Err(_) => Err(ZkError::MarshallingError),
            };
            // Pings are answered with their own xid; everything else with the request's.
            let reply_xid = if header.xid == xid::PING { xid::PING } else { header.xid };
            self.reply(reply_xid, reply, arrived);
        }
    }

    /// Settles the oldest write's attempt and gathers its reply if it has one; true if that
    /// closed the session.
    async fn settle(&mut self, attempt: Attempt) -> io::Result<bool> {
        if !attempt.applied() {
            // Proposing it again may first wait a while.
            self.flush().await?;
        }
        let Some(answered) = self.writes.settle(self.ctx, attempt).await? else { return Ok(false) };
        self.reply(answered.xid, answered.reply, answered.arrived);
        Ok(answered.closing)
    }

    fn request_received(&mut self) -> Instant {
        self.unanswered += 1;
        self.stats.request_received()
    }

    /// Gathers the answer to the request that arrived at `arrived`.
    fn reply(&mut self, xid: i32, reply: Reply, arrived: Instant) {
        // Notifications of changes this reply may reflect go first.
        while let Ok(event) = self.events.try_recv() {
            self.notify(&event);
        }
        let (err, body) = match reply {
            Ok(body) => (0, body.unwrap_or_default()),
            Err(e) => (e.code(), Vec::new()),
        };
        let zxid = self.ctx.sm.read().expect("sm lock").zk.last_zxid();
        let header = encode(&ReplyHeader { xid, zxid, err });
        frames::append(&mut self.out, &[&header, &body]);
        self.unanswered -= 1;
        self.stats.request_answered(arrived);
    }

    /// Gathers a watch's notification.
    fn notify(&mut self, event: &WatcherEvent) {
        let header = encode(&ReplyHeader { xid: xid::NOTIFICATION, zxid: -1, err: 0 });
        frames::append(&mut self.out, &[&header, &encode(event)]);
        self.stats.packet_sent();
    }

    /// Writes what was gathered.
    async fn flush(&mut self) -> io::Result<()> {
        self.write.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }
}

/// The connection's packets, read by a task of their own (so that waiting for one never
/// delays a notification, and no read is ever cut short).
fn read_packets(read: OwnedReadHalf) -> mpsc::Receiver<io::Result<Vec<u8>>> {
    // Buffered: a burst of pipelined requests is one read, not two per request.
    let mut read = BufReader::with_capacity(READ_BUFFER_BYTES, read);
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let packet = match frames::read(&mut read).await {
                Ok(Some(packet)) => Ok(packet),
                Ok(None) => return,
                Err(e) => Err(e),
            };
            let failed = packet.is_err();
            if tx.send(packet).await.is_err() || failed {
                return;
            }
        }
    });
    rx
}
