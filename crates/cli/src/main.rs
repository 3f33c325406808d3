//! `tally`: run a member (`tally server`), a local cluster (`tally dev`), or talk to one.

mod allocator;
mod bench;
mod client;
mod dev;
use tally_server::go_duration;
mod snapshot;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tally_node::persist::InitialState;
use tally_server::server::{self, ServerOptions};
use tally_server::tls::TlsFlags;

#[derive(Parser)]
#[command(name = "tally", version, about = "A Raft-replicated key-value store that speaks etcd's v3 API")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum ClusterState {
    New,
    Existing,
}

#[derive(clap::Args)]
struct ServerArgs {
    /// This member's name in --initial-cluster.
    #[arg(long, default_value = "default")]
    name: String,
    /// Where the write-ahead log and snapshots live.
    #[arg(long, default_value = "default.tally")]
    data_dir: PathBuf,
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    listen_client_urls: Vec<String>,
    /// Client URLs told to peers (followers forward writes there); defaults to the listen URLs.
    #[arg(long, value_delimiter = ',')]
    advertise_client_urls: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2380")]
    listen_peer_urls: Vec<String>,
    #[arg(long, value_delimiter = ',')]
    initial_advertise_peer_urls: Vec<String>,
    /// Every founding member: name=peer-url,name=peer-url,...
    #[arg(long, default_value = "default=http://127.0.0.1:2380")]
    initial_cluster: String,
    #[arg(long, value_enum, default_value = "new")]
    initial_cluster_state: ClusterState,
    #[arg(long, default_value = "tally-cluster")]
    initial_cluster_token: String,
    /// Milliseconds between leader heartbeats.
    #[arg(long, default_value_t = 30)]
    heartbeat_interval: u64,
    /// Minimum election timeout in milliseconds: a follower suspects a silent leader after t
    /// plus up to one heartbeat; a contested election retries after [t, 2t).
    #[arg(long, default_value_t = 150)]
    election_timeout: u64,
    /// Applied entries between state machine snapshots.
    #[arg(long, default_value_t = 100_000)]
    snapshot_count: u64,
    /// A snapshot also waits until the log applied since the last one is this many times that
    /// snapshot's size, so that a large state is not rewritten every --snapshot-count entries
    /// (0: every --snapshot-count entries, as etcd).
    #[arg(long, default_value_t = 1.0)]
    snapshot_log_ratio: f64,
    /// How often an idle watch created with `progress_notify` hears of the current revision
    /// (a Go duration, at least 100ms; etcd 3.6 also names it --watch-progress-notify-interval).
    #[arg(long, alias = "watch-progress-notify-interval", default_value = "10m0s", value_parser = go_duration::parse)]
    experimental_watch_progress_notify_interval: std::time::Duration,
    /// Serve ZooKeeper's client protocol on these URLs (plain TCP, e.g. tcp://127.0.0.1:2181).
    #[arg(long, value_delimiter = ',')]
    listen_zk_urls: Vec<String>,
    /// How often the leader deletes emptied ZooKeeper containers and expired TTL nodes (a Go
    /// duration; ZooKeeper's znode.container.checkIntervalMs, whose default is a minute).
    #[arg(long, default_value = "1s", value_parser = go_duration::parse)]
    zk_container_check_interval: std::time::Duration,
    /// The algorithm that replicates the log: raft, or paxos (Multi-Paxos). A data directory
    /// keeps the one it was created with.
    #[arg(long, value_enum, default_value_t = Consensus::Raft)]
    consensus: Consensus,
    /// Serve the live view of Raft at /ui on the client URLs, and its event stream at
    /// /ui/events (`tally dev` turns it on).
    #[arg(long)]
    enable_ui: bool,
    /// More URLs to serve /metrics and the health endpoints on, over HTTP/1.1 (the client
    /// URLs serve them too).
    #[arg(long, value_delimiter = ',')]
    listen_metrics_urls: Vec<String>,
    /// How often the leader compares every member's HashKV with its own and raises CORRUPT for a
    /// member whose data differs (a Go duration; 0s: never).
    #[arg(long, default_value = "0s", value_parser = go_duration::parse)]
    experimental_corrupt_check_time: std::time::Duration,
    /// The most operations a txn may have (0: etcd's 128).
    #[arg(long, default_value_t = 0)]
    max_txn_ops: usize,
    /// The largest KV request accepted, in bytes (0: etcd's 1.5 MiB).
    #[arg(long, default_value_t = 0)]
    max_request_bytes: usize,
    /// Bytes the state machine may take before writes are refused with NOSPACE (0: 2 GiB).
    #[arg(long, default_value_t = 0)]
    quota_backend_bytes: u64,
    /// basic, or extensive to also time every gRPC call (grpc_server_handling_seconds), as etcd.
    #[arg(long, value_enum, default_value = "basic")]
    metrics: MetricsLevel,
    /// Least severe log level written: debug, info, warn or error (RUST_LOG, when set, wins).
    #[arg(long, value_enum, default_value = "info")]
    log_level: LogLevel,
    /// One line of text per event, or one JSON object per line.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// How tokens are made once auth is enabled: simple, or jwt,pub-key=..,priv-key=..,sign-method=RS256,ttl=5m.
    #[arg(long, default_value = "simple")]
    auth_token: String,
    /// Seconds a simple token lives without being used.
    #[arg(long, default_value_t = 300)]
    auth_token_ttl: u64,
    /// bcrypt cost of stored passwords (4 to 31).
    #[arg(long, default_value_t = tally_server::client::auth::DEFAULT_BCRYPT_COST, value_parser = clap::value_parser!(u32).range(4..=31))]
    bcrypt_cost: u32,
    /// TLS certificate of https client URLs (PEM; read again when it changes).
    #[arg(long)]
    cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// CA of client certificates; setting it requires clients to present one, as in etcd.
    #[arg(long)]
    trusted_ca_file: Option<PathBuf>,
    /// Require client certificates signed by --trusted-ca-file; with auth on, a certificate's
    /// common name is its user.
    #[arg(long)]
    client_cert_auth: bool,
    /// Without --cert-file: a self-signed certificate in the data dir, under fixtures/client.
    #[arg(long)]
    auto_tls: bool,
    /// TLS certificate of https peer URLs, presented to other members in both directions.
    #[arg(long)]
    peer_cert_file: Option<PathBuf>,
    #[arg(long)]
    peer_key_file: Option<PathBuf>,
    /// CA of the other members' peer certificates.
    #[arg(long)]
    peer_trusted_ca_file: Option<PathBuf>,
    /// Require peers to present a certificate signed by --peer-trusted-ca-file.
    #[arg(long)]
    peer_client_cert_auth: bool,
    /// Without --peer-cert-file: a self-signed certificate in the data dir, under fixtures/peer.
    #[arg(long)]
    peer_auto_tls: bool,
    /// Years an auto-tls certificate is valid.
    #[arg(long, default_value_t = 1)]
    self_signed_cert_validity: u32,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MetricsLevel {
    Basic,
    Extensive,
}

/// `--consensus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Consensus {
    Raft,
    Paxos,
}

impl From<Consensus> for tally_node::ConsensusKind {
    fn from(c: Consensus) -> Self {
        match c {
            Consensus::Raft => Self::Raft,
            Consensus::Paxos => Self::Paxos,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Logs go to stderr, filtered by RUST_LOG if set, else by --log-level.
fn init_logging(level: LogLevel, format: LogFormat) {
    let level = match level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run one cluster member.
    Server(Box<ServerArgs>),
    /// Start a local cluster (3 members by default) and stop it on Ctrl-C.
    Dev(dev::DevArgs),
    /// Load-test a cluster (Tally or etcd) through the etcd v3 API.
    Bench(bench::BenchArgs),
    /// Back up a cluster, inspect a backup, or make a new cluster from one (or from etcd's).
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
    #[command(flatten)]
    Client(client::ClientCommand),
}

/// etcd's `minWatchProgressInterval`.
const MIN_WATCH_PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

fn server_options(a: ServerArgs) -> ServerOptions {
    let advertise =
        if a.advertise_client_urls.is_empty() { a.listen_client_urls.clone() } else { a.advertise_client_urls };
    ServerOptions {
        name: a.name,
        data_dir: a.data_dir,
        listen_client_urls: a.listen_client_urls,
        advertise_client_urls: advertise,
        listen_peer_urls: a.listen_peer_urls,
        initial_advertise_peer_urls: a.initial_advertise_peer_urls,
        initial_cluster: a.initial_cluster,
        initial_cluster_state: match a.initial_cluster_state {
            ClusterState::New => InitialState::New,
            ClusterState::Existing => InitialState::Existing,
        },
        initial_cluster_token: a.initial_cluster_token,
        heartbeat_interval_ms: a.heartbeat_interval,
        election_timeout_ms: a.election_timeout,
        snapshot_count: a.snapshot_count,
        snapshot_log_ratio: a.snapshot_log_ratio,
        // etcd raises shorter intervals to its minimum.
        watch_progress_notify_interval: a.experimental_watch_progress_notify_interval.max(MIN_WATCH_PROGRESS_INTERVAL),
        listen_metrics_urls: a.listen_metrics_urls,
        enable_ui: a.enable_ui,
        listen_zk_urls: a.listen_zk_urls,
        zk_container_check_interval: a.zk_container_check_interval,
        consensus: a.consensus.into(),
        metrics_extensive: a.metrics == MetricsLevel::Extensive,
        quota_backend_bytes: a.quota_backend_bytes,
        max_request_bytes: a.max_request_bytes,
        max_txn_ops: a.max_txn_ops,
        corrupt_check_interval: Some(a.experimental_corrupt_check_time).filter(|d| !d.is_zero()),
        auth_token: a.auth_token,
        auth_token_ttl: std::time::Duration::from_secs(a.auth_token_ttl),
        bcrypt_cost: a.bcrypt_cost,
        client_tls: TlsFlags {
            cert_file: a.cert_file,
            key_file: a.key_file,
            trusted_ca_file: a.trusted_ca_file,
            client_cert_auth: a.client_cert_auth,
            auto_tls: a.auto_tls,
        },
        peer_tls: TlsFlags {
            cert_file: a.peer_cert_file,
            key_file: a.peer_key_file,
            trusted_ca_file: a.peer_trusted_ca_file,
            client_cert_auth: a.peer_client_cert_auth,
            auto_tls: a.peer_auto_tls,
        },
        self_signed_cert_validity_years: a.self_signed_cert_validity,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match cli.command {
        Command::Server(args) => {
            init_logging(args.log_level, args.log_format);
            match runtime.block_on(server::run(server_options(*args))) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("tally server: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Dev(args) => runtime.block_on(dev::run(args)),
        Command::Bench(args) => runtime.block_on(bench::run(args)),
        Command::Snapshot(cmd) => runtime.block_on(snapshot::run(cmd)),
        Command::Client(cmd) => runtime.block_on(client::run(cmd)),
    }
}
