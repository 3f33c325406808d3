//! TLS on every link, with etcd's flags, by rustls with the ring provider: the client URLs
//! (gRPC and HTTP/1.1 on one port, told apart by ALPN), the metrics URLs, the peer connections
//! and snapshot streams, and the gRPC channels between members. Key pairs are read again when
//! their files change, so certificates rotate without a restart.

mod auto;
mod channel;
mod config;
mod files;
mod handshake;
mod identity;
mod key_pair;
#[cfg(test)]
pub(crate) mod test_pki;

use std::path::PathBuf;

pub use channel::ChannelConnector;
pub use config::{host_of_url, is_https, provider, server_name_of, AutoTls, Tls, TlsFlags};
pub use handshake::{accept, peer_common_name};
pub use identity::{common_name, CertCommonName};

/// ALPN of the client URLs: gRPC over HTTP/2, etcd's HTTP endpoints over HTTP/1.1.
pub const CLIENT_ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

#[derive(Clone, Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    #[error("{0}")]
    Flags(String),
    #[error("cannot make a self-signed certificate in {0}")]
    AutoTls(String),
}
