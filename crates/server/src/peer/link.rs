//! One outbound peer connection, written by the caller's own thread when it can.
//!
//! The Raft driver sends a `Ready`'s messages for a peer as one frame. Handing every frame to
//! a tokio task cost a cross-thread wake-up (a futex call and a context switch on an idle
//! worker) per frame, several per ReadIndex round and per replicated batch. So the sender
//! writes the frame itself with a non-blocking `try_write` whenever the connection is idle,
//! which on a healthy link is nearly always. Only what the socket does not take at once (a
//! full send buffer), frames sent while disconnected, and the connection's life (connect,
//! hello, reconnect) go through the task, in order: once anything waits in the backlog, new
//! frames queue behind it. An encrypted link (`--peer-cert-file`, https peer URLs) has every
//! frame written by its task: one TLS session cannot be written from two places.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tally_proto::tally_v1::{PeerBatch, PeerHello, PeerRejection};
use tally_proto::Message as _;
use tally_raft::NodeId;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::peer::events::{Inbound, PeerEvents};
use crate::peer::frame as peer_frame;
use crate::peer::traffic::SentCounters;

/// Bytes waiting for a peer before new frames are dropped (Raft repairs loss; a slow or dead
/// peer must not grow our memory).
const BACKLOG_BYTES_MAX: usize = 64 << 20;
const RECONNECT_DELAY_MIN: Duration = Duration::from_millis(20);
const RECONNECT_DELAY_MAX: Duration = Duration::from_secs(1);
/// A peer that has not finished the TLS handshake by then is tried again.
const HANDSHAKE_MAX: Duration = Duration::from_secs(5);
/// A TLS session that ends sooner was refused rather than lost.
const TLS_SESSION_HEALTHY: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct PeerLink {
    state: Mutex<LinkState>,
    wake: Notify,
    sent: Arc<SentCounters>,
}

#[derive(Default)]
struct LinkState {
    /// The connection, once its hello went out.
    writer: Option<Arc<OwnedWriteHalf>>,
    /// Frames, or the rest of one, that the connection task must write before anything else.
    backlog: Vec<u8>,
    /// The task is writing a taken backlog: new frames must queue behind it.
    task_writing: bool,
    /// No more frames are accepted; the task writes the backlog and ends.
    closing: bool,
}

impl PeerLink {
    /// A link whose traffic counts into `sent`.
    pub fn counted(sent: Arc<SentCounters>) -> Self {
        Self { sent, ..Default::default() }
    }

    /// Sends one encoded frame: directly if the connection is idle, else through the task.
    /// Drops it when the backlog is full.
    pub fn send_frame(&self, frame: &[u8]) {
        let mut state = self.state.lock().expect("peer link lock");
        if state.closing {
            return;
        }
        let mut rest = frame;
        if let (Some(writer), true) = (&state.writer, state.backlog.is_empty() && !state.task_writing) {
            match writer.try_write(frame) {
                Ok(n) if n == frame.len() => {
                    self.sent.bytes.fetch_add(n as u64, Ordering::Relaxed);
                    return;
                }
                Ok(n) => rest = &frame[n..],
                // Full send buffer, or a broken connection that the task's own write will
                // report.
                Err(_) => {}
            }
        }
        // A partly written frame must be finished whatever the backlog holds.
        if rest.len() == frame.len() && state.backlog.len() + rest.len() > BACKLOG_BYTES_MAX {
            tracing::debug!("peer backlog full; dropped a frame");
            self.sent.failures.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.sent.bytes.fetch_add((frame.len() - rest.len()) as u64, Ordering::Relaxed);
        state.backlog.extend_from_slice(rest);
        drop(state);
        self.wake.notify_one();
    }

    /// Queues a last frame, after which the task closes the connection for good.
    pub fn send_last_frame(&self, frame: &[u8]) {
        self.send_frame(frame);
        self.close();
    }

    /// The task writes what is queued, then ends.
    pub fn close(&self) {
        self.state.lock().expect("peer link lock").closing = true;
        self.wake.notify_one();
    }

    /// What the task must write next; `None` when nothing is queued (or the link is closed).
    fn take_backlog(&self) -> Option<Vec<u8>> {
        let mut state = self.state.lock().expect("peer link lock");
        state.task_writing = !state.backlog.is_empty();
        state.task_writing.then(|| std::mem::take(&mut state.backlog))
    }

    fn is_closing(&self) -> bool {
        self.state.lock().expect("peer link lock").closing
    }

    fn connected(&self, writer: Arc<OwnedWriteHalf>) {
        self.state.lock().expect("peer link lock").writer = Some(writer);
    }

    /// The connection is gone: what was queued for it is stale by the time a new one is up.
    fn disconnected(&self) {
        let mut state = self.state.lock().expect("peer link lock");
        state.writer = None;
        state.task_writing = false;
        if !state.backlog.is_empty() {
            self.sent.failures.fetch_add(1, Ordering::Relaxed);
        }
        state.backlog.clear();
    }
}

/// The connection's life: connect, say hello, write what the senders could not, reconnect
/// after a failure. `events` hears of every connection to `peer` that failed or was refused
/// (`ConnectionLost`), and of the peer saying we were removed (`Rejected`). With `tls`, the
/// connection is encrypted and every frame goes through this task (see `write_through_tls`).
pub async fn run_link(
    link: Arc<PeerLink>,
    addr: SocketAddr,
    hello: PeerHello,
    tls: Option<TlsConnector>,
    peer: NodeId,
    events: PeerEvents,
) {
    let on_lost = || events.report(Inbound::ConnectionLost(peer));
    let hello = peer_frame::encode(&hello);
    let mut delay = RECONNECT_DELAY_MIN;
    // The last handshake failure logged: a peer that keeps refusing us is reported once.
    let mut refused: Option<String> = None;
    loop {
        let stream = match TcpStream::connect(addr).await {
            Ok(stream) => stream,
            Err(e) => {
                link.sent.failures.fetch_add(1, Ordering::Relaxed);
                if e.kind() == io::ErrorKind::ConnectionRefused {
                    // Nothing listens there: the process is gone.
                    on_lost();
                }
                link.disconnected();
                if link.is_closing() {
                    return;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RECONNECT_DELAY_MAX);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Some(connector) = &tls else {
            delay = RECONNECT_DELAY_MIN;
            let result = write_directly(&link, stream, &hello, events.clone()).await;
            link.disconnected();
            match result {
                Ok(()) => return,
                Err(e) => {
                    tracing::debug!(%addr, "peer connection lost ({e}); reconnecting");
                    on_lost();
                    continue;
                }
            }
        };
        let started = std::time::Instant::now();
        let result = match handshake(connector, addr, stream).await {
            Ok(stream) => write_through_tls(&link, stream, &hello, events.clone()).await,
            Err(e) => Err(e),
        };
        link.disconnected();
        match result {
            Ok(()) => return,
            // A session that lasted is a connection lost, as in plaintext.
            Err(e) if started.elapsed() >= TLS_SESSION_HEALTHY => {
                tracing::debug!(%addr, "peer connection lost ({e}); reconnecting");
                delay = RECONNECT_DELAY_MIN;
                refused = None;
                on_lost();
            }
            // A refused handshake (in TLS 1.3 the server judges our certificate after we are
            // done, so it shows as an early end): the peer's process is alive, so no
            // `ConnectionLost`, which would make us campaign against a leader that is fine;
            // reported once, and tried again with a growing pause.
            Err(e) => {
                let error = e.to_string();
                if refused.as_ref() != Some(&error) {
                    tracing::warn!(%addr, %error, "TLS session with a peer failed");
                    refused = Some(error);
                }
                link.sent.failures.fetch_add(1, Ordering::Relaxed);
                if link.is_closing() {
                    return;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RECONNECT_DELAY_MAX);
            }
        }
    }
}

/// A plaintext connection: its writer goes to the link, for senders to write frames directly.
async fn write_directly(link: &PeerLink, stream: TcpStream, hello: &[u8], events: PeerEvents) -> io::Result<()> {
    let (r, w) = stream.into_split();
    let _reader = AbortOnDrop(tokio::spawn(read_rejection(r, events)));
    let writer = Arc::new(w);
    write_all(&writer, hello).await?;
    link.connected(writer.clone());
    loop {
        // Registered before looking, so that a frame queued in between still wakes us.
        let woken = link.wake.notified();
        match link.take_backlog() {
            Some(bytes) => {
                write_all(&writer, &bytes).await?;
                link.sent.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            None if link.is_closing() => return Ok(()),
            None => woken.await,
        }
    }
}

/// An encrypted connection. Its records must leave in order from one TLS session, so the link
/// gets no writer: senders queue every frame in the backlog and this task writes them (one
/// wake-up per frame, which plaintext links avoid).
async fn write_through_tls(
    link: &PeerLink,
    stream: TlsStream<TcpStream>,
    hello: &[u8],
    events: PeerEvents,
) -> io::Result<()> {
    let (r, mut w) = tokio::io::split(stream);
    let mut reader = AbortOnDrop(tokio::spawn(read_rejection(r, events)));
    w.write_all(hello).await?;
    w.flush().await?;
    loop {
        let woken = link.wake.notified();
        match link.take_backlog() {
            Some(bytes) => {
                w.write_all(&bytes).await?;
                w.flush().await?;
                link.sent.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            None if link.is_closing() => return w.shutdown().await,
            // The peer ended the session (a TLS alert says why): do not wait for a write to
            // find out.
            None => tokio::select! {
                _ = woken => {}
                ended = &mut reader.0 => return Err(match ended {
                    Ok(Err(e)) => e,
                    _ => io::Error::new(io::ErrorKind::ConnectionAborted, "the peer ended the session"),
                }),
            },
        }
    }
}

async fn handshake(connector: &TlsConnector, addr: SocketAddr, stream: TcpStream) -> io::Result<TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_MAX, connector.connect(crate::tls::server_name_of(addr), stream)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, format!("no TLS handshake within {HANDSHAKE_MAX:?}"))),
    }
}

/// The only thing a peer ever sends back on our connection is a rejection; or the error that
/// ended the connection.
async fn read_rejection(mut r: impl tokio::io::AsyncRead + Unpin, events: PeerEvents) -> io::Result<()> {
    let mut buf = Vec::new();
    peer_frame::read(&mut r, &mut buf).await?;
    if let Ok(rejection) = PeerRejection::decode(buf.as_slice()) {
        events.report(Inbound::Rejected(rejection.reason));
    }
    Ok(())
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn write_all(writer: &OwnedWriteHalf, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        writer.writable().await?;
        match writer.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The frame that tells a removed peer so.
pub fn rejection_frame(reason: String) -> Vec<u8> {
    peer_frame::encode(&PeerBatch { rejected: Some(PeerRejection { reason }), ..Default::default() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A link to a fresh listener; the accepted connection, its hello already read.
    async fn linked() -> (Arc<PeerLink>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let link = Arc::new(PeerLink::default());
        let hello = PeerHello { cluster_id: 42, from: 1, ..Default::default() };
        tokio::spawn(run_link(link.clone(), addr, hello.clone(), None, 2, PeerEvents::new(|_| {})));
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        peer_frame::read(&mut stream, &mut buf).await.unwrap();
        assert_eq!(PeerHello::decode(buf.as_slice()).unwrap(), hello);
        (link, stream)
    }

    /// A sink that passes on only the connections lost.
    fn losses() -> (PeerEvents, tokio::sync::mpsc::UnboundedReceiver<NodeId>) {
        let (lost, lost_rx) = tokio::sync::mpsc::unbounded_channel();
        let events = PeerEvents::new(move |event| {
            if let Inbound::ConnectionLost(peer) = event {
                let _ = lost.send(peer);
            }
        });
        (events, lost_rx)
    }

    /// A length-prefixed frame of raw bytes.
    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(payload);
        frame
    }

    fn numbered(seq: u32, len: usize) -> Vec<u8> {
        let mut payload = vec![(seq % 251) as u8; len];
        payload[..4].copy_from_slice(&seq.to_be_bytes());
        payload
    }

    #[tokio::test]
    async fn frames_arrive_whole_and_in_order_when_the_peer_reads_slowly() {
        let (link, mut stream) = linked().await;
        // More than the socket buffers hold (but less than the backlog's limit): frames are
        // cut by partial writes, the rest waits in the backlog, and sending goes on while the
        // peer starts reading, so direct writes and the task's compete for the connection.
        let (frames, len) = (1500u32, 40_000);
        let sender = {
            let link = link.clone();
            std::thread::spawn(move || {
                for seq in 0..frames {
                    link.send_frame(&frame(&numbered(seq, len)));
                    if seq % 64 == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            })
        };
        while link.state.lock().unwrap().backlog.is_empty() {
            assert!(!sender.is_finished(), "the socket took everything: the test proves nothing");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut buf = Vec::new();
        for seq in 0..frames {
            peer_frame::read(&mut stream, &mut buf).await.unwrap();
            assert_eq!(buf, numbered(seq, len), "frame {seq}");
        }
        // The last frame can arrive before its sender's thread has returned.
        sender.join().unwrap();
        // And the link is back to direct writes.
        link.send_frame(&frame(b"last"));
        peer_frame::read(&mut stream, &mut buf).await.unwrap();
        assert_eq!(buf, b"last");
        assert!(link.state.lock().unwrap().backlog.is_empty());
    }

    #[tokio::test]
    async fn a_closed_link_writes_what_is_queued_then_hangs_up() {
        let (link, mut stream) = linked().await;
        link.send_frame(&frame(b"one"));
        link.send_last_frame(&frame(b"two"));
        link.send_frame(&frame(b"after the end"));
        let mut buf = Vec::new();
        for want in [&b"one"[..], b"two"] {
            peer_frame::read(&mut stream, &mut buf).await.unwrap();
            assert_eq!(buf, want);
        }
        let mut rest = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut rest).await.unwrap();
        assert!(rest.is_empty(), "bytes after the last frame: {rest:?}");
    }

    #[tokio::test]
    async fn frames_for_an_unreachable_peer_are_dropped_and_the_link_reconnects() {
        // A port nobody listens on yet.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let link = Arc::new(PeerLink::default());
        let (events, mut lost_rx) = losses();
        link.send_frame(&frame(b"stale"));
        let hello = PeerHello { cluster_id: 42, from: 1, ..Default::default() };
        tokio::spawn(run_link(link.clone(), addr, hello, None, 2, events));
        assert_eq!(tokio::time::timeout(Duration::from_secs(5), lost_rx.recv()).await.unwrap(), Some(2));
        let listener = TcpListener::bind(addr).await.unwrap();
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        peer_frame::read(&mut stream, &mut buf).await.unwrap();
        PeerHello::decode(buf.as_slice()).unwrap();
        link.send_frame(&frame(b"fresh"));
        peer_frame::read(&mut stream, &mut buf).await.unwrap();
        assert_eq!(buf, b"fresh", "the frame queued before the failed connect was not dropped");
    }

    #[tokio::test]
    async fn a_peer_that_refuses_our_certificate_is_not_taken_for_dead_and_is_tried_less_often() {
        let (server_dir, client_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let server = crate::tls::test_pki::member_tls(server_dir.path());
        // Trusts the server's CA, presents a certificate of another one.
        let client = crate::tls::test_pki::member_tls(client_dir.path());
        let acceptor = tokio_rustls::TlsAcceptor::from(server.server_config(&[]).unwrap());
        let connector = TlsConnector::from(client.client_config(&[], server.roots()).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let refusals = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = refusals.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                assert!(acceptor.accept(stream).await.is_err(), "a certificate of another CA was taken");
                counted.fetch_add(1, Ordering::Relaxed);
            }
        });
        let link = Arc::new(PeerLink::default());
        let (events, mut lost_rx) = losses();
        let hello = PeerHello { cluster_id: 42, from: 1, ..Default::default() };
        tokio::spawn(run_link(link.clone(), addr, hello, Some(connector), 2, events));
        // Frames keep coming for a second, as a leader's heartbeats would.
        for _ in 0..20 {
            link.send_frame(&frame(b"heartbeat"));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let refusals = refusals.load(Ordering::Relaxed);
        // Pauses of 20, 40, 80, 160, 320 ms... fit about six attempts in a second.
        assert!((2..=8).contains(&refusals), "{refusals} handshakes in a second");
        assert!(lost_rx.try_recv().is_err(), "a refusal was reported as the peer's death");
    }
}
