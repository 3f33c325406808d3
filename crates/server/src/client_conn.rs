//! gRPC connections tuned for many small messages, on both ends.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::server::Connected;

/// Accepted client connections, each `tuned`.
pub fn client_connections(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = io::Result<NoVectoredWrites<TcpStream>>> {
    use tokio_stream::StreamExt;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| tuned(conn?))
}

/// A gRPC connection as both ends use it. Nagle's algorithm off: small messages must not wait
/// for the other end's delayed ACK (without this, about a quarter of a server's writes took
/// ~40 ms). No vectored writes (see below).
pub fn tuned(stream: TcpStream) -> io::Result<NoVectoredWrites<TcpStream>> {
    stream.set_nodelay(true)?;
    Ok(NoVectoredWrites(stream))
}

/// A connection that tells HTTP/2 it has no vectored writes.
///
/// h2 keeps a DATA payload of 256 bytes or more out of its write buffer when the socket can
/// write vectors, and flushes before it buffers the next frame; without vectors the limit is
/// 1 KiB. A unary response is a DATA frame then a trailers frame, so every answer to a read of
/// a 256-byte value took two `writev` calls and reached the client as two segments, and a
/// client's puts of such values left one `writev` each. With this, small messages and their
/// neighbours on the connection leave in one `write`; a large payload costs one more `write`
/// per 16 KiB frame.
pub struct NoVectoredWrites<T>(pub T);

impl<T: Connected> Connected for NoVectoredWrites<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> T::ConnectInfo {
        self.0.connect_info()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for NoVectoredWrites<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for NoVectoredWrites<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}
