//! `tally bench`: a load generator that speaks etcd's v3 gRPC API, so the same run can target
//! Tally or etcd.
//!
//! `--conns` HTTP/2 connections are opened round-robin over `--endpoints`, and `--clients`
//! concurrent tasks share them round-robin (as etcd's own benchmark tool does): writes sent to a
//! follower are forwarded by it. Requests go straight onto the connections (`grpc_conn.rs`). `--threads` client threads (one per CPU by default) each own a share of
//! the connections and their clients (`load.rs`). Closed loop by default (each client sends its
//! next request when the last one is answered); `--rate R` makes it open loop: request `i` is due
//! at `start + i / R`, and a request that could not leave on time, because its client was still
//! waiting for an earlier answer, has its latency measured from that due time, so a stall shows
//! up in the latencies instead of silently lowering the offered load (no coordinated omission).
//!
//! Latencies of successful requests go into an HdrHistogram; failed requests are counted by gRPC
//! code and never stop the run.

mod failover;
mod grpc_conn;
mod load;
mod stats;
mod watch;

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use tally_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use tally_proto::etcdserverpb::request_op::Request as Op;
use tally_proto::etcdserverpb::response_op::Response as OpResponse;
use tally_proto::etcdserverpb::{Compare, PutRequest, RangeRequest, RequestOp, TxnRequest};
use tonic::transport::Endpoint;
use tonic::{Code, Status};

use stats::{Recorder, Summary};

const DEFAULT_ENDPOINTS: &str = "127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379";

#[derive(Args)]
pub struct BenchArgs {
    /// Client endpoints (host:port or URLs), comma separated.
    #[arg(long, global = true, value_delimiter = ',', default_value = DEFAULT_ENDPOINTS)]
    endpoints: Vec<String>,
    /// HTTP/2 connections, spread round-robin over the endpoints.
    #[arg(long, global = true, default_value_t = 8)]
    conns: usize,
    /// Concurrent client tasks, spread round-robin over the connections.
    #[arg(long, global = true, default_value_t = 64)]
    clients: usize,
    /// Client threads, each with its own event loop and its share of the connections (as wrk
    /// and h2load do); default: one per CPU.
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Requests to send in total.
    #[arg(long, global = true, default_value_t = 100_000)]
    total: u64,
    /// Open loop: offer this many requests per second in total (latency counts from each
    /// request's scheduled time). Closed loop when absent.
    #[arg(long, global = true)]
    rate: Option<f64>,
    /// Print one JSON object instead of the text report.
    #[arg(long, global = true)]
    json: bool,
    /// Per-request timeout in milliseconds (a timed-out request counts as an error).
    #[arg(long, global = true, default_value_t = 10_000)]
    timeout_ms: u64,
    /// No progress bar on stderr.
    #[arg(long, global = true)]
    no_progress: bool,
    /// name:password to log in with (auth on): each connection logs in once, as a client does.
    #[arg(long, global = true)]
    user: Option<String>,
    /// TLS: verify the servers' certificates against this CA (PEM), as etcdctl's --cacert.
    #[arg(long, global = true)]
    cacert: Option<std::path::PathBuf>,
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Subcommand)]
enum Workload {
    /// Puts of --val-size bytes to random (or --sequential-keys) keys in the key space.
    Put(PutArgs),
    /// Ranges over a single key: a fixed key (written once before the run), or random keys of the
    /// key space when --key-space is given (fill it first with `put --key-space N`).
    Range(RangeArgs),
    /// Compare-and-swap: each client owns a key and sends a Txn comparing that key's version with
    /// the one it last saw, putting on success (a failed compare reads the key back instead).
    TxnPut(TxnPutArgs),
    /// Ranges and puts of random keys in the key space, --read-ratio of them reads.
    Mixed(MixedArgs),
    /// Kill the leader under a steady write load and measure the time until a write succeeds.
    Failover(failover::FailoverArgs),
    /// Single-key and prefix watches spread over Watch streams, then puts: creation and
    /// cancellation time, put rate, and every event's delivery lag (checked for completeness,
    /// duplicates and order).
    Watch(watch::WatchArgs),
}

#[derive(Args, Clone)]
struct KeyArgs {
    /// Key length in bytes (keys are the key number as zero-padded decimal).
    #[arg(long, default_value_t = 8)]
    key_size: usize,
    /// Value length in bytes.
    #[arg(long, default_value_t = 256)]
    val_size: usize,
}

#[derive(Args)]
struct PutArgs {
    #[command(flatten)]
    keys: KeyArgs,
    /// Number of distinct keys (default: --total).
    #[arg(long)]
    key_space: Option<u64>,
    /// Key i of the run is i modulo the key space, instead of a random key.
    #[arg(long)]
    sequential_keys: bool,
}

#[derive(Args)]
struct RangeArgs {
    #[command(flatten)]
    keys: KeyArgs,
    /// Serve from the contacted member's local state (etcd's serializable read) instead of a
    /// linearizable read.
    #[arg(long)]
    serializable: bool,
    /// Read random keys out of this many (as written by `put --key-space N`), instead of one fixed key.
    #[arg(long)]
    key_space: Option<u64>,
    /// The fixed key (written once, untimed, before the run).
    #[arg(long, default_value = "bench-range-key")]
    key: String,
}

#[derive(Args)]
struct TxnPutArgs {
    #[command(flatten)]
    keys: KeyArgs,
}

#[derive(Args)]
struct MixedArgs {
    #[command(flatten)]
    keys: KeyArgs,
    /// Fraction of requests that are reads.
    #[arg(long, default_value_t = 0.9)]
    read_ratio: f64,
    #[arg(long, default_value_t = 10_000)]
    key_space: u64,
    /// Serializable reads instead of linearizable ones.
    #[arg(long)]
    serializable: bool,
}

/// A small, fast PRNG (xorshift64*), one per client task; the benchmark needs no more.
#[derive(Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so that neighbouring seeds give unrelated streams.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Self((z ^ (z >> 31)) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Key number `n` as `size` zero-padded decimal digits (the low digits if `n` has more).
pub(crate) fn key_bytes(n: u64, size: usize) -> Vec<u8> {
    let digits = format!("{n:020}");
    let d = digits.as_bytes();
    if size <= d.len() {
        d[d.len() - size..].to_vec()
    } else {
        let mut k = vec![b'0'; size - d.len()];
        k.extend_from_slice(d);
        k
    }
}

pub(crate) fn value_bytes(size: usize) -> Vec<u8> {
    let mut rng = Rng::new(7);
    (0..size).map(|_| b'a' + (rng.next() % 26) as u8).collect()
}

#[derive(Clone, Copy)]
enum Kind {
    Put,
    Range,
    TxnPut,
    Mixed,
}

/// A workload, resolved from the arguments and shared by every client task.
struct Plan {
    kind: Kind,
    key_size: usize,
    key_space: u64,
    sequential: bool,
    fixed_key: Option<Vec<u8>>,
    value: Vec<u8>,
    serializable: bool,
    read_ratio: f64,
}

/// Per-client state.
struct ClientState {
    rng: Rng,
    /// txn-put: this client's key and the version it expects that key to have.
    own_key: Vec<u8>,
    version: i64,
}

impl Plan {
    fn op_names(&self) -> &'static [&'static str] {
        match self.kind {
            Kind::Put => &["put"],
            Kind::Range => &["range"],
            Kind::TxnPut => &["txn-succeeded", "txn-failed"],
            Kind::Mixed => &["range", "put"],
        }
    }

    fn random_key(&self, i: u64, st: &mut ClientState) -> Vec<u8> {
        let n = if self.sequential { i % self.key_space.max(1) } else { st.rng.below(self.key_space) };
        key_bytes(n, self.key_size)
    }

    fn range_request(&self, key: Vec<u8>) -> RangeRequest {
        RangeRequest { key, serializable: self.serializable, ..Default::default() }
    }

    /// Sends request `i`; on success, the index of its operation kind in `op_names`.
    async fn issue(&self, kv: &mut grpc_conn::Caller, i: u64, st: &mut ClientState) -> Result<usize, Status> {
        match self.kind {
            Kind::Put => {
                let key = self.random_key(i, st);
                kv.put(PutRequest { key, value: self.value.clone(), ..Default::default() }).await?;
                Ok(0)
            }
            Kind::Range => {
                let key = match &self.fixed_key {
                    Some(k) => k.clone(),
                    None => self.random_key(i, st),
                };
                kv.range(self.range_request(key)).await?;
                Ok(0)
            }
            Kind::Mixed => {
                let key = self.random_key(i, st);
                if st.rng.unit() < self.read_ratio {
                    kv.range(self.range_request(key)).await?;
                    Ok(0)
                } else {
                    kv.put(PutRequest { key, value: self.value.clone(), ..Default::default() }).await?;
                    Ok(1)
                }
            }
            Kind::TxnPut => {
                let key = st.own_key.clone();
                let txn = TxnRequest {
                    compare: vec![Compare {
                        result: CompareResult::Equal as i32,
                        target: CompareTarget::Version as i32,
                        key: key.clone(),
                        target_union: Some(TargetUnion::Version(st.version)),
                        ..Default::default()
                    }],
                    success: vec![RequestOp {
                        request: Some(Op::RequestPut(PutRequest {
                            key: key.clone(),
                            value: self.value.clone(),
                            ..Default::default()
                        })),
                    }],
                    failure: vec![RequestOp {
                        request: Some(Op::RequestRange(RangeRequest { key, ..Default::default() })),
                    }],
                };
                let resp = kv.txn(txn).await?;
                if resp.succeeded {
                    st.version += 1;
                    return Ok(0);
                }
                // Someone (a retried earlier request, or a previous run) changed the key: resync.
                st.version = resp
                    .responses
                    .into_iter()
                    .find_map(|r| match r.response {
                        Some(OpResponse::ResponseRange(range)) => Some(range.kvs.first().map_or(0, |kv| kv.version)),
                        _ => None,
                    })
                    .unwrap_or(0);
                Ok(1)
            }
        }
    }
}

pub(crate) fn url(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

pub(crate) fn endpoint(ep: &str) -> Result<Endpoint, String> {
    Ok(Endpoint::from_shared(url(ep))
        .map_err(|e| format!("bad endpoint {ep}: {e}"))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true))
}

pub(crate) fn code_name(status: &Status) -> String {
    match status.code() {
        Code::Ok => "Ok".into(),
        code => format!("{code:?}"),
    }
}

fn progress_bar(total: u64, hidden: bool) -> ProgressBar {
    let target = if hidden { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr_with_hz(4) };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} {per_sec} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

/// Untimed preparation: the fixed key of `range` must exist so that reads return a value.
async fn prepare(plan: &Plan, endpoints: &[String]) -> Result<(), String> {
    if let (Kind::Range, Some(key)) = (plan.kind, &plan.fixed_key) {
        let mut last = String::new();
        for endpoint in endpoints {
            let put = PutRequest { key: key.clone(), value: plan.value.clone(), ..Default::default() };
            match grpc_conn::Conn::open(endpoint).await?.caller().await.put(put).await {
                Ok(_) => return Ok(()),
                Err(s) => last = s.message().to_string(),
            }
        }
        return Err(format!("could not write the range key: {last}"));
    }
    Ok(())
}

fn resolve(workload: Workload, total: u64) -> Result<Plan, Workload> {
    let plan = |kind, keys: KeyArgs| Plan {
        kind,
        key_size: keys.key_size,
        key_space: total.max(1),
        sequential: false,
        fixed_key: None,
        value: value_bytes(keys.val_size),
        serializable: false,
        read_ratio: 0.0,
    };
    Ok(match workload {
        Workload::Put(a) => Plan {
            key_space: a.key_space.unwrap_or(total).max(1),
            sequential: a.sequential_keys,
            ..plan(Kind::Put, a.keys)
        },
        Workload::Range(a) => Plan {
            key_space: a.key_space.unwrap_or(1).max(1),
            fixed_key: if a.key_space.is_some() { None } else { Some(a.key.into_bytes()) },
            serializable: a.serializable,
            ..plan(Kind::Range, a.keys)
        },
        Workload::TxnPut(a) => plan(Kind::TxnPut, a.keys),
        Workload::Mixed(a) => Plan {
            key_space: a.key_space.max(1),
            serializable: a.serializable,
            read_ratio: a.read_ratio.clamp(0.0, 1.0),
            ..plan(Kind::Mixed, a.keys)
        },
        other @ (Workload::Failover(_) | Workload::Watch(_)) => return Err(other),
    })
}

fn workload_name(plan: &Plan) -> &'static str {
    match plan.kind {
        Kind::Put => "put",
        Kind::Range => "range",
        Kind::TxnPut => "txn-put",
        Kind::Mixed => "mixed",
    }
}

pub async fn run(args: BenchArgs) -> ExitCode {
    match run_inner(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tally bench: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run_inner(args: BenchArgs) -> Result<(), String> {
    if args.endpoints.is_empty() {
        return Err("no --endpoints".into());
    }
    if let Some(rate) = args.rate {
        if !(rate > 0.0 && rate.is_finite()) {
            return Err("--rate must be a positive number".into());
        }
    }
    if let Some(user) = &args.user {
        grpc_conn::set_user(user)?;
    }
    if let Some(ca) = &args.cacert {
        grpc_conn::set_ca(ca)?;
    }
    let clients = args.clients.max(1);
    let plan = match resolve(args.workload, args.total) {
        Ok(plan) => Arc::new(plan),
        Err(Workload::Failover(f)) => {
            return failover::run(f, &args.endpoints, clients, args.timeout_ms, args.json).await;
        }
        Err(Workload::Watch(w)) => {
            if args.rate.is_some() {
                return Err("watch runs its puts closed loop: no --rate".into());
            }
            let common = watch::Common {
                endpoints: args.endpoints,
                conns: args.conns.max(1),
                clients,
                total: args.total,
                timeout: Duration::from_millis(args.timeout_ms.max(1)),
                json: args.json,
                no_progress: args.no_progress,
            };
            return watch::run(w, common).await;
        }
        Err(_) => unreachable!("only failover and watch are not request workloads"),
    };
    prepare(&plan, &args.endpoints).await?;

    let total = args.total;
    let conns = args.conns.max(1);
    // A thread without a connection would have nothing to do.
    let threads =
        args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).clamp(1, conns);
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let shared = load::Load {
        plan: plan.clone(),
        next: Arc::new(AtomicU64::new(0)),
        done: done.clone(),
        failed: failed.clone(),
        total,
        timeout: Duration::from_millis(args.timeout_ms.max(1)),
        interval: args.rate.map(|r| Duration::from_secs_f64(1.0 / r)),
        seed: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64),
        start_line: Arc::new(load::StartLine::new(threads)),
    };

    let bar = progress_bar(total, args.no_progress);
    let workers = load::start_threads(shared.clone(), threads, &args.endpoints, conns, clients);
    let ticker = {
        let (bar, done, failed) = (bar.clone(), done.clone(), failed.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                bar.set_position(done.load(Ordering::Relaxed));
                let errors = failed.load(Ordering::Relaxed);
                if errors > 0 {
                    bar.set_message(format!("{errors} errors"));
                }
            }
        })
    };
    let mut recorder = Recorder::new(plan.op_names().len());
    for worker in workers {
        recorder.merge(worker.await.map_err(|_| "a client thread died".to_string())??);
    }
    let elapsed = shared.start_line.started().elapsed();
    ticker.abort();
    bar.finish_and_clear();

    let summary = Summary {
        workload: workload_name(&plan),
        headline: format!(
            "{total} requests, {clients} clients over {conns} connections to {} endpoints, {threads} threads, {}",
            args.endpoints.len(),
            match args.rate {
                Some(r) => format!("open loop at {r} req/s"),
                None => "closed loop".into(),
            }
        ),
        params: json!({
            "endpoints": args.endpoints,
            "conns": conns,
            "threads": threads,
            "clients": clients,
            "total": total,
            "rate": args.rate,
            "key_size": plan.key_size,
            "val_size": plan.value.len(),
            "key_space": plan.key_space,
            "serializable": plan.serializable,
            "read_ratio": matches!(plan.kind, Kind::Mixed).then_some(plan.read_ratio),
        }),
        kinds: plan.op_names(),
        recorder,
        elapsed,
    };
    if args.json {
        println!("{}", summary.to_json());
    } else {
        println!("{}", summary.to_text());
    }
    Ok(())
}
