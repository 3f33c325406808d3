//! Peer transport over TCP. One long-lived outbound connection per peer (see `peer_link`):
//! the messages a sender hands over at once go out as one length-prefixed `PeerBatch` frame,
//! written by the sender's own thread when the connection is idle, and a peer too far behind
//! has frames dropped instead of blocking anyone (Raft repairs loss; a slow or dead peer never
//! holds up the others). Each connection opens with a `PeerHello` naming cluster and sender.
//! A snapshot goes on a connection of its own, in chunks (see `snapshot_stream`), one at a
//! time per peer, and its outcome is reported back so the core can resend a failed one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tally_node::paxos_codec;
use tally_node::PeerMessage;
use tally_proto::tally_v1::{Command, PeerBatch, PeerHello};
use tally_proto::Message as _;
use tally_raft::NodeId;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::peer::events::{Handover, Inbound, PeerEvents};
use crate::peer::frame as peer_frame;
use crate::peer::link::{self as peer_link, PeerLink};
use crate::peer::snapshot_stream;
use crate::peer::traffic::PeerTraffic;
use crate::peer::unpack::{self, invalid, Unpacked};
use crate::tls;

/// Read buffer of an inbound peer connection.
const INBOUND_BUFFER_BYTES: usize = 64 << 10;
/// A snapshot stream in which no write (sender) or frame (receiver) completes for this long
/// is broken.
const SNAPSHOT_IDLE_MAX: Duration = Duration::from_secs(10);
/// How long a snapshot's sender waits for the receiver's verdict after the trailer (the
/// receiver reads the whole snapshot back from its file first).
const SNAPSHOT_RESULT_WAIT_MAX: Duration = Duration::from_secs(60);

/// What a peer told us about itself when it connected.
#[derive(Clone, Debug, Default)]
pub struct PeerInfo {
    pub name: String,
    pub client_urls: Vec<String>,
}

pub type PeerDirectory = Arc<RwLock<HashMap<NodeId, PeerInfo>>>;

/// "http://127.0.0.1:2380" -> "127.0.0.1:2380".
pub fn url_to_addr(url: &str) -> Result<SocketAddr, String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let hostport = rest.trim_end_matches('/');
    let hostport = hostport.replace("localhost", "127.0.0.1");
    hostport.parse().map_err(|e| format!("bad URL {url:?}: {e} (expected http://ip:port)"))
}

struct Queue {
    addr: SocketAddr,
    link: Arc<PeerLink>,
    task: tokio::task::AbortHandle,
    /// The snapshot transfer to this peer, if one was started (at most one runs at a time).
    snapshot: Option<tokio::task::AbortHandle>,
}

impl Queue {
    fn abort(&self) {
        self.task.abort();
        if let Some(snapshot) = &self.snapshot {
            snapshot.abort();
        }
    }
}

impl Drop for Queue {
    /// The connection task writes what is queued and ends.
    fn drop(&mut self) {
        self.link.close();
    }
}

/// Reports a snapshot transfer's outcome exactly once: as a failure if it is dropped before
/// `done` (the transfer task was aborted, or never ran).
struct SnapshotReport {
    peer: NodeId,
    events: PeerEvents,
    ok: bool,
}

impl SnapshotReport {
    fn done(mut self, ok: bool) {
        self.ok = ok;
    }
}

impl Drop for SnapshotReport {
    fn drop(&mut self) {
        self.events.report(Inbound::SnapshotDone { peer: self.peer, ok: self.ok });
    }
}

/// Sending side: a queue and a connection task per peer; peers come and go with membership.
#[derive(Clone)]
pub struct Transport {
    queues: Arc<Mutex<BTreeMap<NodeId, Queue>>>,
    hello: PeerHello,
    runtime: tokio::runtime::Handle,
    events: PeerEvents,
    traffic: Arc<PeerTraffic>,
    /// Encrypts every connection to a peer (https peer URLs).
    tls: Option<TlsConnector>,
}

impl Transport {
    /// Must be called inside the tokio runtime that will run the connections. `events` hears
    /// of connections lost, of peers saying we were removed, and how each snapshot's transfer
    /// ended. With `tls`, every connection is encrypted.
    pub fn start(
        hello: PeerHello,
        peers: BTreeMap<NodeId, SocketAddr>,
        events: PeerEvents,
        traffic: Arc<PeerTraffic>,
        tls: Option<TlsConnector>,
    ) -> Self {
        let transport = Self {
            traffic,
            tls,
            queues: Arc::new(Mutex::new(BTreeMap::new())),
            hello,
            runtime: tokio::runtime::Handle::current(),
            events,
        };
        transport.set_peers(peers, &BTreeSet::new());
        transport
    }

    /// Makes the set of peers exactly `peers`: connects to new ones (or moved ones), closes
    /// connections to the others, and tells those in `removed` that they were removed. (A peer
    /// can also be absent from an old member table that a catching-up member replays: that
    /// one is only disconnected.)
    pub fn set_peers(&self, peers: BTreeMap<NodeId, SocketAddr>, removed: &BTreeSet<NodeId>) {
        let mut queues = self.queues.lock().expect("transport lock");
        queues.retain(|id, q| match peers.get(id) {
            Some(addr) if *addr == q.addr => true,
            Some(_) => {
                // Moved: reconnect at the new address.
                q.abort();
                false
            }
            None if !removed.contains(id) => {
                q.abort();
                false
            }
            None => {
                // Left the cluster: its last frame tells it so (it may not learn it otherwise,
                // since nobody replicates to it any more); the task ends after sending it.
                if let Some(snapshot) = &q.snapshot {
                    snapshot.abort();
                }
                let reason = format!("member {id:x} was removed from the cluster");
                q.link.send_last_frame(&peer_link::rejection_frame(reason));
                false
            }
        });
        for (id, addr) in peers {
            if queues.contains_key(&id) {
                continue;
            }
            let link = Arc::new(PeerLink::counted(self.traffic.to(id)));
            let task = self.runtime.spawn(peer_link::run_link(
                link.clone(),
                addr,
                self.hello.clone(),
                self.tls.clone(),
                id,
                self.events.clone(),
            ));
            queues.insert(id, Queue { addr, link, task: task.abort_handle(), snapshot: None });
        }
    }

    /// Hands client commands to the leader `to` to propose, in one frame; drops them like
    /// messages (the forwarding follower's caller retries after its attempt times out).
    pub fn forward(&self, to: NodeId, cmds: Vec<Command>) {
        if cmds.is_empty() {
            return;
        }
        self.send_batch(to, PeerBatch { forwarded: cmds, ..Default::default() });
    }

    /// Sends messages, each peer's in one frame, from this thread when its connection is idle;
    /// drops a peer's frame if the peer is unknown or too far behind. A snapshot starts a
    /// transfer of its own instead.
    pub fn send_all(&self, messages: impl IntoIterator<Item = impl Into<PeerMessage>>) {
        let mut batches: BTreeMap<NodeId, PeerBatch> = BTreeMap::new();
        for m in messages {
            let m = m.into();
            if m.snapshot().is_some() {
                self.send_snapshot(m);
                continue;
            }
            paxos_codec::push_to_batch(batches.entry(m.to()).or_default(), m);
        }
        for (to, batch) in batches {
            self.send_batch(to, batch);
        }
    }

    fn send_batch(&self, to: NodeId, batch: PeerBatch) {
        let link = self.queues.lock().expect("transport lock").get(&to).map(|q| q.link.clone());
        if let Some(link) = link {
            link.send_frame(&peer_frame::encode(&batch));
        }
    }

    /// Streams a snapshot to its peer on a connection of its own, and reports the outcome.
    /// While one transfer to a peer runs, another is dropped: the running one's report makes
    /// the core decide again.
    fn send_snapshot(&self, m: PeerMessage) {
        let to = m.to();
        let mut queues = self.queues.lock().expect("transport lock");
        let Some(queue) = queues.get_mut(&to) else {
            drop(queues);
            tracing::debug!(peer = %format_args!("{to:x}"), "snapshot for an unknown peer: failed");
            return self.events.report(Inbound::SnapshotDone { peer: to, ok: false });
        };
        if queue.snapshot.as_ref().is_some_and(|t| !t.is_finished()) {
            tracing::debug!(peer = %format_args!("{to:x}"), "a snapshot transfer is already running; dropped another");
            return;
        }
        let (addr, hello) = (queue.addr, PeerHello { snapshot_stream: true, ..self.hello.clone() });
        let tls = self.tls.clone();
        let report = SnapshotReport { peer: to, events: self.events.clone(), ok: false };
        let task = self.runtime.spawn(async move {
            let started = std::time::Instant::now();
            let bytes = m.snapshot().map_or(0, |s| s.data.len());
            match stream_snapshot(addr, &hello, m, tls).await {
                Ok(()) => {
                    tracing::info!(peer = %format_args!("{to:x}"), bytes, elapsed = ?started.elapsed(), "sent a snapshot");
                    report.done(true);
                }
                Err(e) => tracing::warn!(peer = %format_args!("{to:x}"), bytes, "sending a snapshot failed: {e}"),
            }
        });
        queue.snapshot = Some(task.abort_handle());
    }
}

async fn stream_snapshot(
    addr: SocketAddr,
    hello: &PeerHello,
    m: PeerMessage,
    tls: Option<TlsConnector>,
) -> Result<(), snapshot_stream::StreamError> {
    let stream = match tokio::time::timeout(SNAPSHOT_IDLE_MAX, TcpStream::connect(addr)).await {
        Ok(stream) => stream?,
        Err(_) => return Err(snapshot_stream::StreamError::Stalled(SNAPSHOT_IDLE_MAX)),
    };
    let _ = stream.set_nodelay(true);
    let Some(connector) = tls else {
        let (r, w) = stream.into_split();
        return write_snapshot_stream(r, w, hello, m).await;
    };
    let stream =
        match tokio::time::timeout(SNAPSHOT_IDLE_MAX, connector.connect(tls::server_name_of(addr), stream)).await {
            Ok(stream) => stream?,
            Err(_) => return Err(snapshot_stream::StreamError::Stalled(SNAPSHOT_IDLE_MAX)),
        };
    let (r, w) = tokio::io::split(stream);
    write_snapshot_stream(r, w, hello, m).await
}

/// The sender's side of a snapshot stream: hello, chunks, trailer, then the receiver's verdict.
async fn write_snapshot_stream(
    mut r: impl AsyncRead + Unpin,
    w: impl AsyncWrite + Unpin,
    hello: &PeerHello,
    m: PeerMessage,
) -> Result<(), snapshot_stream::StreamError> {
    // Large writes (the chunks) bypass the buffer; it only gathers the small frame headers.
    let mut w = BufWriter::with_capacity(64 << 10, w);
    w.write_all(&peer_frame::encode(hello)).await?;
    snapshot_stream::write_snapshot(&mut w, m, snapshot_stream::CHUNK_BYTES, SNAPSHOT_IDLE_MAX).await?;
    snapshot_stream::read_result(&mut r, SNAPSHOT_RESULT_WAIT_MAX).await
}

/// What an inbound connection's hello must say to be served.
#[derive(Clone, Debug)]
pub struct Expected {
    cluster_id: u64,
    /// This member's consensus engine (`ConsensusKind::name`).
    consensus: &'static str,
    /// The last refusal logged for each peer: a refused peer keeps reconnecting, and a warning
    /// per attempt would bury the log.
    warned: Arc<Mutex<HashMap<NodeId, String>>>,
}

impl Expected {
    pub fn new(cluster_id: u64, consensus: &'static str) -> Self {
        Self { cluster_id, consensus, warned: Arc::default() }
    }

    /// Whether refusing `from` for `why` is news (and so worth a warning).
    fn is_news(&self, from: NodeId, why: &str) -> bool {
        let mut warned = self.warned.lock().expect("warned lock");
        if warned.get(&from).is_some_and(|last| last == why) {
            return false;
        }
        warned.insert(from, why.to_string());
        true
    }

    /// Why a peer that says `hello` is not served, if it is not.
    fn refusal(&self, hello: &PeerHello) -> Option<String> {
        if hello.cluster_id != self.cluster_id {
            return Some(format!("it belongs to another cluster ({:x})", hello.cluster_id));
        }
        // Empty from a member older than the field: served, as before it.
        let theirs = hello.consensus.as_str();
        (!theirs.is_empty() && theirs != self.consensus)
            .then(|| format!("it runs {theirs}, this member {}", self.consensus))
    }
}

/// Receiving side: accepts peer connections (over TLS with `tls`) and reports every message,
/// forwarded command and rejection, and every connection that ends, to `events`. Snapshots are
/// received through files in `snapshot_dir` (the data directory); partial ones a crash left
/// there are removed first.
#[allow(clippy::too_many_arguments)]
pub async fn listen(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    expected: Expected,
    directory: PeerDirectory,
    snapshot_dir: PathBuf,
    is_removed: impl Fn(NodeId) -> bool + Clone + Send + Sync + 'static,
    events: PeerEvents,
    traffic: Arc<PeerTraffic>,
) {
    match snapshot_stream::remove_partial_files(&snapshot_dir) {
        Ok(0) => {}
        Ok(n) => tracing::info!("removed {n} partially received snapshot(s) from {}", snapshot_dir.display()),
        Err(e) => tracing::warn!("could not remove partially received snapshots from {}: {e}", snapshot_dir.display()),
    }
    let snapshot_dir = Arc::new(snapshot_dir);
    loop {
        let Ok((stream, remote)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let directory = directory.clone();
        let events = events.clone();
        let is_removed = is_removed.clone();
        let snapshot_dir = snapshot_dir.clone();
        let traffic = traffic.clone();
        let tls = tls.clone();
        let expected = expected.clone();
        tokio::spawn(async move {
            let result = match tls {
                None => serve_inbound(stream, expected, directory, &snapshot_dir, is_removed, &events, &traffic).await,
                Some(acceptor) => {
                    let Some(stream) = tls::accept(&acceptor, stream, "peer").await else { return };
                    serve_inbound(stream, expected, directory, &snapshot_dir, is_removed, &events, &traffic).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%remote, "peer connection closed: {e}");
            }
        });
    }
}

/// A connection's stream, as the listener accepted it: a plain one can be handed over.
trait Accepted: AsyncRead + AsyncWrite + Unpin {
    /// The socket taken off the runtime, to be read elsewhere from now on; or the stream back
    /// if it is encrypted (one TLS session is read in one place).
    fn into_plain(self) -> Result<std::io::Result<std::net::TcpStream>, Self>
    where
        Self: Sized;
}

impl Accepted for TcpStream {
    fn into_plain(self) -> Result<std::io::Result<std::net::TcpStream>, Self> {
        Ok(self.into_std())
    }
}

impl Accepted for tokio_rustls::server::TlsStream<TcpStream> {
    fn into_plain(self) -> Result<std::io::Result<std::net::TcpStream>, Self> {
        Err(self)
    }
}

async fn serve_inbound(
    mut stream: impl Accepted,
    expected: Expected,
    directory: PeerDirectory,
    snapshot_dir: &std::path::Path,
    is_removed: impl Fn(NodeId) -> bool + Send + Sync + 'static,
    events: &PeerEvents,
    traffic: &PeerTraffic,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    peer_frame::read(&mut stream, &mut buf).await?;
    let hello = PeerHello::decode(buf.as_slice()).map_err(|e| invalid(format!("bad hello: {e}")))?;
    if let Some(why) = expected.refusal(&hello) {
        let from = format_args!("{:x}", hello.from);
        if expected.is_news(hello.from, &why) {
            tracing::warn!(%from, "refused a peer's connection: {why} (logged again only if the reason changes)");
        }
        return Err(invalid(format!("refused {from}: {why}")));
    }
    if is_removed(hello.from) {
        // It was removed while it was away: tell it, so it stops instead of knocking forever.
        stream.write_all(&unpack::rejection_frame(hello.from)).await?;
        stream.flush().await?;
        return Err(invalid("a removed member connected".into()));
    }
    if hello.snapshot_stream {
        // Its end says nothing about the peer's process: no ConnectionLost.
        return receive_snapshot(stream, hello.from, snapshot_dir, events).await;
    }
    let from = hello.from;
    directory.write().expect("lock").insert(from, PeerInfo { name: hello.name, client_urls: hello.client_urls });
    let received = traffic.from(from);
    let stream = match events.adopts() {
        true => match stream.into_plain() {
            Ok(stream) => {
                let stream = stream?;
                let is_removed = Arc::new(is_removed);
                events.report(Inbound::Connection(Handover { from, stream, received, is_removed }));
                return Ok(());
            }
            Err(stream) => stream,
        },
        false => stream,
    };
    // One read for many frames instead of two per frame (length, then body).
    let mut stream = tokio::io::BufReader::with_capacity(INBOUND_BUFFER_BYTES, stream);
    let result = async {
        loop {
            peer_frame::read(&mut stream, &mut buf).await?;
            received.fetch_add(peer_frame::HEADER_BYTES + buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
            match unpack::unpack(from, &buf, &is_removed, &mut |event| events.report(event))? {
                Unpacked::Delivered => {}
                Unpacked::WeWereRemoved => return Ok(()),
                Unpacked::SenderRemoved => {
                    stream.write_all(&unpack::rejection_frame(from)).await?;
                    stream.flush().await?;
                    return Err(invalid("a removed member is still sending".into()));
                }
            }
        }
    }
    .await;
    // EOF or a reset: the kernel of a dead process closes its sockets at once.
    events.report(Inbound::ConnectionLost(from));
    result
}

/// Receives one snapshot stream, hands the message over if it arrived whole, and tells the
/// sender whether it did.
async fn receive_snapshot(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    from: NodeId,
    dir: &std::path::Path,
    events: &PeerEvents,
) -> std::io::Result<()> {
    let started = std::time::Instant::now();
    let result = snapshot_stream::read_snapshot(&mut stream, from, dir, SNAPSHOT_IDLE_MAX).await;
    let verdict = match result {
        Ok(m) => {
            if let Some(snapshot) = m.snapshot() {
                let (index, bytes) = (snapshot.meta.index, snapshot.data.len());
                tracing::info!(from = %format_args!("{from:x}"), index, bytes, elapsed = ?started.elapsed(), "received a snapshot");
            }
            events.report(Inbound::Message(m));
            Ok(())
        }
        Err(e) => {
            tracing::warn!(from = %format_args!("{from:x}"), "receiving a snapshot failed: {e}");
            Err(e.to_string())
        }
    };
    // Best effort: if the connection broke, the sender learns it from that.
    snapshot_stream::write_result(&mut stream, &verdict).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_raft::{Message, MessageBody};
    use tokio::io::AsyncReadExt;
    use tokio::sync::mpsc;

    /// Node 2 of cluster 42, listening on a free port: its address, and what it receives.
    async fn listening_peer(
        directory: PeerDirectory,
        data_dir: &std::path::Path,
        is_removed: impl Fn(NodeId) -> bool + Clone + Send + Sync + 'static,
    ) -> (SocketAddr, mpsc::UnboundedReceiver<Inbound>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (events, rx) = everything();
        tokio::spawn(listen(
            listener,
            None,
            Expected::new(42, "raft"),
            directory,
            data_dir.to_path_buf(),
            is_removed,
            events,
            Arc::default(),
        ));
        (addr, rx)
    }

    /// A sink that passes every event on to the returned channel.
    fn everything() -> (PeerEvents, mpsc::UnboundedReceiver<Inbound>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let events = PeerEvents::new(move |event| {
            let _ = tx.send(event);
        });
        (events, rx)
    }

    /// A sink that passes on what `pick` picks from each event.
    fn picking<T: Send + 'static>(
        pick: impl Fn(Inbound) -> Option<T> + Send + Sync + 'static,
    ) -> (PeerEvents, mpsc::UnboundedReceiver<T>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let events = PeerEvents::new(move |event| {
            if let Some(picked) = pick(event) {
                let _ = tx.send(picked);
            }
        });
        (events, rx)
    }

    /// A sink that passes on how each snapshot transfer ended: (peer, ok).
    fn snapshot_reports() -> (PeerEvents, mpsc::UnboundedReceiver<(NodeId, bool)>) {
        picking(|event| match event {
            Inbound::SnapshotDone { peer, ok } => Some((peer, ok)),
            _ => None,
        })
    }

    fn ignored() -> PeerEvents {
        PeerEvents::new(|_| {})
    }

    /// Node 1's transport to `peers`, with its snapshot reports on the returned channel.
    fn reporting_transport(
        peers: BTreeMap<NodeId, SocketAddr>,
    ) -> (Transport, mpsc::UnboundedReceiver<(NodeId, bool)>) {
        let (events, done_rx) = snapshot_reports();
        let hello = PeerHello { cluster_id: 42, from: 1, ..Default::default() };
        (Transport::start(hello, peers, events, Arc::default(), None), done_rx)
    }

    #[tokio::test]
    async fn a_peer_of_another_cluster_or_engine_is_refused() {
        use tokio::io::AsyncWriteExt;
        let dir = tempfile::tempdir().unwrap();
        let (addr, mut rx) = listening_peer(PeerDirectory::default(), dir.path(), |_| false).await;
        for hello in [
            PeerHello { cluster_id: 43, from: 1, ..Default::default() },
            PeerHello { cluster_id: 42, from: 1, consensus: "paxos".into(), ..Default::default() },
        ] {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(&peer_frame::encode(&hello)).await.unwrap();
            let mut answer = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
            assert_eq!(read.expect("the connection closed").unwrap(), 0, "{hello:?}: closed without a frame");
        }
        assert!(rx.try_recv().is_err(), "nothing of a refused peer reached the node");
    }

    #[test]
    fn a_refusal_is_news_once_per_peer_and_reason() {
        let expected = Expected::new(42, "raft");
        assert!(expected.is_news(1, "it runs paxos"));
        assert!(!expected.is_news(1, "it runs paxos"), "the same again");
        assert!(expected.is_news(2, "it runs paxos"), "another peer");
        assert!(expected.is_news(1, "it belongs to another cluster (2b)"), "another reason");
        assert!(expected.is_news(1, "it runs paxos"), "the first reason again, after another");
    }

    #[test]
    fn peer_urls_become_socket_addresses() {
        assert_eq!(url_to_addr("http://127.0.0.1:2380").unwrap(), "127.0.0.1:2380".parse().unwrap());
        assert_eq!(url_to_addr("localhost:22380/").unwrap(), "127.0.0.1:22380".parse().unwrap());
        assert!(url_to_addr("http://nowhere").unwrap_err().contains("bad URL"));
    }

    #[tokio::test]
    async fn messages_cross_a_real_connection_after_a_hello() {
        let directory = PeerDirectory::default();
        let dir = tempfile::tempdir().unwrap();
        let (addr, mut rx) = listening_peer(directory.clone(), dir.path(), |id| id == 9).await;
        let hello = PeerHello {
            cluster_id: 42,
            from: 1,
            name: "n1".into(),
            client_urls: vec!["http://c".into()],
            ..Default::default()
        };
        let transport = Transport::start(hello, [(2, addr)].into(), ignored(), Arc::default(), None);
        for round in 0..3 {
            transport.send_all([Message {
                from: 1,
                to: 2,
                term: 1,
                body: tally_raft::MessageBody::HeartbeatResp { round },
            }]);
        }
        for round in 0..3 {
            let Inbound::Message(m) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap()
            else {
                panic!("expected a message")
            };
            let PeerMessage::Raft(m) = m else { panic!("a Raft message") };
            assert_eq!(m.body, tally_raft::MessageBody::HeartbeatResp { round });
        }
        assert_eq!(directory.read().unwrap()[&1].client_urls, vec!["http://c"]);
        // A follower's client command for the leader travels the same connection.
        transport.forward(2, vec![Command { client_id: 7, seq: 3, op: None, ..Default::default() }]);
        let Inbound::Forwarded(cmd) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap()
        else {
            panic!("expected a forwarded command")
        };
        assert_eq!((cmd.client_id, cmd.seq), (7, 3));
        // The sender goes away: the receiver learns it from the closed connection.
        drop(transport);
        let lost = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        assert!(matches!(lost, Inbound::ConnectionLost(1)));
        // A removed member (id 9) that connects is told so.
        let (events, mut told_rx) = picking(|event| match event {
            Inbound::Rejected(reason) => Some(reason),
            _ => None,
        });
        let hello = PeerHello { cluster_id: 42, from: 9, ..Default::default() };
        let removed = Transport::start(hello, [(2, addr)].into(), events, Arc::default(), None);
        removed.send_all([Message { from: 9, to: 2, term: 1, body: tally_raft::MessageBody::TimeoutNow }]);
        let reason = tokio::time::timeout(Duration::from_secs(5), told_rx.recv()).await.unwrap().unwrap();
        assert!(reason.contains("removed"), "{reason}");
    }

    #[tokio::test]
    async fn a_peer_dropped_from_the_members_is_told_it_was_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (addr, mut rx) = listening_peer(PeerDirectory::default(), dir.path(), |_| false).await;
        let hello = PeerHello { cluster_id: 42, from: 1, ..Default::default() };
        let transport = Transport::start(hello, [(2, addr)].into(), ignored(), Arc::default(), None);
        transport.send_all([Message { from: 1, to: 2, term: 1, body: tally_raft::MessageBody::TimeoutNow }]);
        let first = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        assert!(matches!(first, Inbound::Message(_)));
        transport.set_peers(BTreeMap::new(), &[2].into());
        let told = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        assert!(matches!(told, Inbound::Rejected(ref reason) if reason.contains("removed")));
    }

    /// Forwards connections to `upstream`; the first one that carries more than `cut_after`
    /// bytes towards it is cut there (both sides closed), as a broken network would.
    async fn cutting_proxy(listener: TcpListener, upstream: SocketAddr, cut_after: usize) {
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        loop {
            let (mut client, _) = listener.accept().await.unwrap();
            let cut = cut.clone();
            tokio::spawn(async move {
                let mut server = TcpStream::connect(upstream).await.unwrap();
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let upward = async {
                    let (mut buf, mut sent) = (vec![0u8; 64 << 10], 0);
                    loop {
                        let n = cr.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        if sent + n > cut_after && !cut.swap(true, std::sync::atomic::Ordering::SeqCst) {
                            let _ = sw.write_all(&buf[..cut_after - sent]).await;
                            return;
                        }
                        sent += n;
                        if sw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                tokio::select! {
                    _ = upward => {}
                    _ = tokio::io::copy(&mut sr, &mut cw) => {}
                }
            });
        }
    }

    fn partial_files(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[tokio::test]
    async fn a_snapshot_broken_midway_is_reported_and_the_next_transfer_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let (addr, mut rx) = listening_peer(PeerDirectory::default(), dir.path(), |_| false).await;
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_addr = proxy.local_addr().unwrap();
        // Cut the snapshot's connection after about three and a half chunks.
        tokio::spawn(cutting_proxy(proxy, addr, snapshot_stream::CHUNK_BYTES * 7 / 2));
        let (transport, mut done_rx) = reporting_transport([(2, proxy_addr)].into());
        let data: Vec<u8> = (0..6 * snapshot_stream::CHUNK_BYTES + 12345).map(|i| (i % 253) as u8).collect();
        let meta = tally_raft::SnapshotMeta { index: 77, term: 4, conf: tally_raft::ConfState::with_voters([1, 2]) };
        let snapshot = tally_raft::Snapshot { meta, data: bytes::Bytes::from(data) };
        let m = Message { from: 1, to: 2, term: 4, body: MessageBody::Snapshot { snapshot } };
        let wait = Duration::from_secs(20);

        transport.send_all([m.clone()]);
        assert_eq!(tokio::time::timeout(wait, done_rx.recv()).await.unwrap(), Some((2, false)));
        // The receiver gave up too: nothing delivered, no partial file (it may still be closing).
        let deadline = tokio::time::Instant::now() + wait;
        while partial_files(dir.path()) > 0 {
            assert!(tokio::time::Instant::now() < deadline, "the partial file was never removed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(rx.try_recv().is_err(), "something was delivered from a broken transfer");

        transport.send_all([m.clone()]);
        assert_eq!(tokio::time::timeout(wait, done_rx.recv()).await.unwrap(), Some((2, true)));
        let Inbound::Message(got) = tokio::time::timeout(wait, rx.recv()).await.unwrap().unwrap() else {
            panic!("expected the snapshot message")
        };
        assert_eq!(got, m.into());
        assert_eq!(partial_files(dir.path()), 0);
        // Neither transfer's end looked like the peer's death.
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn one_snapshot_transfer_at_a_time_per_peer() {
        // A peer that accepts connections and reads their hellos, then nothing more.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (streams, mut streams_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut buf = Vec::new();
                peer_frame::read(&mut stream, &mut buf).await.unwrap();
                let _ = streams.send(PeerHello::decode(buf.as_slice()).unwrap().snapshot_stream);
                held.push(stream);
            }
        });
        let (transport, mut done_rx) = reporting_transport([(2, addr)].into());
        let wait = Duration::from_secs(5);
        assert_eq!(tokio::time::timeout(wait, streams_rx.recv()).await.unwrap(), Some(false), "the message stream");
        // Larger than what the socket buffers take, so the first transfer stays stuck.
        let snapshot = tally_raft::Snapshot { data: vec![7u8; 64 << 20].into(), ..Default::default() };
        let m = Message { from: 1, to: 2, term: 1, body: MessageBody::Snapshot { snapshot } };
        transport.send_all([m.clone()]);
        assert_eq!(tokio::time::timeout(wait, streams_rx.recv()).await.unwrap(), Some(true), "the first transfer");
        transport.send_all([m.clone()]);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(streams_rx.try_recv().is_err(), "a second transfer started while the first runs");
        assert!(done_rx.try_recv().is_err(), "nothing ended yet");
        // A change of address ends the transfer: reported as failed, and the next one starts.
        transport.set_peers([(2, "127.0.0.1:1".parse().unwrap())].into(), &BTreeSet::new());
        assert_eq!(tokio::time::timeout(wait, done_rx.recv()).await.unwrap(), Some((2, false)));
        transport.set_peers([(2, addr)].into(), &BTreeSet::new());
        transport.send_all([m]);
        let mut kinds = vec![
            tokio::time::timeout(wait, streams_rx.recv()).await.unwrap(),
            tokio::time::timeout(wait, streams_rx.recv()).await.unwrap(),
        ];
        kinds.sort();
        assert_eq!(kinds, [Some(false), Some(true)], "a new message stream and a new transfer");
    }

    #[tokio::test]
    async fn messages_and_snapshots_cross_tls_connections_and_a_plaintext_peer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let tls = crate::tls::test_pki::member_tls(dir.path());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (events, mut rx) = everything();
        let acceptor = Some(TlsAcceptor::from(tls.server_config(&[]).unwrap()));
        let data_dir = dir.path().to_path_buf();
        tokio::spawn(listen(
            listener,
            acceptor,
            Expected::new(42, "raft"),
            PeerDirectory::default(),
            data_dir,
            |_| false,
            events,
            Arc::default(),
        ));
        let (events, mut done_rx) = snapshot_reports();
        let hello = PeerHello { cluster_id: 42, from: 1, ..Default::default() };
        let connector = Some(TlsConnector::from(tls.client_config(&[], None).unwrap()));
        let transport = Transport::start(hello, [(2, addr)].into(), events, Arc::default(), connector);
        let wait = Duration::from_secs(10);
        for round in 0..3 {
            transport.send_all([Message { from: 1, to: 2, term: 1, body: MessageBody::HeartbeatResp { round } }]);
        }
        for round in 0..3 {
            let Inbound::Message(m) = tokio::time::timeout(wait, rx.recv()).await.unwrap().unwrap() else {
                panic!("expected a message")
            };
            let PeerMessage::Raft(m) = m else { panic!("a Raft message") };
            assert_eq!(m.body, MessageBody::HeartbeatResp { round });
        }
        let data: Vec<u8> = (0..2 * snapshot_stream::CHUNK_BYTES + 777).map(|i| (i % 253) as u8).collect();
        let meta = tally_raft::SnapshotMeta { index: 9, term: 1, conf: tally_raft::ConfState::with_voters([1, 2]) };
        let snapshot = tally_raft::Snapshot { meta, data: bytes::Bytes::from(data) };
        let m = Message { from: 1, to: 2, term: 1, body: MessageBody::Snapshot { snapshot } };
        transport.send_all([m.clone()]);
        assert_eq!(tokio::time::timeout(wait, done_rx.recv()).await.unwrap(), Some((2, true)));
        let Inbound::Message(got) = tokio::time::timeout(wait, rx.recv()).await.unwrap().unwrap() else {
            panic!("expected the snapshot")
        };
        assert_eq!(got, m.into());

        // A plaintext peer gets nothing delivered.
        let hello = PeerHello { cluster_id: 42, from: 3, ..Default::default() };
        let plain = Transport::start(hello, [(2, addr)].into(), ignored(), Arc::default(), None);
        plain.send_all([Message { from: 3, to: 2, term: 1, body: MessageBody::TimeoutNow }]);
        assert!(
            tokio::time::timeout(Duration::from_millis(300), rx.recv()).await.is_err(),
            "a plaintext peer got through"
        );
    }

    #[tokio::test]
    async fn a_snapshot_for_an_unknown_peer_fails_at_once() {
        let (transport, mut done_rx) = reporting_transport(BTreeMap::new());
        let body = MessageBody::Snapshot { snapshot: tally_raft::Snapshot::default() };
        transport.send_all([Message { from: 1, to: 5, term: 1, body }]);
        assert_eq!(done_rx.try_recv().unwrap(), (5, false));
    }
}
