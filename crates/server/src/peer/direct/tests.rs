use std::io::Write as _;
use std::net::{TcpListener, TcpStream as StdStream};
use std::time::{Duration, Instant};

use mio::{Events, Poll};
use tally_node::{paxos_codec, PeerMessage};
use tally_proto::etcdserverpb::PutRequest;
use tally_proto::tally_v1::command::Op;
use tally_proto::tally_v1::{Command, PeerBatch, PeerHello, PeerRejection};
use tally_proto::Message as _;
use tally_raft::{Message, MessageBody};

use super::*;
use crate::peer::events::PeerEvents;
use crate::peer::frame as peer_frame;
use crate::peer::transport::{self, PeerDirectory, Transport};

/// A peer's end of a connection, and the connection handed over to be read by `DirectPeers`.
fn connected(from: NodeId, is_removed: impl Fn(NodeId) -> bool + Send + Sync + 'static) -> (StdStream, Handover) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = StdStream::connect(listener.local_addr().unwrap()).unwrap();
    let (stream, _) = listener.accept().unwrap();
    stream.set_nonblocking(true).unwrap();
    (peer, Handover { from, stream, received: Arc::default(), is_removed: Arc::new(is_removed) })
}

/// A peer's end of a connection the returned reader has adopted.
fn adopted(from: NodeId, is_removed: impl Fn(NodeId) -> bool + Send + Sync + 'static) -> (StdStream, Reader) {
    let (peer, handover) = connected(from, is_removed);
    let mut reader = Reader::new();
    reader.adopt(handover);
    (peer, reader)
}

fn heartbeat_frame(from: NodeId, rounds: std::ops::Range<u64>) -> Vec<u8> {
    let mut batch = PeerBatch::default();
    for round in rounds {
        let m = Message { from, to: 2, term: 1, body: MessageBody::HeartbeatResp { round } };
        paxos_codec::push_to_batch(&mut batch, PeerMessage::Raft(m));
    }
    peer_frame::encode(&batch)
}

/// The driver's side in miniature: an epoll and the connections it reads.
struct Reader {
    poll: Poll,
    events: Events,
    peers: DirectPeers,
}

impl Reader {
    fn new() -> Self {
        Self { poll: Poll::new().unwrap(), events: Events::with_capacity(8), peers: DirectPeers::default() }
    }

    fn adopt(&mut self, handover: Handover) {
        self.peers.adopt(self.poll.registry(), handover).unwrap();
    }

    /// Waits and reads until `count` events arrived (or 5 s passed), as the driver's turns do.
    fn read(&mut self, count: usize) -> Vec<Inbound> {
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while out.len() < count && Instant::now() < deadline {
            let mut tokens = self.peers.take_unfinished();
            self.poll.poll(&mut self.events, Some(Duration::from_millis(50))).unwrap();
            tokens.extend(self.events.iter().map(|e| e.token()));
            for token in tokens {
                self.peers.read(self.poll.registry(), token, &mut |event| out.push(event));
            }
        }
        out
    }
}

fn rounds(events: &[Inbound]) -> Vec<u64> {
    let round = |event: &Inbound| match event {
        Inbound::Message(PeerMessage::Raft(Message { body: MessageBody::HeartbeatResp { round }, .. })) => *round,
        other => panic!("expected a heartbeat answer, got {other:?}"),
    };
    events.iter().map(round).collect()
}

#[test]
fn frames_are_delivered_in_order_however_the_bytes_arrive() {
    let (mut peer, handover) = connected(1, |_| false);
    let received = handover.received.clone();
    let mut reader = Reader::new();
    reader.adopt(handover);
    let (first, second) = (heartbeat_frame(1, 0..3), heartbeat_frame(1, 3..5));
    // The first frame cut inside its length prefix, then the rest with the second frame.
    peer.write_all(&first[..2]).unwrap();
    assert!(reader.read(1).is_empty(), "half a length prefix is not a frame");
    peer.write_all(&[&first[2..], &second[..]].concat()).unwrap();
    assert_eq!(rounds(&reader.read(5)), vec![0, 1, 2, 3, 4]);
    assert_eq!(received.load(Ordering::Relaxed), (first.len() + second.len()) as u64);
}

#[test]
fn a_frame_larger_than_the_buffer_arrives_whole() {
    let (mut peer, mut reader) = adopted(1, |_| false);
    let put = PutRequest { key: b"k".to_vec(), value: vec![b'x'; 3 * BUFFER_BYTES], ..Default::default() };
    let command = Command { client_id: 7, seq: 1, op: Some(Op::Put(put)), ..Default::default() };
    let batch = PeerBatch { forwarded: vec![command.clone()], ..Default::default() };
    let frame = peer_frame::encode(&batch);
    let writer = std::thread::spawn(move || peer.write_all(&[frame, heartbeat_frame(1, 9..10)].concat()).map(|_| peer));
    let events = reader.read(2);
    let _peer = writer.join().unwrap().unwrap();
    assert!(matches!(&events[0], Inbound::Forwarded(c) if *c == command), "{events:?}");
    assert_eq!(rounds(&events[1..]), vec![9]);
}

#[test]
fn a_closed_connection_is_reported_lost_once() {
    let (mut peer, mut reader) = adopted(3, |_| false);
    peer.write_all(&heartbeat_frame(3, 0..1)).unwrap();
    drop(peer);
    let events = reader.read(3);
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(matches!(events[1], Inbound::ConnectionLost(3)));
    assert!(!reader.peers.has_unfinished());
}

#[test]
fn garbage_ends_the_connection() {
    let (mut peer, mut reader) = adopted(3, |_| false);
    // A length beyond any frame's.
    peer.write_all(&u32::MAX.to_be_bytes()).unwrap();
    let events = reader.read(1);
    assert!(matches!(events[..], [Inbound::ConnectionLost(3)]), "{events:?}");
}

#[test]
fn a_message_from_another_sender_ends_the_connection() {
    let (mut peer, mut reader) = adopted(3, |_| false);
    peer.write_all(&heartbeat_frame(4, 0..1)).unwrap();
    let events = reader.read(1);
    assert!(matches!(events[..], [Inbound::ConnectionLost(3)]), "{events:?}");
}

#[test]
fn a_removed_sender_is_told_and_disconnected() {
    let (mut peer, mut reader) = adopted(9, |id| id == 9);
    peer.write_all(&heartbeat_frame(9, 0..1)).unwrap();
    let events = reader.read(1);
    assert!(matches!(events[..], [Inbound::ConnectionLost(9)]), "{events:?}");
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut header = [0; 4];
    std::io::Read::read_exact(&mut peer, &mut header).unwrap();
    let mut body = vec![0; u32::from_be_bytes(header) as usize];
    std::io::Read::read_exact(&mut peer, &mut body).unwrap();
    assert!(PeerRejection::decode(body.as_slice()).unwrap().reason.contains("member 9 was removed"));
}

#[test]
fn being_told_we_were_removed_is_reported() {
    let (mut peer, mut reader) = adopted(3, |_| false);
    let rejected = PeerBatch { rejected: Some(PeerRejection { reason: "gone".into() }), ..Default::default() };
    peer.write_all(&peer_frame::encode(&rejected)).unwrap();
    let events = reader.read(2);
    assert!(matches!(&events[..], [Inbound::Rejected(r), Inbound::ConnectionLost(3)] if r == "gone"), "{events:?}");
}

/// The listener hands a plain connection over after its hello to a sink that adopts, and
/// what the sender's transport sends is read here.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn the_listener_hands_a_plain_connection_over_after_the_hello() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let events = PeerEvents::adopting(move |event| {
        let _ = tx.send(event);
    });
    let directory = PeerDirectory::default();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_path_buf();
    let expected = transport::Expected::new(42, "raft");
    tokio::spawn(transport::listen(
        listener,
        None,
        expected,
        directory.clone(),
        data_dir,
        |_| false,
        events,
        Arc::default(),
    ));
    let hello = PeerHello { cluster_id: 42, from: 1, name: "n1".into(), ..Default::default() };
    let sender = Transport::start(hello, [(2, addr)].into(), PeerEvents::new(|_| {}), Arc::default(), None);
    let handover = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(5))).await.unwrap().unwrap();
    let Inbound::Connection(handover) = handover else { panic!("expected the connection, got {handover:?}") };
    assert_eq!(handover.from, 1);
    assert_eq!(directory.read().unwrap()[&1].name, "n1");
    for round in 0..3 {
        sender.send_all([Message { from: 1, to: 2, term: 1, body: MessageBody::HeartbeatResp { round } }]);
    }
    let events = tokio::task::spawn_blocking(move || {
        let mut reader = Reader::new();
        reader.adopt(handover);
        reader.read(3)
    })
    .await
    .unwrap();
    assert_eq!(rounds(&events), vec![0, 1, 2]);
}
