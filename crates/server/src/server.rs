//! Starting a node from etcd-style options: disk, transport, driver, peer listener, and the
//! etcd v3 gRPC services on the client URLs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tally_mvcc::{StateMachine, StoreConfig};
use tally_node::ConsensusKind;
use tally_proto::etcdserverpb::auth_server::AuthServer;
use tally_proto::etcdserverpb::cluster_server::ClusterServer;
use tally_proto::etcdserverpb::kv_server::KvServer;
use tally_proto::etcdserverpb::lease_server::LeaseServer;
use tally_proto::etcdserverpb::maintenance_server::MaintenanceServer;
use tally_proto::etcdserverpb::watch_server::WatchServer;
use tally_proto::tally_v1::PeerHello;
use tally_proto::v3electionpb::election_server::ElectionServer;
use tally_proto::v3lockpb::lock_server::LockServer;
use tally_raft::{Config, NodeId, Persisted};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tonic::service::Routes;

use crate::client::api::{ClientApi, ClientApiParts};
use crate::client::auth::{Authenticator, Tokens};
use crate::client::grpc_metrics::GrpcMetrics;
use crate::client::require_leader::LeaderGate;
use crate::client::services::auth::AuthService;
use crate::client::services::cluster::ClusterService;
use crate::client::services::context::{Context, ContextParts};
use crate::client::services::election::ElectionService;
use crate::client::services::kv::{KvService, REQUEST_BYTES_MAX, TXN_OPS_MAX};
use crate::client::services::lease::LeaseService;
use crate::client::services::lock::LockService;
use crate::client::services::maintenance::MaintenanceService;
use crate::client::services::quota::DEFAULT_QUOTA_BYTES;
use crate::client::services::watch::WatchService;
use crate::node::driver::{
    self, Driver, Inbox, Input, InputSender, NodeHandle, ReadQueue, ServerHost, Shared, REMOVED_MARKER,
};
use crate::node::watch_hub::{HeaderSource, WatchHub};
use crate::ops::exposition;
use crate::ops::http::Ops;
use crate::peer::events::PeerEvents;
use crate::peer::traffic::PeerTraffic;
use crate::peer::transport::{self, PeerDirectory, Transport};
use crate::tls::{Tls, TlsError, TlsFlags};
use crate::ui::events::{UiEvents, UiPublisher};
use crate::ui::http::UiRoutes;
use crate::zk::watches::ZkWatches;
use tally_node::cluster::ClusterSpec;
use tally_node::members::Members;
use tally_node::persist::{Disk, InitialState};
use tally_node::request_ids::RequestIds;
use tally_node::{Node, NodeConfig};

/// Length of one core tick; heartbeat and election timeouts are whole numbers of ticks.
const TICK: Duration = Duration::from_millis(10);
/// When the leader's connection resets, campaign within this many ticks (10-20 ms).
const FAST_ELECTION_TICKS: u32 = 2;
/// Log entries kept below a snapshot for followers that are only a little behind (etcd: 5000).
const COMPACTION_LAG_ENTRIES: u64 = 5000;

#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub name: String,
    pub data_dir: PathBuf,
    pub listen_client_urls: Vec<String>,
    pub advertise_client_urls: Vec<String>,
    pub listen_peer_urls: Vec<String>,
    pub initial_advertise_peer_urls: Vec<String>,
    pub initial_cluster: String,
    pub initial_cluster_state: InitialState,
    pub initial_cluster_token: String,
    pub heartbeat_interval_ms: u64,
    pub election_timeout_ms: u64,
    pub snapshot_count: u64,
    /// See `tally_node::NodeConfig::snapshot_log_ratio`.
    pub snapshot_log_ratio: f64,
    /// How often idle `progress_notify` watches are told the current revision.
    pub watch_progress_notify_interval: std::time::Duration,
    /// Extra URLs serving only `/metrics` and the health endpoints, over HTTP/1.1.
    pub listen_metrics_urls: Vec<String>,
    /// etcd's `--metrics extensive`: also time every gRPC call (`grpc_server_handling_seconds`).
    pub metrics_extensive: bool,
    /// etcd's `--quota-backend-bytes` (0: etcd's default, 2 GiB).
    pub quota_backend_bytes: u64,
    /// etcd's `--experimental-corrupt-check-time`: how often the leader compares every
    /// member's HashKV with its own (None: never, etcd's default).
    pub corrupt_check_interval: Option<Duration>,
    /// etcd's `--max-request-bytes` (0: etcd's default, 1.5 MiB).
    pub max_request_bytes: usize,
    /// etcd's `--max-txn-ops` (0: etcd's default, 128).
    pub max_txn_ops: usize,
    /// etcd's `--auth-token`: `simple`, or `jwt,pub-key=...,priv-key=...,sign-method=...`.
    pub auth_token: String,
    /// etcd's `--auth-token-ttl`: how long a simple token lives without use.
    pub auth_token_ttl: Duration,
    /// etcd's `--bcrypt-cost` for hashing passwords.
    pub bcrypt_cost: u32,
    /// `--cert-file`, `--key-file`, `--trusted-ca-file`, `--client-cert-auth`, `--auto-tls`:
    /// TLS on https client (and metrics) URLs.
    pub client_tls: TlsFlags,
    /// Their `--peer-` twins: TLS on https peer URLs.
    pub peer_tls: TlsFlags,
    /// etcd's `--self-signed-cert-validity`: years an auto-tls certificate is valid.
    pub self_signed_cert_validity_years: u32,
    /// `--enable-ui`: serve the live view of Raft (`/ui`, its event stream) on the client URLs.
    pub enable_ui: bool,
    /// `--listen-zk-urls`: where ZooKeeper's clients connect (plain TCP).
    pub listen_zk_urls: Vec<String>,
    /// `--zk-container-check-interval`: how often the leader deletes emptied containers and
    /// expired TTL nodes.
    pub zk_container_check_interval: Duration,
    /// `--consensus`: the algorithm that replicates the log (Raft unless told otherwise).
    pub consensus: ConsensusKind,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{0}")]
    Flags(String),
    #[error("{0}")]
    Disk(#[from] tally_node::persist::DiskError),
    #[error("cannot listen on {url}: {source}")]
    Listen { url: String, source: std::io::Error },
    #[error("{0}")]
    Tls(#[from] TlsError),
    #[error("{what}: {source}")]
    Io { what: &'static str, source: std::io::Error },
}

/// The file in the data directory naming the engine that wrote it.
const CONSENSUS_MARKER: &str = "consensus";

fn ticks(ms: u64) -> u32 {
    (ms / TICK.as_millis() as u64).max(1) as u32
}

/// Runs a node until the process ends.
pub async fn run(opts: ServerOptions) -> Result<(), ServerError> {
    let me = check_flags(&opts)?;
    let opened = open_disk(&opts, &me.spec)?;
    let (inputs, inbox) =
        driver::inbox().map_err(|source| ServerError::Io { what: "creating the driver's epoll", source })?;
    let events = peer_events(inputs.clone());
    let traffic = Arc::new(PeerTraffic::default());
    let peers = initial_peers(&me)?;
    let sides = tls_sides(&opts)?;
    let transport = start_transport(&opts, &me, peers, &sides, events.clone(), traffic.clone())?;
    let core = start_node(&opts, &me, opened, transport, inputs, inbox)?;
    let (directory, peer_url) = serve_peers(&opts, &me, &sides, &core.members, events, traffic.clone()).await?;
    let node = core.node.clone();
    let serving = serve_clients(&opts, &me, core, directory, &sides, traffic, &peer_url).await?;
    stop_requested().await;
    shut_down(serving, &node, me.id, Duration::from_millis(opts.election_timeout_ms)).await;
    Ok(())
}

/// This member as the flags describe it.
struct ThisMember {
    spec: ClusterSpec,
    id: u64,
    heartbeat_tick: u32,
    election_tick: u32,
}

impl ThisMember {
    /// Its peer URLs, as `--initial-cluster` gives them.
    fn peer_urls(&self) -> &[String] {
        &self.spec.members[&self.id].peer_urls
    }
}

/// Refuses flags that contradict each other, and a data directory whose member was removed,
/// before anything is written.
fn check_flags(opts: &ServerOptions) -> Result<ThisMember, ServerError> {
    let spec = ClusterSpec::parse(&opts.initial_cluster, &opts.initial_cluster_token)
        .map_err(|e| ServerError::Flags(e.to_string()))?;
    let id = spec.id_of(&opts.name).map_err(|e| ServerError::Flags(e.to_string()))?;
    let mine = &spec.members[&id];
    if !opts.initial_advertise_peer_urls.is_empty() && opts.initial_advertise_peer_urls != mine.peer_urls {
        return Err(ServerError::Flags(format!(
            "--initial-advertise-peer-urls {:?} differ from {:?} given for {} in --initial-cluster",
            opts.initial_advertise_peer_urls, mine.peer_urls, opts.name
        )));
    }
    let (heartbeat_tick, election_tick) = (ticks(opts.heartbeat_interval_ms), ticks(opts.election_timeout_ms));
    if election_tick <= heartbeat_tick {
        return Err(ServerError::Flags(format!(
            "--election-timeout ({} ms) must be larger than --heartbeat-interval ({} ms)",
            opts.election_timeout_ms, opts.heartbeat_interval_ms
        )));
    }
    let marker = opts.data_dir.join(REMOVED_MARKER);
    if marker.exists() {
        return Err(ServerError::Flags(format!(
            "member {} ({id:x}) was removed from the cluster ({}); refusing to start. To rejoin, delete {} and \
             add the member again (etcdctl member add)",
            opts.name,
            std::fs::read_to_string(&marker).unwrap_or_default().trim(),
            opts.data_dir.display()
        )));
    }
    Ok(ThisMember { spec, id, heartbeat_tick, election_tick })
}

/// The data directory, opened (created for a new member) and read back.
struct Opened {
    disk: Disk,
    persisted: Persisted,
    /// Until the log says otherwise, the members are the ones the flags name.
    members: Arc<RwLock<Members>>,
}

fn open_disk(opts: &ServerOptions, spec: &ClusterSpec) -> Result<Opened, ServerError> {
    let founders = Members::from_spec(spec);
    let voters: Vec<u64> = spec.members.keys().copied().collect();
    let (disk, persisted) = Disk::open(&opts.data_dir, opts.initial_cluster_state, &voters, founders.encode())?;
    check_consensus_marker(&opts.data_dir, opts.consensus, &persisted)?;
    Ok(Opened { disk, persisted, members: Arc::new(RwLock::new(founders)) })
}

/// The engine that wrote a data directory is the only one that may read it: a Paxos log may
/// hold values that were never chosen, which Raft would take for its own. The directory says
/// which in a file; one without it was written by Raft, unless it is brand new.
fn check_consensus_marker(dir: &Path, kind: ConsensusKind, persisted: &Persisted) -> Result<(), ServerError> {
    let marker = dir.join(CONSENSUS_MARKER);
    let written_by = match std::fs::read_to_string(&marker) {
        Ok(name) => name.trim().to_string(),
        Err(_) if persisted.entries.len() <= 1 && persisted.snapshot.meta.index == 0 => {
            std::fs::write(&marker, kind.name())
                .map_err(|e| ServerError::Flags(format!("writing {}: {e}", marker.display())))?;
            return Ok(());
        }
        Err(_) => ConsensusKind::Raft.name().to_string(),
    };
    if written_by != kind.name() {
        return Err(ServerError::Flags(format!(
            "{} was written with --consensus {written_by}; refusing to start it with --consensus {}",
            dir.display(),
            kind.name()
        )));
    }
    Ok(())
}

/// The driver hears the peer network through its inbox, and reads plain peer connections
/// itself (`peer::direct`).
fn peer_events(inputs: InputSender) -> PeerEvents {
    PeerEvents::adopting(move |inbound| {
        // Fails only once the driver has stopped, when nobody listens.
        let _ = inputs.send(Input::from(inbound));
    })
}

/// The other members' peer addresses, as `--initial-cluster` gives them.
fn initial_peers(me: &ThisMember) -> Result<BTreeMap<NodeId, SocketAddr>, ServerError> {
    let others = me.spec.members.values().filter(|m| m.id != me.id);
    others.map(|m| Ok((m.id, transport::url_to_addr(&m.peer_urls[0]).map_err(ServerError::Flags)?))).collect()
}

/// Connects to `peers` (over TLS with https peer URLs), introducing this member to each.
fn start_transport(
    opts: &ServerOptions,
    me: &ThisMember,
    peers: BTreeMap<NodeId, SocketAddr>,
    sides: &TlsSides,
    events: PeerEvents,
    traffic: Arc<PeerTraffic>,
) -> Result<Transport, ServerError> {
    let hello = PeerHello {
        cluster_id: me.spec.cluster_id,
        from: me.id,
        name: opts.name.clone(),
        client_urls: opts.advertise_client_urls.clone(),
        snapshot_stream: false,
        consensus: opts.consensus.name().to_string(),
    };
    let connector = sides.peer.as_ref().map(|tls| tls.client_config(&[], None)).transpose()?;
    Ok(Transport::start(hello, peers, events, traffic, connector.map(TlsConnector::from)))
}

/// What the client side is served from: the driver's handle and what the node publishes.
struct Core {
    node: NodeHandle,
    sm: Arc<RwLock<StateMachine>>,
    hub: Arc<WatchHub>,
    auth: Authenticator,
    members: Arc<RwLock<Members>>,
    /// The live view's event stream (`--enable-ui`).
    ui: Option<Arc<UiEvents>>,
    /// ZooKeeper clients' watches on this member.
    zk_watches: Arc<ZkWatches>,
}

/// Restores the state machine from the disk's snapshot and starts the driver's thread, which
/// handles `inputs` until every sender is gone.
fn start_node(
    opts: &ServerOptions,
    me: &ThisMember,
    opened: Opened,
    transport: Transport,
    inputs: InputSender,
    inbox: Inbox,
) -> Result<Core, ServerError> {
    let Opened { disk, persisted, members } = opened;
    let node_cfg = node_config(opts, me, members.clone());
    let sm = Node::<ServerHost>::recover_state(&persisted, &members, StoreConfig::default())
        .map_err(|e| ServerError::Flags(format!("restoring the state machine snapshot: {e}")))?;
    let sm = Arc::new(RwLock::new(sm));
    let tokens = Tokens::from_flag(&opts.auth_token, opts.auth_token_ttl).map_err(ServerError::Flags)?;
    let simple_tokens = match &tokens {
        Tokens::Simple(simple) => Some(simple.clone()),
        _ => None,
    };
    let auth = Authenticator::new(tokens, opts.bcrypt_cost, opts.client_tls.client_cert_auth, sm.clone());
    let shared = Arc::new(Shared::default());
    let headers = HeaderSource { cluster_id: me.spec.cluster_id, member_id: me.id, term: shared.term_handle() };
    let hub = WatchHub::new(sm.clone(), headers, opts.watch_progress_notify_interval);
    let (snapshots_written, snapshots_written_rx) = std::sync::mpsc::channel();
    let ui = opts.enable_ui.then(|| UiEvents::new(me.id, opts.name.clone()));
    let zk_watches = Arc::new(ZkWatches::default());
    let host = ServerHost {
        id: me.id,
        transport: transport.clone(),
        hub: hub.clone(),
        tokens: simple_tokens,
        data_dir: opts.data_dir.clone(),
        snapshots_written,
        ui: ui.clone().map(UiPublisher::new),
        zk_watches: zk_watches.clone(),
    };
    let node = Node::new(node_cfg, disk, persisted, sm.clone(), host, shared.clone());
    let reads = Arc::new(ReadQueue::default());
    driver::spawn(Driver::new(node, TICK, reads.clone(), snapshots_written_rx, inbox));
    Ok(Core {
        node: NodeHandle { inputs, reads, shared, id: me.id, transport },
        sm,
        hub,
        auth,
        members,
        ui,
        zk_watches,
    })
}

fn node_config(opts: &ServerOptions, me: &ThisMember, members: Arc<RwLock<Members>>) -> NodeConfig {
    let raft = Config {
        heartbeat_tick: me.heartbeat_tick,
        election_tick: me.election_tick,
        compaction_lag_entries: COMPACTION_LAG_ENTRIES,
        fast_election_ticks: FAST_ELECTION_TICKS,
        // A silent leader is suspected within one heartbeat of the minimum timeout.
        leader_silence_jitter_ticks: me.heartbeat_tick,
        seed: rand_seed(me.id),
        ..Config::new(me.id)
    };
    NodeConfig {
        raft,
        consensus: opts.consensus,
        snapshot_count: opts.snapshot_count,
        snapshot_log_ratio: opts.snapshot_log_ratio,
        election_timeout: Duration::from_millis(opts.election_timeout_ms),
        cluster_token: opts.initial_cluster_token.clone(),
        members,
        request_id_seed: RequestIds::boot_seed(me.id),
        zk_container_check_interval: opts.zk_container_check_interval,
    }
}

/// Accepts the other members' connections on the peer URL. Returns what they say about
/// themselves as they connect, and the URL.
async fn serve_peers(
    opts: &ServerOptions,
    me: &ThisMember,
    sides: &TlsSides,
    members: &Arc<RwLock<Members>>,
    events: PeerEvents,
    traffic: Arc<PeerTraffic>,
) -> Result<(PeerDirectory, String), ServerError> {
    let directory = PeerDirectory::default();
    let peer_url = peer_listen_url(opts, me.peer_urls());
    let listener = bind(&peer_url).await?;
    let is_removed = {
        let members = members.clone();
        move |peer| members.read().expect("members lock").removed.contains(&peer)
    };
    let acceptor = sides.peer.as_ref().map(|tls| tls.server_config(&[])).transpose()?;
    tokio::spawn(transport::listen(
        listener,
        acceptor.map(TlsAcceptor::from),
        transport::Expected::new(me.spec.cluster_id, opts.consensus.name()),
        directory.clone(),
        opts.data_dir.clone(),
        is_removed,
        events,
        traffic,
    ));
    Ok((directory, peer_url))
}

/// Serves the etcd v3 API on the client URL, and metrics and health on it and the metrics
/// URLs. Returns the client URL's task.
async fn serve_clients(
    opts: &ServerOptions,
    me: &ThisMember,
    core: Core,
    directory: PeerDirectory,
    sides: &TlsSides,
    traffic: Arc<PeerTraffic>,
    peer_url: &str,
) -> Result<JoinHandle<()>, ServerError> {
    let leader_gate = LeaderGate::start(core.node.shared.clone(), Duration::from_millis(opts.election_timeout_ms));
    let Core { node, sm, hub, auth, members, ui, zk_watches } = core;
    let client_url = opts.advertise_client_urls.first().cloned().unwrap_or_default();
    let ui = ui.map(|events| Arc::new(UiRoutes { events, members: members.clone(), client_url }));
    let ctx = Context::new(ContextParts {
        node: node.clone(),
        sm: sm.clone(),
        members,
        member_id: me.id,
        name: opts.name.clone(),
        client_urls: opts.advertise_client_urls.clone(),
        spec: me.spec.clone(),
        directory,
        quota_bytes: quota_bytes(opts),
        max_request_bytes: max_request_bytes(opts),
        max_txn_ops: if opts.max_txn_ops == 0 { TXN_OPS_MAX } else { opts.max_txn_ops },
        auth,
        member_tls: member_channel_connector(sides),
    });
    // Far above etcd's 1.5 MiB request limit, so that oversized requests reach our own check
    // and get etcd's "request is too large" rather than a transport error.
    let max_message = 4 * max_request_bytes(opts);
    let kv = Arc::new(KvService::new(ctx.clone()));
    let routes = client_routes(&ctx, hub, &kv, max_message);
    let client_url = client_listen_url(opts);
    let client_listener = bind(&client_url).await?;
    tracing::info!(name = %opts.name, id = format!("{:x}", me.id), %client_url, %peer_url, "tally member started");
    if let Some(interval) = opts.corrupt_check_interval {
        tokio::spawn(crate::ops::corruption::check_periodically(ctx.clone(), interval));
    }
    let grpc_metrics = Arc::new(GrpcMetrics::new(opts.metrics_extensive));
    let ops = ops_endpoints(opts, node, sm, &kv, &grpc_metrics, traffic, ui);
    serve_metrics(opts, &ops, sides).await?;
    let api = ClientApi::new(ClientApiParts { kv, routes, message_max: max_message, leader_gate, grpc_metrics, ops });
    for url in &opts.listen_zk_urls {
        let serving = crate::zk::serve(bind(url).await?, ctx.clone(), zk_watches.clone())
            .map_err(|source| ServerError::Io { what: "starting the ZooKeeper threads", source })?;
        tokio::spawn(serving);
    }
    let client_tls = acceptor_for(&client_url, &sides.client, crate::tls::CLIENT_ALPN)?;
    Ok(tokio::spawn(crate::client::api::serve(client_listener, api, client_tls)))
}

/// What `/metrics` and the health endpoints read.
fn ops_endpoints(
    opts: &ServerOptions,
    node: NodeHandle,
    sm: Arc<RwLock<StateMachine>>,
    kv: &Arc<KvService>,
    grpc_metrics: &Arc<GrpcMetrics>,
    traffic: Arc<PeerTraffic>,
    ui: Option<Arc<UiRoutes>>,
) -> Arc<Ops> {
    let sources = exposition::Sources {
        shared: node.shared.clone(),
        grpc: grpc_metrics.clone(),
        sm: sm.clone(),
        traffic,
        quota_bytes: quota_bytes(opts),
    };
    Arc::new(Ops {
        registry: exposition::registry(sources),
        sm,
        kv: kv.clone(),
        node,
        request_timeout: Duration::from_secs(5) + 2 * Duration::from_millis(opts.election_timeout_ms),
        ui,
    })
}

/// etcd's `--max-request-bytes`, 0 meaning etcd's default.
fn max_request_bytes(opts: &ServerOptions) -> usize {
    if opts.max_request_bytes == 0 {
        REQUEST_BYTES_MAX
    } else {
        opts.max_request_bytes
    }
}

/// etcd's `--quota-backend-bytes`, 0 meaning etcd's default.
fn quota_bytes(opts: &ServerOptions) -> u64 {
    if opts.quota_backend_bytes == 0 {
        DEFAULT_QUOTA_BYTES
    } else {
        opts.quota_backend_bytes
    }
}

/// The etcd v3 gRPC services; KV is served on its own as well (see `ClientApi`).
fn client_routes(ctx: &Arc<Context>, hub: Arc<WatchHub>, kv: &Arc<KvService>, max_message: usize) -> Routes {
    let maintenance = MaintenanceServer::new(MaintenanceService::new(ctx.clone()));
    let cluster = ClusterServer::new(ClusterService::new(ctx.clone()));
    let lock = LockServer::new(LockService::new(ctx.clone(), hub.clone()));
    let election = ElectionServer::new(ElectionService::new(ctx.clone(), hub.clone()));
    let watch = WatchServer::new(WatchService::new(hub, ctx.clone()));
    let auth = AuthServer::new(AuthService::new(ctx.clone()));
    let lease = LeaseServer::new(LeaseService::new(ctx.clone()));
    Routes::new(KvServer::from_arc(kv.clone()).max_decoding_message_size(max_message))
        .add_service(maintenance)
        .add_service(cluster)
        .add_service(watch)
        .add_service(lease)
        .add_service(lock)
        .add_service(election)
        .add_service(auth)
}

/// Serves `/metrics` and the health endpoints on each `--listen-metrics-urls` URL.
async fn serve_metrics(opts: &ServerOptions, ops: &Arc<Ops>, sides: &TlsSides) -> Result<(), ServerError> {
    for url in &opts.listen_metrics_urls {
        let listener = bind(url).await?;
        let tls = acceptor_for(url, &sides.client, &[b"http/1.1"])?;
        tokio::spawn(crate::ops::http::listen(listener, ops.clone(), tls));
    }
    Ok(())
}

async fn bind(url: &str) -> Result<TcpListener, ServerError> {
    let addr = transport::url_to_addr(url).map_err(ServerError::Flags)?;
    TcpListener::bind(addr).await.map_err(|source| ServerError::Listen { url: url.to_string(), source })
}

/// Stops as etcd does: no new client connections, leadership handed over if we hold it, and
/// writes in flight given time to be answered.
async fn shut_down(serving: JoinHandle<()>, node: &NodeHandle, me: u64, election_timeout: Duration) {
    // New connections are refused from here; calls on open ones go on until we exit.
    serving.abort();
    hand_over(node, me, election_timeout).await;
    drain(&node.shared, election_timeout).await;
    tracing::info!("stopped");
}

fn client_listen_url(opts: &ServerOptions) -> String {
    opts.listen_client_urls.first().cloned().unwrap_or_else(|| "http://127.0.0.1:2379".into())
}

fn peer_listen_url(opts: &ServerOptions, mine: &[String]) -> String {
    opts.listen_peer_urls.first().cloned().unwrap_or_else(|| mine[0].clone())
}

/// The TLS of the client and the peer side, as the flags ask.
struct TlsSides {
    client: Option<Tls>,
    peer: Option<Tls>,
}

/// Loads both sides' certificates (making auto-tls ones), refusing https URLs without any and
/// ignoring TLS flags on http URLs, with etcd's messages.
fn tls_sides(opts: &ServerOptions) -> Result<TlsSides, ServerError> {
    let client_url = client_listen_url(opts);
    let peer_url = opts.listen_peer_urls.first().cloned().unwrap_or_default();
    let hosts = |urls: &[String]| urls.iter().map(|u| crate::tls::host_of_url(u)).collect::<Vec<_>>();
    let client_urls: Vec<String> =
        std::iter::once(client_url.clone()).chain(opts.listen_metrics_urls.clone()).collect();
    let side = |flags: &TlsFlags, prefix: &str, urls: &[String], kind: &str| -> Result<Option<Tls>, ServerError> {
        let fixtures = opts.data_dir.join("fixtures").join(kind);
        let auto = crate::tls::AutoTls {
            dir: fixtures,
            hosts: &hosts(urls),
            validity_years: opts.self_signed_cert_validity_years,
        };
        let https: Vec<&String> = urls.iter().filter(|u| crate::tls::is_https(u)).collect();
        if https.is_empty() {
            if flags.cert_file.is_some() || flags.auto_tls {
                tracing::warn!(urls = ?urls, "{kind} URLs are http; ignoring --{prefix}cert-file, --{prefix}auto-tls");
            }
            return Ok(None);
        }
        match Tls::from_flags(flags, prefix, auto)? {
            Some(tls) => Ok(Some(tls)),
            None => Err(ServerError::Flags(format!(
                "TLS key/cert (--{prefix}cert-file, --{prefix}key-file) must be provided for {kind} url {} with \
                 HTTPS scheme",
                https[0]
            ))),
        }
    };
    Ok(TlsSides {
        client: side(&opts.client_tls, "", &client_urls, "client")?,
        peer: side(&opts.peer_tls, "peer-", std::slice::from_ref(&peer_url), "peer")?,
    })
}

/// How `url` is served: over TLS if it is https.
fn acceptor_for(
    url: &str,
    tls: &Option<Tls>,
    alpn: &[&[u8]],
) -> Result<Option<tokio_rustls::TlsAcceptor>, ServerError> {
    match tls {
        Some(tls) if crate::tls::is_https(url) => Ok(Some(tls.server_config(alpn)?.into())),
        _ => Ok(None),
    }
}

/// TLS for the channels to other members' https client URLs: this member's client certificate,
/// trusting `--trusted-ca-file` and the peers' CA. Without a CA to trust (or auto-tls), the
/// channels are not made, and what needs them (lease keep-alives on a follower) fails.
fn member_channel_connector(sides: &TlsSides) -> Option<crate::tls::ChannelConnector> {
    let tls = sides.client.as_ref()?;
    match tls.client_config(&[b"h2"], sides.peer.as_ref().and_then(|p| p.roots())) {
        Ok(config) => Some(crate::tls::ChannelConnector::new(config)),
        Err(e) => {
            tracing::warn!("no TLS to other members' client URLs: {e}");
            None
        }
    }
}

/// Waits for SIGTERM or SIGINT (Ctrl-C), what supervisors and people send to stop a member.
async fn stop_requested() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
    }
}

/// A leader about to stop hands leadership to its most caught-up voter first, as etcd does, so
/// that the cluster does not wait an election timeout for a new one.
async fn hand_over(node: &NodeHandle, me: u64, election_timeout: Duration) {
    let Some(target) = node.step_down().await else { return };
    let deadline = tokio::time::Instant::now() + 2 * election_timeout;
    // Until another member leads (between the two, no one does).
    while node.shared.leader().is_none_or(|l| l == me) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    match node.shared.leader() {
        Some(leader) if leader != me => tracing::info!(to = %format_args!("{leader:x}"), "handed leadership over"),
        _ => tracing::warn!(to = %format_args!("{target:x}"), "leadership transfer did not finish; stopping anyway"),
    }
}

/// Gives writes in flight on this member the time to be answered (they commit under the new
/// leader, or fail over to it).
async fn drain(shared: &Shared, election_timeout: Duration) {
    let deadline = tokio::time::Instant::now() + 2 * election_timeout;
    while shared.metrics.proposals_pending.load(std::sync::atomic::Ordering::Relaxed) > 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Election timeouts must differ between members and between restarts.
fn rand_seed(id: u64) -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    id ^ now.as_nanos() as u64 ^ (std::process::id() as u64).rotate_left(32)
}
