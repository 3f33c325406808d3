//! Accepting a TLS connection, and saying why one was refused: once per connection, at warn,
//! with the remote address and rustls' reason (a plaintext client, an unknown CA, an expired
//! certificate, none at all), as etcd logs `rejected connection`. The member goes on serving
//! the others.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::identity::{common_name, CertCommonName};

/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_MAX: Duration = Duration::from_secs(10);

/// The TLS connection over `stream`, or `None` (logged) if its handshake failed. `what` is
/// "client" or "peer".
pub async fn accept(acceptor: &TlsAcceptor, stream: TcpStream, what: &str) -> Option<TlsStream<TcpStream>> {
    let remote = stream.peer_addr().map_or_else(|_| "unknown".to_string(), |a: SocketAddr| a.to_string());
    let error = match tokio::time::timeout(HANDSHAKE_MAX, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => return Some(stream),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no TLS handshake within {HANDSHAKE_MAX:?}"),
    };
    tracing::warn!(remote_addr = %remote, %error, "rejected {what} connection");
    None
}

/// The common name of the certificate the other end presented (and the server verified).
pub fn peer_common_name(stream: &TlsStream<TcpStream>) -> Option<CertCommonName> {
    let certs = stream.get_ref().1.peer_certificates()?;
    common_name(certs.first()?).map(CertCommonName)
}
