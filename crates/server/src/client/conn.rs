//! gRPC connections tuned for many small messages, on both ends.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll, Wake, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A gRPC connection as both ends use it. Nagle's algorithm off: small messages must not wait
/// for the other end's delayed ACK (without this, about a quarter of a server's writes took
/// ~40 ms). Writes coalesced (see below).
/// The next connection `listener` accepts. A failure (out of file descriptors, most likely) is
/// logged and retried after a pause that gives the other connections time to close.
pub async fn accept(listener: &TcpListener, what: &str) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => return stream,
            Err(e) => {
                tracing::warn!("cannot accept a {what} connection: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

pub fn tuned(stream: TcpStream) -> io::Result<CoalescedWrites<TcpStream>> {
    stream.set_nodelay(true)?;
    Ok(CoalescedWrites::new(stream))
}

/// Bytes held back before a write goes out without waiting for a flush.
const HELD_MAX: usize = 64 * 1024;
/// A buffer that grew past this is freed once written, so that an idle connection holds none.
const HELD_KEPT_MAX: usize = 16 * 1024;

/// A connection whose writes leave together: what HTTP/2 writes is held until it flushes, and a
/// flush waits until this tokio worker has run every other task it has ready, so the answers
/// (or requests) those tasks finish on the same connection leave in one `write`.
///
/// With tokio's LIFO slot, the task that finishes a request wakes its connection's task, which
/// runs next and flushes that one answer: one `write` and, at the other end, one wake-up and
/// one `read` per request, although a ReadIndex round or a group commit finishes dozens at once.
/// The wait ends only when tokio's deferred wake says the worker ran out of other tasks: the
/// connection's task is also woken, and polled, by every other answer in the meantime.
///
/// It also tells HTTP/2 it has no vectored writes: h2 keeps a DATA payload of 256 bytes or more
/// out of its write buffer when the socket can write vectors, and flushes before it buffers the
/// next frame; without vectors the limit is 1 KiB, so a small message and its trailers are
/// buffered together.
pub struct CoalescedWrites<T> {
    io: T,
    held: Vec<u8>,
    /// How much of `held` is written already.
    written: usize,
    /// A flush waiting for the worker's other tasks: opens when they have run.
    gate: Option<Arc<Gate>>,
}

impl<T> CoalescedWrites<T> {
    pub fn new(io: T) -> Self {
        Self { io, held: Vec::new(), written: 0, gate: None }
    }
}

/// The waker a waiting flush defers: it records that the deferred wake came, then wakes the
/// connection's task.
struct Gate {
    open: AtomicBool,
    task: Waker,
}

impl Gate {
    /// Defers a wake until the worker has run its other ready tasks (at once outside a runtime).
    fn defer(task: &Waker) -> Arc<Gate> {
        let gate = Arc::new(Gate { open: AtomicBool::new(false), task: task.clone() });
        let waker = Waker::from(gate.clone());
        let _ = std::pin::pin!(tokio::task::yield_now()).poll(&mut Context::from_waker(&waker));
        gate
    }
}

impl Wake for Gate {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.open.store(true, Ordering::Release);
        self.task.wake_by_ref();
    }
}

impl<T: AsyncWrite + Unpin> CoalescedWrites<T> {
    fn poll_write_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.held.len() {
            match Pin::new(&mut self.io).poll_write(cx, &self.held[self.written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        if self.held.capacity() > HELD_KEPT_MAX {
            self.held = Vec::new();
        } else {
            self.held.clear();
        }
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CoalescedWrites<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CoalescedWrites<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.held.len() >= HELD_MAX {
            ready!(self.poll_write_held(cx))?;
        }
        self.held.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.held.is_empty() {
            match &self.gate {
                None => {
                    self.gate = Some(Gate::defer(cx.waker()));
                    return Poll::Pending;
                }
                // Woken by something else (another answer for this connection): hold on.
                Some(gate) if !gate.open.load(Ordering::Acquire) => return Poll::Pending,
                Some(_) => {}
            }
        }
        ready!(self.poll_write_held(cx))?;
        self.gate = None;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_write_held(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::AsyncWriteExt;

    use super::*;

    /// A socket that records each `write` and takes at most `per_write` bytes of it.
    #[derive(Clone)]
    struct Recorder {
        writes: Arc<Mutex<Vec<Vec<u8>>>>,
        per_write: usize,
    }

    impl Recorder {
        fn new(per_write: usize) -> Self {
            Self { writes: Arc::default(), per_write }
        }

        fn writes(&self) -> Vec<Vec<u8>> {
            self.writes.lock().unwrap().clone()
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.per_write);
            self.writes.lock().unwrap().push(buf[..n].to_vec());
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn writes_before_a_flush_leave_in_one_write() {
        let socket = Recorder::new(usize::MAX);
        let mut conn = CoalescedWrites::new(socket.clone());
        conn.write_all(b"first answer;").await.unwrap();
        conn.write_all(b"second answer").await.unwrap();
        assert!(socket.writes().is_empty(), "nothing leaves before the flush");
        conn.flush().await.unwrap();
        assert_eq!(socket.writes(), [b"first answer;second answer".to_vec()]);
        conn.write_all(b"third").await.unwrap();
        conn.flush().await.unwrap();
        assert_eq!(socket.writes().len(), 2, "a later flush writes again");
    }

    #[tokio::test]
    async fn a_flush_waits_for_the_workers_other_ready_tasks() {
        let socket = Recorder::new(usize::MAX);
        let mut conn = CoalescedWrites::new(socket.clone());
        conn.write_all(b"a").await.unwrap();
        let observed = socket.clone();
        let other_task = tokio::spawn(async move { observed.writes().len() });
        conn.flush().await.unwrap();
        assert_eq!(other_task.await.unwrap(), 0, "the spawned task ran before the write left");
        assert_eq!(socket.writes().len(), 1);
    }

    #[tokio::test]
    async fn a_flush_polled_again_before_the_other_tasks_ran_still_holds_its_writes() {
        let socket = Recorder::new(usize::MAX);
        let mut conn = CoalescedWrites::new(socket.clone());
        let flush = |conn: &mut CoalescedWrites<Recorder>| {
            let waker = std::task::Waker::noop();
            Pin::new(conn).poll_flush(&mut Context::from_waker(waker)).is_ready()
        };
        conn.write_all(b"first answer;").await.unwrap();
        assert!(!flush(&mut conn), "the first flush waits");
        // Another answer on this connection wakes its task, which flushes again at once.
        conn.write_all(b"second answer").await.unwrap();
        assert!(!flush(&mut conn), "the worker has not run out of tasks yet");
        assert!(socket.writes().is_empty());
        // This task yields: the worker has nothing else to run, and the deferred wake comes.
        tokio::task::yield_now().await;
        assert!(flush(&mut conn));
        assert_eq!(socket.writes(), [b"first answer;second answer".to_vec()]);
    }

    #[tokio::test]
    async fn short_writes_deliver_every_byte_in_order() {
        let socket = Recorder::new(7);
        let mut conn = CoalescedWrites::new(socket.clone());
        let data: Vec<u8> = (0..HELD_MAX * 2 + 100).map(|i| (i % 251) as u8).collect();
        for chunk in data.chunks(1000) {
            conn.write_all(chunk).await.unwrap();
        }
        conn.shutdown().await.unwrap();
        assert_eq!(socket.writes().concat(), data);
    }

    #[tokio::test]
    async fn a_full_buffer_leaves_without_waiting_for_a_flush() {
        let socket = Recorder::new(usize::MAX);
        let mut conn = CoalescedWrites::new(socket.clone());
        conn.write_all(&vec![1; HELD_MAX]).await.unwrap();
        assert!(socket.writes().is_empty());
        conn.write_all(b"more").await.unwrap();
        assert_eq!(socket.writes(), [vec![1; HELD_MAX]]);
        assert!(conn.held.capacity() <= HELD_KEPT_MAX, "a large buffer is freed once written");
    }
}
