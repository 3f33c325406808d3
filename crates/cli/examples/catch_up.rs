//! Learner catch-up benchmark: a 3-member cluster holding N keys, then a learner is added
//! (MemberAdd, then `tally server --initial-cluster-state existing` on an empty data
//! directory). Reports how long the learner takes to catch up (its applied index reaches the
//! leader's, and its own serializable count of the keys is N), and the leader's put latency
//! (one client, sequential puts) before and during the catch-up; also the leader's largest
//! RSS during the catch-up (sampled every 20 ms) against its RSS just before, and the
//! learner's peak RSS (VmHWM).
//!
//! ```sh
//! cargo build --release -p tally
//! cargo run --release -p tally --example catch_up -- --keys 1000000
//! cargo run --release -p tally --example catch_up -- --keys 100000 --snapshot-count 10000
//! ```
//!
//! Members run the release binary at `$TALLY_BIN` or `target/release/tally`, with the
//! default flags (`--snapshot-count` only if given here). Member logs are in a temporary
//! directory, kept if `--keep` is given; their `RUST_LOG` is `$TALLY_LOG` (default `warn`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tally_proto::etcdserverpb::cluster_client::ClusterClient;
use tally_proto::etcdserverpb::kv_client::KvClient;
use tally_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use tally_proto::etcdserverpb::{MemberAddRequest, PutRequest, RangeRequest, StatusRequest, StatusResponse};
use tonic::transport::{Channel, Endpoint};

struct Args {
    keys: usize,
    value_size: usize,
    concurrency: usize,
    snapshot_count: Option<u64>,
    baseline_secs: u64,
    keep: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        keys: 1_000_000,
        value_size: 256,
        concurrency: 256,
        snapshot_count: None,
        baseline_secs: 10,
        keep: false,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut value =
            || -> u64 { it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{flag} needs a number")) };
        match flag.as_str() {
            "--keys" => a.keys = value() as usize,
            "--value-size" => a.value_size = value() as usize,
            "--concurrency" => a.concurrency = value() as usize,
            "--snapshot-count" => a.snapshot_count = Some(value()),
            "--baseline-secs" => a.baseline_secs = value(),
            "--keep" => a.keep = true,
            "-h" | "--help" => {
                println!(
                    "catch_up [--keys N] [--value-size B] [--concurrency C] [--snapshot-count S] [--baseline-secs T] [--keep]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown flag {other} (try --help)"),
        }
    }
    a
}

#[path = "../tests/support/ports.rs"]
mod ports;
use ports::free_port;

fn tally_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TALLY_BIN") {
        return p.into();
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/release/tally");
    assert!(p.exists(), "{} not found: run `cargo build --release -p tally` or set TALLY_BIN", p.display());
    p
}

struct Node {
    name: String,
    client_url: String,
    peer_url: String,
    child: Option<Child>,
}

struct Nodes {
    nodes: Vec<Node>,
    dir: PathBuf,
    token: String,
    snapshot_count: Option<u64>,
    _tmp: Option<tempfile::TempDir>,
}

impl Nodes {
    fn slot(&mut self, name: &str) -> usize {
        let (c, p) = (free_port(), free_port());
        self.nodes.push(Node {
            name: name.into(),
            client_url: format!("http://127.0.0.1:{c}"),
            peer_url: format!("http://127.0.0.1:{p}"),
            child: None,
        });
        self.nodes.len() - 1
    }

    fn spawn(&mut self, i: usize, initial_cluster: &str, state: &str) {
        let n = &self.nodes[i];
        let log = std::fs::File::create(self.dir.join(format!("{}.log", n.name))).expect("log");
        let mut cmd = Command::new(tally_bin());
        cmd.arg("server")
            .args(["--name", &n.name])
            .arg("--data-dir")
            .arg(self.dir.join(&n.name))
            .args(["--listen-client-urls", &n.client_url])
            .args(["--listen-peer-urls", &n.peer_url])
            .args(["--initial-advertise-peer-urls", &n.peer_url])
            .args(["--initial-cluster", initial_cluster])
            .args(["--initial-cluster-state", state])
            .args(["--initial-cluster-token", &self.token]);
        if let Some(s) = self.snapshot_count {
            cmd.args(["--snapshot-count", &s.to_string()]);
        }
        let child = cmd
            .env("RUST_LOG", std::env::var("TALLY_LOG").unwrap_or_else(|_| "warn".into()))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn tally server");
        self.nodes[i].child = Some(child);
    }

    fn initial_cluster(&self, upto: usize) -> String {
        self.nodes[..upto].iter().map(|n| format!("{}={}", n.name, n.peer_url)).collect::<Vec<_>>().join(",")
    }

    fn pid(&self, i: usize) -> u32 {
        self.nodes[i].child.as_ref().expect("running").id()
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(c) = &mut n.child {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn channel(url: &str) -> Channel {
    Endpoint::from_shared(url.to_string())
        .expect("url")
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(30))
        .connect_lazy()
}

async fn status(url: &str) -> Option<StatusResponse> {
    let mut m = MaintenanceClient::new(channel(url));
    tokio::time::timeout(Duration::from_secs(2), m.status(StatusRequest {})).await.ok()?.ok().map(|r| r.into_inner())
}

/// Waits until the first three agree on a leader; returns its index.
async fn wait_for_leader(nodes: &Nodes) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut leaders = Vec::new();
        let mut ids = Vec::new();
        for n in &nodes.nodes[..3] {
            let s = status(&n.client_url).await;
            leaders.push(s.as_ref().map_or(0, |s| s.leader));
            ids.push(s.and_then(|s| s.header).map_or(0, |h| h.member_id));
        }
        if leaders[0] != 0 && leaders.iter().all(|&l| l == leaders[0]) {
            if let Some(i) = ids.iter().position(|&id| id == leaders[0]) {
                return i;
            }
        }
        assert!(Instant::now() < deadline, "no leader within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn rss_mib(pid: u32) -> f64 {
    proc_status_mib(pid, "VmRSS:")
}

/// Peak resident set size so far.
fn hwm_mib(pid: u32) -> f64 {
    proc_status_mib(pid, "VmHWM:")
}

fn proc_status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    kib as f64 / 1024.0
}

fn dir_mib(dir: &Path) -> f64 {
    fn walk(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                let p = e.path();
                if p.is_dir() {
                    walk(&p)
                } else {
                    e.metadata().map(|m| m.len()).unwrap_or(0)
                }
            })
            .sum()
    }
    walk(dir) as f64 / (1024.0 * 1024.0)
}

fn key(i: usize) -> Vec<u8> {
    format!("key/{i:08}").into_bytes()
}

/// Sequential puts to the leader until `stop`; latencies in µs.
async fn latency_client(url: String, value_size: usize, stop: Arc<AtomicBool>, hist: Arc<Mutex<Histogram<u64>>>) {
    let mut kv = KvClient::new(channel(&url));
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let req =
            PutRequest { key: format!("lat/{i}").into_bytes(), value: vec![b'l'; value_size], ..Default::default() };
        let t = Instant::now();
        match kv.put(req).await {
            Ok(_) => {
                let us = t.elapsed().as_micros() as u64;
                hist.lock().unwrap().record(us.max(1)).expect("record");
            }
            Err(e) => eprintln!("latency put failed: {e}"),
        }
        i += 1;
    }
}

fn summary(h: &Histogram<u64>) -> String {
    format!(
        "n={} p50={:.2} ms p99={:.2} ms p99.9={:.2} ms max={:.2} ms",
        h.len(),
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.value_at_quantile(0.999) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    )
}

fn new_hist() -> Arc<Mutex<Histogram<u64>>> {
    Arc::new(Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram")))
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    println!("command: cargo run --release -p tally --example catch_up -- {}", argv.join(" "));
    println!("tally binary: {}", tally_bin().display());

    let tmp = tempfile::Builder::new().prefix("tally-catchup-").tempdir().expect("temp dir");
    let dir = tmp.path().to_path_buf();
    let token = dir.file_name().unwrap().to_string_lossy().into_owned();
    let mut nodes =
        Nodes { nodes: Vec::new(), dir: dir.clone(), token, snapshot_count: args.snapshot_count, _tmp: Some(tmp) };
    if args.keep {
        let tmp = nodes._tmp.take().unwrap();
        let _ = tmp.keep();
        println!("member logs and data kept in {}", dir.display());
    }
    for i in 0..3 {
        nodes.slot(&format!("n{}", i + 1));
    }
    let initial = nodes.initial_cluster(3);
    for i in 0..3 {
        nodes.spawn(i, &initial, "new");
    }
    let leader = wait_for_leader(&nodes).await;
    let leader_url = nodes.nodes[leader].client_url.clone();
    println!("leader: {} ({leader_url})", nodes.nodes[leader].name);

    // Load N keys through the leader, `concurrency` puts in flight over 8 connections.
    let t_load = Instant::now();
    let channels: Vec<Channel> = (0..8).map(|_| channel(&leader_url)).collect();
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|t| {
            let mut kv = KvClient::new(channels[t % channels.len()].clone());
            let (next, done, n, vs) = (next.clone(), done.clone(), args.keys, args.value_size);
            tokio::spawn(async move {
                let value = vec![b'v'; vs];
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    let req = PutRequest { key: key(i), value: value.clone(), ..Default::default() };
                    let mut attempts = 0;
                    while let Err(e) = kv.put(req.clone()).await {
                        attempts += 1;
                        assert!(attempts < 20, "load put failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let progress = {
        let done = done.clone();
        let n = args.keys;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let d = done.load(Ordering::Relaxed);
                if d >= n {
                    return;
                }
                eprintln!("  loaded {d}/{n}");
            }
        })
    };
    for t in tasks {
        t.await.expect("load task");
    }
    progress.abort();
    let load_secs = t_load.elapsed().as_secs_f64();
    println!(
        "loaded {} keys of {} bytes in {:.1} s ({:.0} puts/s); leader RSS {:.0} MiB, data dir {:.0} MiB",
        args.keys,
        args.value_size,
        load_secs,
        args.keys as f64 / load_secs,
        rss_mib(nodes.pid(leader)),
        dir_mib(&dir.join(&nodes.nodes[leader].name))
    );
    // Let the followers finish applying, then measure the steady state.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let before = new_hist();
    let stop = Arc::new(AtomicBool::new(false));
    let lat = tokio::spawn(latency_client(leader_url.clone(), args.value_size, stop.clone(), before.clone()));
    tokio::time::sleep(Duration::from_secs(args.baseline_secs)).await;
    stop.store(true, Ordering::Relaxed);
    lat.await.unwrap();
    println!("leader put latency before ({} s): {}", args.baseline_secs, summary(&before.lock().unwrap()));

    let leader_rss_before = rss_mib(nodes.pid(leader));
    let leader_rss_max = Arc::new(Mutex::new(leader_rss_before));
    let sampler = {
        let (pid, max) = (nodes.pid(leader), leader_rss_max.clone());
        tokio::spawn(async move {
            loop {
                let rss = rss_mib(pid);
                {
                    let mut max = max.lock().unwrap();
                    *max = max.max(rss);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // Add the learner and start it; measure while it catches up.
    let during = new_hist();
    let stop = Arc::new(AtomicBool::new(false));
    let lat = tokio::spawn(latency_client(leader_url.clone(), args.value_size, stop.clone(), during.clone()));
    let learner = nodes.slot("n4");
    let t_add = Instant::now();
    let resp = ClusterClient::new(channel(&leader_url))
        .member_add(MemberAddRequest { peer_ur_ls: vec![nodes.nodes[learner].peer_url.clone()], is_learner: true })
        .await
        .expect("MemberAdd")
        .into_inner();
    let learner_id = resp.member.expect("member").id;
    let initial = nodes.initial_cluster(4);
    nodes.spawn(learner, &initial, "existing");
    let t_start = Instant::now();
    println!("MemberAdd took {:.0} ms; learner {learner_id:x} started", t_add.elapsed().as_secs_f64() * 1000.0);

    let learner_url = nodes.nodes[learner].client_url.clone();
    let mut applied_at = None;
    let mut first_answer = None;
    let count_at;
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        assert!(Instant::now() < deadline, "the learner did not catch up within 30 min");
        if let Some(c) = nodes.nodes[learner].child.as_mut() {
            if let Ok(Some(st)) = c.try_wait() {
                panic!("the learner exited ({st}); see {}", dir.join("n4.log").display());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let Some(ls) = status(&learner_url).await else { continue };
        first_answer.get_or_insert_with(|| t_start.elapsed());
        if applied_at.is_none() {
            let Some(lead) = status(&leader_url).await else { continue };
            if ls.raft_applied_index > 0 && ls.raft_applied_index >= lead.raft_applied_index {
                applied_at = Some(t_start.elapsed());
            } else {
                continue;
            }
        }
        let mut kv = KvClient::new(channel(&learner_url));
        let req = RangeRequest {
            key: b"key/".to_vec(),
            range_end: b"key0".to_vec(),
            count_only: true,
            serializable: true,
            ..Default::default()
        };
        if let Ok(r) = kv.range(req).await {
            if r.into_inner().count as usize == args.keys {
                count_at = t_start.elapsed();
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    sampler.abort();
    lat.await.unwrap();
    let applied_at = applied_at.unwrap();
    println!(
        "learner answered Status after {:.2} s; applied index reached the leader's after {:.2} s; \
         serializable count = {} after {:.2} s",
        first_answer.unwrap_or_default().as_secs_f64(),
        applied_at.as_secs_f64(),
        args.keys,
        count_at.as_secs_f64()
    );
    println!(
        "learner RSS {:.0} MiB (peak {:.0} MiB), data dir {:.0} MiB",
        rss_mib(nodes.pid(learner)),
        hwm_mib(nodes.pid(learner)),
        dir_mib(&dir.join(&nodes.nodes[learner].name))
    );
    println!(
        "leader RSS {:.0} MiB before the learner was added, at most {:.0} MiB while it caught up",
        leader_rss_before,
        *leader_rss_max.lock().unwrap()
    );
    println!("leader put latency during catch-up: {}", summary(&during.lock().unwrap()));
    let (b, d) = (before.lock().unwrap(), during.lock().unwrap());
    println!(
        "p99 before {:.2} ms -> during {:.2} ms ({:.1}x); max before {:.2} ms -> during {:.2} ms",
        b.value_at_quantile(0.99) as f64 / 1000.0,
        d.value_at_quantile(0.99) as f64 / 1000.0,
        d.value_at_quantile(0.99) as f64 / b.value_at_quantile(0.99).max(1) as f64,
        b.max() as f64 / 1000.0,
        d.max() as f64 / 1000.0
    );
}
