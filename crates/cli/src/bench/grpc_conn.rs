//! The load generator's connections: etcd's unary KV calls written straight onto an HTTP/2
//! connection with the `h2` crate, as h2load does, instead of through tonic's `Channel`.
//!
//! A tonic call passes a tower buffer (a channel to a worker task), hyper's dispatch (another
//! channel, to the connection task) and tonic's streaming codec: over a third of the load
//! generator's CPU per read. It takes the same share from every server the bench drives, so a
//! thinner client leaves more of the machine to the servers being compared. What goes on the
//! wire is what tonic sends: the same headers, one data frame per request.
//!
//! A connection that breaks is opened again by the next call on it, at most every
//! `REDIAL_EVERY`: calls wait for that, and fail as `Unavailable` if it fails.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use http::uri::{Authority, PathAndQuery, Scheme};
use prost::Message;
use tally_proto::etcdserverpb::{PutRequest, PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse};
use tally_server::client::{conn as client_conn, grpc_frame};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tonic::{Code, Status};

const REDIAL_EVERY: Duration = Duration::from_millis(100);
/// Responses are read whole; far above any the bench asks for.
const RESPONSE_MAX: usize = 64 << 20;

/// `--user name:password`: every connection logs in once and sends its token with each call,
/// as an etcd client with credentials does.
static USER: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();

pub(super) fn set_user(user: &str) -> Result<(), String> {
    let (name, password) = user.split_once(':').ok_or("--user takes name:password")?;
    USER.set((name.to_owned(), password.to_owned())).map_err(|_| "--user given twice".to_owned())
}

/// `--cacert`: connections are TLS, verifying the servers' certificates against this CA.
static TLS: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();

pub(super) fn set_ca(path: &std::path::Path) -> Result<(), String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| format!("--cacert {}: {e}", path.display()))? {
        roots.add(cert.map_err(|e| format!("--cacert {}: {e}", path.display()))?).map_err(|e| e.to_string())?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(tally_server::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    TLS.set(Arc::new(config)).map_err(|_| "--cacert given twice".to_owned())
}

/// A token for `url` with the `--user` credentials (none without them).
async fn log_in(url: &http::Uri) -> Result<Option<http::HeaderValue>, String> {
    let Some((name, password)) = USER.get() else { return Ok(None) };
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_string())
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(2));
    let channel = match TLS.get() {
        Some(tls) => endpoint.connect_with_connector(tally_server::tls::ChannelConnector::new(tls.clone())).await,
        None => endpoint.connect().await,
    }
    .map_err(|e| format!("{url}: {e}"))?;
    let mut auth = tally_proto::etcdserverpb::auth_client::AuthClient::new(channel);
    let req = tally_proto::etcdserverpb::AuthenticateRequest { name: name.clone(), password: password.clone() };
    let token = auth.authenticate(req).await.map_err(|s| format!("logging in at {url}: {}", s.message()))?;
    http::HeaderValue::from_str(&token.into_inner().token).map(Some).map_err(|e| e.to_string())
}

/// One HTTP/2 connection to an endpoint, shared by the callers on one client thread.
pub(super) struct Conn {
    address: String,
    authority: Authority,
    /// The `token` metadata every call sends (with `--user`).
    token: Option<http::HeaderValue>,
    /// The live connection and how many times it was opened; `None` while broken.
    slot: Mutex<Slot>,
}

struct Slot {
    opened: u64,
    send: Option<SendRequest<Bytes>>,
    last_dial: Option<Instant>,
}

impl Conn {
    /// Opens a connection to `endpoint` (host:port, or a URL). One that cannot be opened now
    /// is reported, and tried again by the calls on it.
    pub(super) async fn open(endpoint: &str) -> Result<Arc<Conn>, String> {
        let url: http::Uri = super::url(endpoint).parse().map_err(|e| format!("bad endpoint {endpoint}: {e}"))?;
        let authority = url.authority().cloned().ok_or_else(|| format!("bad endpoint {endpoint}: no host"))?;
        let address = format!("{}:{}", authority.host(), authority.port_u16().unwrap_or(2379));
        let token = log_in(&url).await?;
        let slot = Mutex::new(Slot { opened: 0, send: None, last_dial: None });
        let conn = Arc::new(Conn { address, authority, token, slot });
        if let Err(e) = conn.redial(0).await {
            eprintln!("tally bench: cannot reach {endpoint} ({}); its requests will count as errors", e.message());
        }
        Ok(conn)
    }

    /// A caller of its own on this connection.
    pub(super) async fn caller(self: &Arc<Self>) -> Caller {
        let slot = self.slot.lock().await;
        Caller { conn: self.clone(), opened: slot.opened, send: slot.send.clone() }
    }

    /// Opens the connection again unless someone did since the caller's copy (`seen`); dials
    /// at most every `REDIAL_EVERY`, so that the callers of a dead endpoint wait instead of
    /// spending the run's requests on it. The live connection and its count.
    async fn redial(&self, seen: u64) -> Result<(u64, SendRequest<Bytes>), Status> {
        let mut slot = self.slot.lock().await;
        if let (Some(send), true) = (&slot.send, slot.opened != seen) {
            return Ok((slot.opened, send.clone()));
        }
        if let Some(at) = slot.last_dial {
            tokio::time::sleep_until(at + REDIAL_EVERY).await;
        }
        slot.last_dial = Some(Instant::now());
        slot.send = None;
        let send = self.dial().await.map_err(|e| Status::unavailable(format!("{}: {e}", self.address)))?;
        slot.opened += 1;
        slot.send = Some(send.clone());
        Ok((slot.opened, send))
    }

    async fn dial(&self) -> Result<SendRequest<Bytes>, String> {
        let connect = tokio::net::TcpStream::connect(&self.address);
        let stream = tokio::time::timeout(Duration::from_secs(2), connect)
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let Some(tls) = TLS.get() else {
            return handshake(client_conn::tuned(stream).map_err(|e| e.to_string())?).await;
        };
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let name = rustls::pki_types::ServerName::try_from(self.authority.host().to_owned())
            .map_err(|e| format!("{}: {e}", self.authority.host()))?;
        let stream =
            tokio_rustls::TlsConnector::from(tls.clone()).connect(name, stream).await.map_err(|e| e.to_string())?;
        handshake(client_conn::CoalescedWrites::new(stream)).await
    }
}

/// HTTP/2 on `io`, with hyper's defaults (which tonic's channel uses); the connection runs on a
/// task of its own.
async fn handshake<IO>(io: IO) -> Result<SendRequest<Bytes>, String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, connection) = h2::client::Builder::new()
        .initial_window_size(2 << 20)
        .initial_connection_window_size(5 << 20)
        .max_send_buffer_size(400 << 10)
        .max_header_list_size(16 << 10)
        .enable_push(false)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(send)
}

/// A client task's handle on its connection.
pub(super) struct Caller {
    conn: Arc<Conn>,
    opened: u64,
    send: Option<SendRequest<Bytes>>,
}

impl Caller {
    pub(super) async fn range(&mut self, req: RangeRequest) -> Result<RangeResponse, Status> {
        self.unary("/etcdserverpb.KV/Range", &req).await
    }

    pub(super) async fn put(&mut self, req: PutRequest) -> Result<PutResponse, Status> {
        self.unary("/etcdserverpb.KV/Put", &req).await
    }

    pub(super) async fn txn(&mut self, req: TxnRequest) -> Result<TxnResponse, Status> {
        self.unary("/etcdserverpb.KV/Txn", &req).await
    }

    async fn unary<Resp: Message + Default>(&mut self, path: &'static str, req: &impl Message) -> Result<Resp, Status> {
        let send = match &mut self.send {
            Some(send) => send,
            None => {
                let (opened, send) = self.conn.redial(self.opened).await?;
                self.opened = opened;
                self.send.insert(send)
            }
        };
        match call(send, &self.conn, path, req).await {
            Err(CallError::Connection(e)) => {
                // The next call opens it again (or picks up the one another caller opened).
                self.send = None;
                Err(Status::unavailable(format!("{}: {e}", self.conn.address)))
            }
            Err(CallError::Status(status)) => Err(status),
            Ok(message) => Resp::decode(message).map_err(|e| Status::internal(e.to_string())),
        }
    }
}

enum CallError {
    /// The connection is broken.
    Connection(h2::Error),
    /// The call failed; the connection is fine.
    Status(Status),
}

/// Sends one request and returns the response's message.
async fn call(
    send: &mut SendRequest<Bytes>,
    conn: &Conn,
    path: &'static str,
    req: &impl Message,
) -> Result<Bytes, CallError> {
    let uri = http::Uri::builder()
        .scheme(if TLS.get().is_some() { Scheme::HTTPS } else { Scheme::HTTP })
        .authority(conn.authority.clone())
        .path_and_query(PathAndQuery::from_static(path))
        .build()
        .expect("a valid URI");
    let mut request = http::Request::post(uri)
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .body(())
        .expect("a valid request");
    if let Some(token) = &conn.token {
        request.headers_mut().insert("token", token.clone());
    }
    let body = grpc_frame::encode(req)
        .map_err(|len| CallError::Status(Status::out_of_range(format!("a request of {len} bytes"))))?;

    std::future::poll_fn(|cx| send.poll_ready(cx)).await.map_err(CallError::Connection)?;
    let (response, mut stream) = send.send_request(request, false).map_err(CallError::Connection)?;
    stream.send_data(body, true).map_err(stream_error)?;
    let (head, mut recv) = response.await.map_err(stream_error)?.into_parts();
    // A trailers-only answer: no message, so an error.
    if let Some(status) = Status::from_header_map(&head.headers) {
        let missing = || Status::internal("the response has no message");
        return Err(CallError::Status(if status.code() == Code::Ok { missing() } else { status }));
    }
    if head.status != http::StatusCode::OK {
        return Err(CallError::Status(Status::unknown(format!("HTTP status {}", head.status))));
    }
    let mut data = Bytes::new();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk.map_err(stream_error)?;
        let _ = recv.flow_control().release_capacity(chunk.len());
        data = grpc_frame::append(data, chunk);
        if data.len() > grpc_frame::PREFIX + RESPONSE_MAX {
            return Err(CallError::Status(Status::out_of_range("response too large")));
        }
    }
    let trailers = recv.trailers().await.map_err(stream_error)?.unwrap_or_default();
    match Status::from_header_map(&trailers) {
        Some(status) if status.code() != Code::Ok => Err(CallError::Status(status)),
        Some(_) => grpc_frame::single_message(&data)
            .ok_or_else(|| CallError::Status(Status::internal("the response is not one uncompressed message"))),
        None => Err(CallError::Status(Status::internal("the response had no grpc-status"))),
    }
}

/// An error on one stream (a reset) fails that call; any other breaks the connection.
fn stream_error(e: h2::Error) -> CallError {
    match e.reason() {
        Some(reason) if !e.is_go_away() && !e.is_io() => {
            CallError::Status(Status::unavailable(format!("stream reset: {reason}")))
        }
        _ => CallError::Connection(e),
    }
}
