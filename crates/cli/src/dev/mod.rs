//! `tally dev`: a local cluster in one command. Each member is a `tally server` child process
//! with its own data directory and log file; Ctrl-C, SIGTERM or SIGHUP stops them all.
//!
//! `tally dev` also serves the live view of Raft with controls (`control`): members can be
//! killed and restarted (`members`), paused, and cut off from each other by the peer proxy
//! every member-to-member connection passes through (`proxy`); keys can be written, one or
//! at a steady rate (`load`).
//!
//! Ports, for the member with client port C (2379, 22379, 32379, ...): C serves clients, C+1
//! is where it listens for peers, and C+2 is where it is advertised to them: the proxy's port.
//! The control server listens on `--ui-port` (the first client port minus one: 2378).
//! ZooKeeper's clients connect to `--zk-port` (the first client port minus 198: 2181, then
//! 22181, 32181, ... for the other members).

mod control;
mod load;
mod members;
mod proxy;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Duration;

use tally_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use tally_proto::etcdserverpb::StatusRequest;

use members::Members;

#[derive(clap::Args)]
pub struct DevArgs {
    /// Where the members keep their data and logs (reused across runs).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// How many members (client ports 2379, 22379, 32379, 42379, ...).
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// The first member's client port; the others follow the same pattern (P, 20000+P,
    /// 30000+P, ...). Each member listens for peers on its client port plus one, and is
    /// advertised to them through tally dev's proxy at its client port plus two.
    #[arg(long, default_value_t = 2379, value_parser = clap::value_parser!(u16).range(2..=5533))]
    client_port: u16,
    /// Where the live view and its controls are served (default: the first client port minus
    /// one).
    #[arg(long)]
    ui_port: Option<u16>,
    /// The first member's port for ZooKeeper's clients (default: the first client port minus
    /// 198, so 2181 beside 2379); the others follow the client ports' pattern. 0: none.
    #[arg(long)]
    zk_port: Option<u16>,
    /// The algorithm the members replicate with: raft or paxos. A --dir keeps the one it was
    /// first run with (use another --dir to switch).
    #[arg(long, value_enum, default_value_t = crate::Consensus::Raft)]
    consensus: crate::Consensus,
}

fn client_port(first: u16, i: u16) -> u16 {
    if i == 0 {
        first
    } else {
        (i + 1) * 10000 + first
    }
}

/// Completes when the user or a supervisor asks `tally dev` to stop: Ctrl-C (SIGINT), SIGTERM
/// (what `kill`, `timeout` and test harnesses send) or SIGHUP (the terminal went away).
fn stop_requested() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut signals =
        [signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?, signal(SignalKind::hangup())?];
    Ok(async move {
        let [a, b, c] = &mut signals;
        tokio::select! {
            _ = a.recv() => {}
            _ = b.recv() => {}
            _ = c.recv() => {}
        }
    })
}

/// The file in `--dir` that records the cluster its members were created for.
const LAYOUT_FILE: &str = "dev-cluster";

/// Member ids derive from the advertised peer URLs, so data directories made for other URLs
/// (another `--client-port` or `--nodes`, or a `tally dev` from before the proxy) cannot be
/// reused: refused with a message rather than left to fail in the members' logs.
fn check_layout(dir: &Path, names: &[String], initial_cluster: &str) -> Result<(), String> {
    let path = dir.join(LAYOUT_FILE);
    match std::fs::read_to_string(&path) {
        Ok(recorded) if recorded.trim() == initial_cluster => return Ok(()),
        Ok(recorded) => {
            return Err(format!(
                "{} holds a cluster made as {}, not {initial_cluster}; use another --dir, the same flags, or \
                 remove it",
                dir.display(),
                recorded.trim()
            ))
        }
        Err(_) => {}
    }
    if let Some(name) = names.iter().find(|name| dir.join(name).exists()) {
        return Err(format!(
            "{} was made by an older tally dev (advertised without the proxy); use another --dir or remove it",
            dir.join(name).display()
        ));
    }
    std::fs::write(&path, format!("{initial_cluster}\n")).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub async fn run(args: DevArgs) -> ExitCode {
    if !(1..=6).contains(&args.nodes) {
        eprintln!("tally dev: --nodes must be between 1 and 6");
        return ExitCode::from(2);
    }
    let dir = args.dir.unwrap_or_else(|| std::env::temp_dir().join("tally-dev"));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("tally dev: cannot create {}: {e}", dir.display());
        return ExitCode::from(1);
    }
    // Watched from the start, so that a stop asked for while the members start is not lost.
    let stop = match stop_requested() {
        Ok(stop) => stop,
        Err(e) => {
            eprintln!("tally dev: cannot watch for signals: {e}");
            return ExitCode::from(1);
        }
    };
    let n = args.nodes;
    let consensus = tally_node::ConsensusKind::from(args.consensus).name();
    let names: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
    let url = |port: u16| format!("http://127.0.0.1:{port}");
    let client = |i: u16| client_port(args.client_port, i);
    let (peer, advertised) = (|i: u16| client(i) + 1, |i: u16| client(i) + 2);
    let zk_first = args.zk_port.unwrap_or(args.client_port.saturating_sub(198));
    let zk = |i: u16| (zk_first != 0).then(|| client_port(zk_first, i));
    let client_urls: Vec<String> = (0..n).map(|i| url(client(i))).collect();
    let advertised_urls: Vec<String> = (0..n).map(|i| url(advertised(i))).collect();
    let initial_cluster: Vec<String> =
        (0..n).map(|i| format!("{}={}", names[i as usize], advertised_urls[i as usize])).collect();
    let initial_cluster = initial_cluster.join(",");
    if let Err(e) = check_layout(&dir, &names, &initial_cluster) {
        eprintln!("tally dev: {e}");
        return ExitCode::from(1);
    }
    let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    // A lone member has no peers to dial it: no proxy.
    let mut routes = Vec::new();
    for i in (0..n).filter(|_| n > 1) {
        match tokio::net::TcpListener::bind(loopback(advertised(i))).await {
            Ok(listener) => {
                routes.push(proxy::Route { listener, advertised: loopback(advertised(i)), member: loopback(peer(i)) })
            }
            Err(e) => {
                eprintln!(
                    "tally dev: cannot listen on port {} (the peer proxy for {}): {e}",
                    advertised(i),
                    names[i as usize]
                );
                return ExitCode::from(1);
            }
        }
    }
    let proxy = proxy::Proxy::start(names.clone(), routes);
    let exe = std::env::current_exe().expect("own executable");
    let mut members = Members::new(exe);
    for i in 0..n {
        let name = &names[i as usize];
        let mut args: Vec<OsString> = vec!["server".into(), "--name".into(), name.into(), "--data-dir".into()];
        args.push(dir.join(name).into());
        args.extend(
            [
                "--listen-client-urls",
                &client_urls[i as usize],
                "--listen-peer-urls",
                &url(peer(i)),
                "--initial-advertise-peer-urls",
                &advertised_urls[i as usize],
                "--initial-cluster",
                &initial_cluster,
                "--enable-ui",
                "--consensus",
                consensus,
            ]
            .map(OsString::from),
        );
        if let Some(port) = zk(i) {
            args.extend(["--listen-zk-urls".into(), format!("tcp://127.0.0.1:{port}").into()]);
        }
        if let Err(e) = members.add(name, args, dir.join(format!("{name}.log"))) {
            eprintln!("tally dev: {e}");
            return ExitCode::from(1);
        }
    }
    let (requests, mut requests_rx) = tokio::sync::mpsc::unbounded_channel();
    let dev = Arc::new(control::Dev::new(names.clone(), client_urls.clone(), advertised_urls.clone(), proxy, requests));
    dev.publish(members.states());
    let ui_port = args.ui_port.unwrap_or(args.client_port - 1);
    let ui = match tokio::net::TcpListener::bind(loopback(ui_port)).await {
        Ok(listener) => {
            tokio::spawn(control::serve(listener, dev.clone()));
            true
        }
        Err(e) => {
            eprintln!("tally dev: cannot serve the UI on port {ui_port}: {e}");
            false
        }
    };
    let endpoints: Vec<String> = (0..n).map(|i| format!("127.0.0.1:{}", client(i))).collect();
    let zk_hosts: Option<String> =
        (zk_first != 0).then(|| (0..n).filter_map(zk).map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(","));
    println!("tally dev: {n} members, data and logs in {}", dir.display());
    for (i, name) in names.iter().enumerate() {
        let i = i as u16;
        let proxied = if n > 1 { format!(" (proxied at {})", url(advertised(i))) } else { String::new() };
        let zk = zk(i).map(|port| format!("  zookeeper 127.0.0.1:{port}")).unwrap_or_default();
        println!("  {name}  client {}  peer {}{proxied}{zk}", url(client(i)), url(peer(i)));
    }
    if ui {
        println!("UI: http://127.0.0.1:{ui_port}/ui");
    }
    {
        let (dev, dir) = (dev.clone(), dir.clone());
        tokio::spawn(async move {
            match wait_for_leader(&endpoints[0], Duration::from_secs(15)).await {
                Some(leader) => println!("cluster is up (leader {leader:x})."),
                None => println!("no leader yet; see the logs in {}", dir.display()),
            }
            println!(
                "\nTry:\n  etcdctl --endpoints={} put foo bar\n  etcdctl --endpoints={} get foo",
                endpoints.join(","),
                endpoints[0]
            );
            if let Some(zk_hosts) = &zk_hosts {
                println!("  python3 -c \"from kazoo.client import KazooClient; z = KazooClient('{zk_hosts}'); z.start(); print(z.get_children('/'))\"");
            }
            println!("Ctrl-C (or SIGTERM) stops every member.");
            dev.learn_ids().await;
        });
    }
    // Kills, restarts and pauses are carried out here, on the thread the members were started
    // from (see `members`). A member that dies unasked (say, killed from a shell to watch a
    // failover) is reported once and stays dead until restarted.
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(request) = requests_rx.recv() => {
                let control::ProcessRequest { member, action, reply } = request;
                let outcome = members.apply(member, action);
                dev.publish(members.states());
                let _ = reply.send(outcome);
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                let ended = members.reap();
                if !ended.is_empty() {
                    dev.publish(members.states());
                }
                for (_, name, status, log) in ended {
                    eprintln!("tally dev: member {name} exited ({status}); see {}", log.display());
                }
            }
        }
    }
    drop(members);
    println!("\nstopped.");
    ExitCode::SUCCESS
}

async fn wait_for_leader(endpoint: &str, timeout: Duration) -> Option<u64> {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if let Ok(mut client) = MaintenanceClient::connect(format!("http://{endpoint}")).await {
            if let Ok(status) = client.status(StatusRequest {}).await {
                let leader = status.into_inner().leader;
                if leader != 0 {
                    return Some(leader);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Members get SIGTERM when `tally dev` dies, however it dies (even by SIGKILL), so they never
/// outlive it holding its ports. Linux's parent-death signal: set in the child before exec. It
/// fires when the thread that spawned the child ends: here the main thread, which `block_on`s.
fn stop_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: prctl and getppid are async-signal-safe and touch no memory of the parent.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the signal was armed.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}
