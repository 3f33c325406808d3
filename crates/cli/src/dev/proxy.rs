//! The peer proxy: every member is advertised to the others at a port of ours, so each
//! member-to-member connection passes through here, where a member's links can be cut (a
//! network partition) and healed.
//!
//! What it relies on in the peer protocol (`crates/server/src/peer`): the dialer's first frame
//! is a `PeerHello` (a big-endian `u32` length, then the protobuf) naming the sender (`from`,
//! `name`); the receiver is the member behind the port dialed. On an ordinary connection every
//! later frame, both ways, has the same framing (`PeerBatch`es from the dialer, a
//! `PeerRejection` back). A connection whose hello sets `snapshot_stream` carries one snapshot
//! in frames of its own and is passed through as bytes.
//!
//! A cut loses whole frames, both ways, on connections that stay open, as a partition would
//! (a reset would tell Tally the peer's process died, which triggers its fast failover). A
//! snapshot stream is closed instead (its sender tries again later). Anything else is passed on
//! as it happens: an end of stream (FIN) becomes one on the other side, a reset or a failed
//! write resets both sides (SO_LINGER 0), and while a member's process is dead its port
//! refuses connections, as the member's own would.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tally_proto::tally_v1::PeerHello;
use tally_proto::Message as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Read buffer of each direction of a connection (reused for every read).
const BUFFER_BYTES: usize = 64 << 10;
/// A dialer that has not sent its hello by then is dropped.
const HELLO_WAIT: Duration = Duration::from_secs(10);
/// Largest hello accepted (it holds a name and a few URLs).
const HELLO_BYTES_MAX: usize = 64 << 10;
/// How long connecting to a member may take (a paused member's kernel still accepts).
/// How long a connection waits for a (re)starting member to listen.
const MEMBER_START_WAIT: Duration = Duration::from_secs(5);
const CONNECT_WAIT: Duration = Duration::from_secs(5);

/// Which members are cut off, by index.
struct Links {
    names: Vec<String>,
    cut: Vec<AtomicBool>,
}

impl Links {
    fn is_cut(&self, i: usize) -> bool {
        self.cut[i].load(Ordering::Relaxed)
    }
}

/// One member's proxy port: where it is advertised, and where it really listens.
pub struct Route {
    pub listener: TcpListener,
    pub advertised: SocketAddr,
    pub member: SocketAddr,
}

pub struct Proxy {
    links: Arc<Links>,
    /// Whether each member's process is alive: its proxy port listens only then.
    alive: Vec<watch::Sender<bool>>,
}

impl Proxy {
    /// Serves `routes[i]` for member `names[i]`, each member alive and connected to start with.
    pub fn start(names: Vec<String>, routes: Vec<Route>) -> Self {
        let cut = names.iter().map(|_| AtomicBool::new(false)).collect();
        let links = Arc::new(Links { names, cut });
        let mut alive = Vec::new();
        for (i, route) in routes.into_iter().enumerate() {
            let (tx, rx) = watch::channel(true);
            alive.push(tx);
            tokio::spawn(serve(i, route, links.clone(), rx));
        }
        Self { links, alive }
    }

    /// Cuts (`true`) or heals member `i`'s links to every other member.
    pub fn set_cut(&self, i: usize, cut: bool) {
        self.links.cut[i].store(cut, Ordering::Relaxed);
    }

    pub fn is_cut(&self, i: usize) -> bool {
        self.links.is_cut(i)
    }

    /// While a member's process is dead its proxy port is closed: dialing it is refused, as
    /// dialing the member itself would be, and the dialer backs off.
    pub fn set_alive(&self, i: usize, alive: bool) {
        if let Some(tx) = self.alive.get(i) {
            tx.send_if_modified(|now| std::mem::replace(now, alive) != alive);
        }
    }
}

/// Accepts connections for member `to` while it is alive; closes the port while it is not.
async fn serve(to: usize, route: Route, links: Arc<Links>, mut alive: watch::Receiver<bool>) {
    let Route { listener, advertised, member } = route;
    let mut listener = Some(listener);
    let mut bind_failed = false;
    loop {
        let listening = match listener.take() {
            Some(listener) => listener,
            None => {
                while !*alive.borrow_and_update() {
                    if alive.changed().await.is_err() {
                        return;
                    }
                }
                match TcpListener::bind(advertised).await {
                    Ok(listener) => {
                        bind_failed = false;
                        listener
                    }
                    Err(e) => {
                        if !std::mem::replace(&mut bind_failed, true) {
                            eprintln!("tally dev: cannot listen on {advertised} for {}: {e}", links.names[to]);
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                }
            }
        };
        loop {
            tokio::select! {
                accepted = listening.accept() => match accepted {
                    Ok((stream, _)) => {
                        tokio::spawn(relay(stream, to, member, links.clone()));
                    }
                    // Out of file descriptors, say: try again shortly.
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                },
                changed = alive.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if !*alive.borrow_and_update() {
                        break;
                    }
                }
            }
        }
    }
}

/// Connects to the member itself. A restarted member opens its peer port a moment after its
/// proxy port reopens: until then the dialer's connection waits, as on a slow network, rather
/// than being reset (which the dialer would report as the peer lost, every few milliseconds).
async fn connect_member(member: SocketAddr) -> Option<TcpStream> {
    let deadline = tokio::time::Instant::now() + MEMBER_START_WAIT;
    loop {
        if let Ok(Ok(stream)) = tokio::time::timeout(CONNECT_WAIT, TcpStream::connect(member)).await {
            return Some(stream);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Closes `stream` with a reset (SO_LINGER 0) rather than an orderly end.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
}

/// Reads the dialer's first frame, whole: (the frame, its hello).
async fn read_hello(stream: &mut TcpStream) -> std::io::Result<(Vec<u8>, PeerHello)> {
    let invalid = |msg: String| std::io::Error::new(std::io::ErrorKind::InvalidData, msg);
    let mut frame = vec![0u8; 4];
    stream.read_exact(&mut frame).await?;
    let len = u32::from_be_bytes(frame[..4].try_into().expect("4 bytes")) as usize;
    if len > HELLO_BYTES_MAX {
        return Err(invalid(format!("a hello of {len} bytes")));
    }
    frame.resize(4 + len, 0);
    stream.read_exact(&mut frame[4..]).await?;
    let hello = PeerHello::decode(&frame[4..]).map_err(|e| invalid(format!("bad hello: {e}")))?;
    Ok((frame, hello))
}

/// One proxied connection from a member (it sent the hello) to member `to`.
async fn relay(mut dialer: TcpStream, to: usize, member: SocketAddr, links: Arc<Links>) {
    let _ = dialer.set_nodelay(true);
    let (hello_frame, hello) = match tokio::time::timeout(HELLO_WAIT, read_hello(&mut dialer)).await {
        Ok(Ok(hello)) => hello,
        _ => return reset(dialer),
    };
    // Our members name themselves in their hellos; an unknown sender is never cut.
    let from = links.names.iter().position(|name| *name == hello.name);
    let blocked = || links.is_cut(to) || from.is_some_and(|from| links.is_cut(from));
    if hello.snapshot_stream && blocked() {
        return reset(dialer);
    }
    let Some(mut upstream) = connect_member(member).await else {
        // The member's process is gone: as if it had refused.
        return reset(dialer);
    };
    let _ = upstream.set_nodelay(true);
    if upstream.write_all(&hello_frame).await.is_err() {
        reset(upstream);
        return reset(dialer);
    }
    let failed = {
        let (mut dialer_r, mut dialer_w) = dialer.split();
        let (mut member_r, mut member_w) = upstream.split();
        let snapshot = hello.snapshot_stream;
        let forth = pump(&mut dialer_r, &mut member_w, snapshot, &blocked);
        let back = pump(&mut member_r, &mut dialer_w, snapshot, &blocked);
        tokio::pin!(forth, back);
        let (mut forth_ended, mut back_ended) = (false, false);
        loop {
            tokio::select! {
                end = &mut forth, if !forth_ended => {
                    if end == End::Failed {
                        break true;
                    }
                    forth_ended = true;
                }
                end = &mut back, if !back_ended => {
                    if end == End::Failed {
                        break true;
                    }
                    back_ended = true;
                }
            }
            if forth_ended && back_ended {
                break false;
            }
        }
    };
    if failed {
        reset(dialer);
        reset(upstream);
    }
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The source ended its stream; so did we on the destination.
    Closed,
    /// A reset, a failed write, or a snapshot stream cut: both sides are reset.
    Failed,
}

/// Copies `r` to `w` until `r` ends. Frames (of an ordinary connection) that start while
/// `blocked()` are read and dropped whole; a snapshot stream fails instead.
async fn pump<R, W>(r: &mut R, w: &mut W, snapshot: bool, blocked: &impl Fn() -> bool) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUFFER_BYTES];
    let mut frames = Frames::default();
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) => {
                return match w.shutdown().await {
                    Ok(()) => End::Closed,
                    Err(_) => End::Failed,
                };
            }
            Ok(n) => n,
            Err(_) => return End::Failed,
        };
        let kept = match (snapshot, blocked()) {
            (true, true) => return End::Failed,
            (true, false) => n,
            (false, blocked) => frames.filter(&mut buf[..n], blocked),
        };
        if kept > 0 && w.write_all(&buf[..kept]).await.is_err() {
            return End::Failed;
        }
    }
}

/// Where a stream of length-prefixed frames is, across reads.
#[derive(Default)]
struct Frames {
    /// The current frame's length prefix, as far as it has arrived.
    header: [u8; 4],
    header_got: usize,
    /// Bytes of the current frame's payload still to come.
    payload_left: usize,
    /// Whether the current frame is passed on (decided when its first byte arrives).
    keep: bool,
}

impl Frames {
    /// Drops from `buf` the bytes of frames that are not kept, moving the rest to its front:
    /// how many bytes are kept. Frames starting in `buf` are dropped if `blocked`.
    fn filter(&mut self, buf: &mut [u8], blocked: bool) -> usize {
        let (mut read, mut kept) = (0, 0);
        while read < buf.len() {
            if self.header_got == 0 {
                self.keep = !blocked;
            }
            let take = if self.header_got < 4 {
                let take = (4 - self.header_got).min(buf.len() - read);
                self.header[self.header_got..self.header_got + take].copy_from_slice(&buf[read..read + take]);
                self.header_got += take;
                if self.header_got == 4 {
                    self.payload_left = u32::from_be_bytes(self.header) as usize;
                }
                take
            } else {
                let take = self.payload_left.min(buf.len() - read);
                self.payload_left -= take;
                take
            };
            if self.keep {
                if kept != read {
                    buf.copy_within(read..read + take, kept);
                }
                kept += take;
            }
            read += take;
            if self.header_got == 4 && self.payload_left == 0 {
                self.header_got = 0;
            }
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(payload);
        frame
    }

    /// Feeds `bytes` to a filter in pieces of `piece` bytes, blocked for the pieces `blocked`
    /// says: what comes out.
    fn filtered(bytes: &[u8], piece: usize, blocked: impl Fn(usize) -> bool) -> Vec<u8> {
        let mut frames = Frames::default();
        let mut out = Vec::new();
        for (i, chunk) in bytes.chunks(piece).enumerate() {
            let mut buf = chunk.to_vec();
            let kept = frames.filter(&mut buf, blocked(i));
            out.extend_from_slice(&buf[..kept]);
        }
        out
    }

    #[test]
    fn frames_pass_whole_or_not_at_all() {
        let frames: Vec<Vec<u8>> =
            [&b"one"[..], b"", b"three three", &[7u8; 300][..], b"five"].iter().map(|p| frame(p)).collect();
        let stream = frames.concat();
        for piece in [1, 2, 3, 5, 7, 64, 1000] {
            assert_eq!(filtered(&stream, piece, |_| false), stream, "piece {piece}");
            assert!(filtered(&stream, piece, |_| true).is_empty(), "piece {piece}");
            // Blocked now and then: what passes is whole frames, in order.
            for period in [2, 3, 5] {
                let mut out = filtered(&stream, piece, |i| i % period == 1);
                let mut next = 0;
                while !out.is_empty() {
                    let len = u32::from_be_bytes(out[..4].try_into().unwrap()) as usize;
                    let whole: Vec<u8> = out.drain(..4 + len).collect();
                    let at = frames[next..].iter().position(|f| *f == whole);
                    next += at.unwrap_or_else(|| panic!("piece {piece}: a frame cut up or out of order")) + 1;
                }
            }
        }
    }
}
