//! Inbound peer connections read by the driver's own thread.
//!
//! A message read by a tokio worker and passed to the driver through a channel woke two
//! threads per hop, the worker and then the driver. On a virtual machine a wake-up costs tens
//! of microseconds of CPU, and a replicated write takes several hops, so that was most of the
//! CPU a write cost at low load (bench/HISTORY.md). So once a plain connection has said hello,
//! the listener hands its socket over (`Inbound::Connection`), the driver waits on it in the
//! same epoll as its input channel (`driver::inbox`), and reads and decodes its frames where
//! they are handled. An encrypted connection stays with its tokio task.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use tally_raft::NodeId;

use crate::peer::events::{Handover, Inbound};
use crate::peer::frame::{payload_len, HEADER_BYTES};
use crate::peer::unpack::{self, invalid, Unpacked};

/// Bytes read from one connection before the others (and the driver's other work) get a
/// turn; the rest is read in the next turn.
const READ_PER_TURN_MAX: usize = 1 << 20;
/// A connection's read buffer to begin with (it grows to hold the largest frame).
const BUFFER_BYTES: usize = 64 << 10;

/// The connections, by their token in the driver's epoll.
#[derive(Default)]
pub struct DirectPeers {
    connections: HashMap<Token, Connection>,
    /// The next token to give (0 is the inbox's waker).
    next_token: usize,
    /// Connections left with unread bytes at the end of their turn.
    unfinished: Vec<Token>,
}

struct Connection {
    from: NodeId,
    stream: TcpStream,
    buffer: FrameBuffer,
    received: Arc<AtomicU64>,
    is_removed: Arc<dyn Fn(NodeId) -> bool + Send + Sync>,
}

impl DirectPeers {
    /// Starts reading `handover`'s connection: registered with `registry` for readability.
    pub fn adopt(&mut self, registry: &Registry, handover: Handover) -> io::Result<()> {
        self.next_token += 1;
        let token = Token(self.next_token);
        let Handover { from, stream, received, is_removed } = handover;
        let mut stream = TcpStream::from_std(stream);
        registry.register(&mut stream, token, Interest::READABLE)?;
        let buffer = FrameBuffer::new(BUFFER_BYTES);
        // Read in the next turn whatever came before the registration.
        self.unfinished.push(token);
        self.connections.insert(token, Connection { from, stream, buffer, received, is_removed });
        Ok(())
    }

    /// Whether a connection still has bytes to read from its last turn (then the driver
    /// should not wait).
    pub fn has_unfinished(&self) -> bool {
        !self.unfinished.is_empty()
    }

    /// The connections left unfinished, to read again with those the epoll reports.
    pub fn take_unfinished(&mut self) -> Vec<Token> {
        std::mem::take(&mut self.unfinished)
    }

    /// Reads what `token`'s connection has, reporting its messages in order; a connection
    /// that ends or fails is closed and reported lost.
    pub fn read(&mut self, registry: &Registry, token: Token, report: &mut dyn FnMut(Inbound)) {
        let Some(connection) = self.connections.get_mut(&token) else { return };
        match connection.read_turn(report) {
            Ok(true) => {
                if !self.unfinished.contains(&token) {
                    self.unfinished.push(token);
                }
            }
            Ok(false) => {}
            Err(e) => {
                let mut connection = self.connections.remove(&token).expect("read above");
                let from = connection.from;
                tracing::debug!(peer = %format_args!("{from:x}"), "peer connection closed: {e}");
                let _ = registry.deregister(&mut connection.stream);
                self.unfinished.retain(|t| *t != token);
                // EOF or a reset: the kernel of a dead process closes its sockets at once.
                report(Inbound::ConnectionLost(from));
            }
        }
    }
}

impl Connection {
    /// Reads and reports frames until the socket has nothing more or the turn's bytes are
    /// used; true if bytes may be left. An error (the end included) ends the connection.
    fn read_turn(&mut self, report: &mut dyn FnMut(Inbound)) -> io::Result<bool> {
        let mut budget = READ_PER_TURN_MAX;
        loop {
            self.deliver_frames(report)?;
            if budget == 0 {
                return Ok(true);
            }
            match self.stream.read(self.buffer.spare()) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed by the peer")),
                Ok(n) => {
                    self.buffer.filled(n);
                    self.received.fetch_add(n as u64, Ordering::Relaxed);
                    budget = budget.saturating_sub(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn deliver_frames(&mut self, report: &mut dyn FnMut(Inbound)) -> io::Result<()> {
        let from = self.from;
        while let Some(payload) = self.buffer.next_frame()? {
            match unpack::unpack(from, payload, &*self.is_removed, report)? {
                Unpacked::Delivered => {}
                Unpacked::WeWereRemoved => return Err(invalid("this member was removed".into())),
                Unpacked::SenderRemoved => {
                    // Best effort: a removed member that misses it hears it when it reconnects.
                    let _ = self.stream.write(&unpack::rejection_frame(from));
                    return Err(invalid("a removed member is still sending".into()));
                }
            }
        }
        Ok(())
    }
}

/// Bytes read from a connection: whole frames are taken from the front, reads land at the back.
struct FrameBuffer {
    bytes: Vec<u8>,
    /// The first byte not yet taken.
    start: usize,
    /// The end of what was read.
    end: usize,
}

impl FrameBuffer {
    fn new(capacity: usize) -> Self {
        Self { bytes: vec![0; capacity], start: 0, end: 0 }
    }

    /// The next whole frame's payload, if it has arrived.
    fn next_frame(&mut self) -> io::Result<Option<&[u8]>> {
        let available = &self.bytes[self.start..self.end];
        let Some(header) = available.first_chunk::<{ HEADER_BYTES as usize }>() else { return Ok(None) };
        let len = payload_len(*header)?;
        let frame = HEADER_BYTES as usize + len;
        if available.len() < frame {
            self.make_room(frame);
            return Ok(None);
        }
        let payload = self.start + HEADER_BYTES as usize..self.start + frame;
        self.start += frame;
        Ok(Some(&self.bytes[payload]))
    }

    /// Room for `frame` bytes from the current start: moves the unread bytes to the front,
    /// and grows the buffer if the frame is larger than it.
    fn make_room(&mut self, frame: usize) {
        if self.start + frame <= self.bytes.len() {
            return;
        }
        self.bytes.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if frame > self.bytes.len() {
            self.bytes.resize(frame, 0);
        }
    }

    /// Where the next read goes (never empty).
    fn spare(&mut self) -> &mut [u8] {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.end == self.bytes.len() {
            self.make_room(self.bytes.len() - self.start + 1);
        }
        &mut self.bytes[self.end..]
    }

    fn filled(&mut self, n: usize) {
        self.end += n;
    }
}

#[cfg(test)]
mod tests;
