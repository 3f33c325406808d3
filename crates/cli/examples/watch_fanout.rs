//! Watch fan-out benchmark: W watchers on one prefix, spread over N gRPC streams (each on its
//! own connection), then P puts under the prefix; reports events delivered per second across
//! all watchers and the watched member's memory (VmRSS) before and after creating the watchers.
//!
//! ```sh
//! cargo build --release -p tally
//! cargo run --release -p tally --example watch_fanout -- --members 1 --watchers 1000 --streams 10 --puts 1000
//! cargo run --release -p tally --example watch_fanout -- --members 3 --watchers 10000 --streams 100 --puts 100
//! ```
//!
//! The cluster is started here, as the integration tests do, from the release binary at
//! `$TALLY_BIN` or `target/release/tally`. Watchers and puts go to member 1 (`n1`); its RSS is
//! what is reported.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tally_proto::etcdserverpb::kv_client::KvClient;
use tally_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use tally_proto::etcdserverpb::watch_client::WatchClient;
use tally_proto::etcdserverpb::watch_request::RequestUnion;
use tally_proto::etcdserverpb::{PutRequest, StatusRequest, WatchCreateRequest, WatchRequest};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

struct Args {
    members: usize,
    watchers: usize,
    streams: usize,
    puts: usize,
    concurrency: usize,
    value_size: usize,
}

fn parse_args() -> Args {
    let mut a = Args { members: 1, watchers: 1000, streams: 10, puts: 1000, concurrency: 16, value_size: 64 };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut value =
            || -> usize { it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{flag} needs a number")) };
        match flag.as_str() {
            "--members" => a.members = value(),
            "--watchers" => a.watchers = value(),
            "--streams" => a.streams = value(),
            "--puts" => a.puts = value(),
            "--concurrency" => a.concurrency = value(),
            "--value-size" => a.value_size = value(),
            "-h" | "--help" => {
                println!(
                    "watch_fanout [--members 1|3] [--watchers W] [--streams N] [--puts P] [--concurrency C] [--value-size B]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown flag {other} (try --help)"),
        }
    }
    assert!(a.members == 1 || a.members == 3 || a.members == 5, "--members must be 1, 3 or 5");
    assert!(a.streams >= 1 && a.watchers >= a.streams, "need at least one watcher per stream");
    a
}

#[path = "../tests/support/ports.rs"]
mod ports;
use ports::free_port;

struct Members {
    children: Vec<Child>,
    client_urls: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Members {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn tally_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TALLY_BIN") {
        return p.into();
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/release/tally");
    assert!(p.exists(), "{} not found: run `cargo build --release -p tally` or set TALLY_BIN", p.display());
    p
}

fn start(n: usize) -> Members {
    let dir = tempfile::Builder::new().prefix("tally-fanout-").tempdir().expect("temp dir");
    let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
    let initial = ports
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| format!("n{}=http://127.0.0.1:{peer}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let token = dir.path().file_name().unwrap().to_string_lossy().into_owned();
    let bin = tally_bin();
    let mut children = Vec::new();
    let mut client_urls = Vec::new();
    for (i, (client, peer)) in ports.iter().enumerate() {
        let name = format!("n{}", i + 1);
        let log = std::fs::File::create(dir.path().join(format!("{name}.log"))).expect("log");
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new(&bin)
            .arg("server")
            .args(["--name", &name])
            .arg("--data-dir")
            .arg(dir.path().join(&name))
            .args(["--listen-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &initial])
            .args(["--initial-cluster-token", &token])
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn tally server");
        children.push(child);
        client_urls.push(client_url);
    }
    Members { children, client_urls, _dir: dir }
}

fn channel(url: &str) -> Channel {
    Endpoint::from_shared(url.to_string()).expect("url").connect_timeout(Duration::from_millis(500)).connect_lazy()
}

async fn wait_for_leader(urls: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut leaders = Vec::new();
        for url in urls {
            let mut m = MaintenanceClient::new(channel(url));
            match tokio::time::timeout(Duration::from_secs(1), m.status(StatusRequest {})).await {
                Ok(Ok(r)) => leaders.push(r.into_inner().leader),
                _ => leaders.push(0),
            }
        }
        if leaders[0] != 0 && leaders.iter().all(|&l| l == leaders[0]) {
            return;
        }
        assert!(Instant::now() < deadline, "no leader within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/<pid>/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS line");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS value")
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let command: Vec<String> = std::env::args().skip(1).collect();
    println!(
        "command: cargo run --release -p tally --example watch_fanout -- {}",
        if command.is_empty() { "(defaults)".to_string() } else { command.join(" ") }
    );
    println!(
        "config: members={} watchers={} streams={} puts={} put-concurrency={} value-size={}B",
        args.members, args.watchers, args.streams, args.puts, args.concurrency, args.value_size
    );

    let cluster = start(args.members);
    wait_for_leader(&cluster.client_urls).await;
    let url = cluster.client_urls[0].clone();
    let pid = cluster.children[0].id();
    // Settle: one write so the member has done real work before the baseline.
    let mut kv = KvClient::new(channel(&url));
    kv.put(PutRequest { key: b"warmup".to_vec(), value: b"x".to_vec(), ..Default::default() }).await.expect("put");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_kib(pid);

    // Watchers: W over N streams, each stream on its own connection.
    let received = Arc::new(AtomicU64::new(0));
    let last_event_ns = Arc::new(AtomicU64::new(0));
    let epoch = Instant::now();
    let created_at = Instant::now();
    let mut senders = Vec::new();
    let mut ready = Vec::new();
    let mut readers = Vec::new();
    for s in 0..args.streams {
        let share = args.watchers / args.streams + usize::from(s < args.watchers % args.streams);
        let (tx, rx) = mpsc::channel(share.max(1));
        let mut client = WatchClient::new(channel(&url)).max_decoding_message_size(64 << 20);
        let mut incoming = client.watch(ReceiverStream::new(rx)).await.expect("open watch stream").into_inner();
        for _ in 0..share {
            let req = WatchCreateRequest { key: b"fan/".to_vec(), range_end: b"fan0".to_vec(), ..Default::default() };
            tx.send(WatchRequest { request_union: Some(RequestUnion::CreateRequest(req)) }).await.expect("send create");
        }
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        ready.push(ready_rx);
        senders.push(tx);
        let (received, last_event_ns) = (received.clone(), last_event_ns.clone());
        readers.push(tokio::spawn(async move {
            let mut created = 0;
            let mut ready_tx = Some(ready_tx);
            if share == 0 {
                let _ = ready_tx.take().map(|t| t.send(()));
            }
            while let Ok(Some(resp)) = incoming.message().await {
                if resp.created {
                    created += 1;
                    if created == share {
                        let _ = ready_tx.take().map(|t| t.send(()));
                    }
                }
                if resp.canceled {
                    panic!("watch canceled: {resp:?}");
                }
                if !resp.events.is_empty() {
                    received.fetch_add(resp.events.len() as u64, Ordering::Relaxed);
                    last_event_ns.fetch_max(epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
                }
            }
        }));
    }
    for r in ready {
        r.await.expect("stream reader ended before all its watches were created");
    }
    let create_time = created_at.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_watchers = rss_kib(pid);

    // Puts under the prefix, `concurrency` at a time.
    let value = vec![b'v'; args.value_size];
    let next = Arc::new(AtomicU64::new(0));
    let first_put = Instant::now();
    let first_put_ns = epoch.elapsed().as_nanos() as u64;
    let mut putters = Vec::new();
    for _ in 0..args.concurrency {
        let (next, value, puts) = (next.clone(), value.clone(), args.puts as u64);
        let mut kv = KvClient::new(channel(&url));
        putters.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= puts {
                    break;
                }
                let req = PutRequest { key: format!("fan/{i:08}").into(), value: value.clone(), ..Default::default() };
                kv.put(req).await.expect("put");
            }
        }));
    }
    for p in putters {
        p.await.expect("putter");
    }
    let put_time = first_put.elapsed();
    let expected = (args.watchers * args.puts) as u64;
    let deadline = Instant::now() + Duration::from_secs(300);
    while received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let got = received.load(Ordering::Relaxed);
    let delivery = Duration::from_nanos(last_event_ns.load(Ordering::Relaxed).saturating_sub(first_put_ns));
    let rss_after = rss_kib(pid);
    drop(senders);

    let per_watcher = (rss_watchers.saturating_sub(rss_before)) as f64 * 1024.0 / args.watchers as f64;
    println!(
        "watchers held by n1:        {} (on {} streams, all created in {:.2?})",
        args.watchers, args.streams, create_time
    );
    println!(
        "puts:                       {} in {:.2?} ({:.0} puts/s)",
        args.puts,
        put_time,
        args.puts as f64 / put_time.as_secs_f64()
    );
    println!(
        "events delivered:           {got} of {expected}{}",
        if got == expected { "" } else { "  ** INCOMPLETE (timed out) **" }
    );
    println!(
        "delivery:                   {:.0} events/s ({got} events, first put to last event {:.2?})",
        got as f64 / delivery.as_secs_f64(),
        delivery
    );
    println!("n1 VmRSS before watchers:   {:.1} MiB", mib(rss_before));
    println!(
        "n1 VmRSS with watchers:     {:.1} MiB (+{:.1} MiB, {:.0} bytes per watcher)",
        mib(rss_watchers),
        mib(rss_watchers.saturating_sub(rss_before)),
        per_watcher
    );
    println!("n1 VmRSS after the puts:    {:.1} MiB", mib(rss_after));
    if got != expected {
        std::process::exit(1);
    }
}
