//! `tally dev`: a local cluster in one command. Each member is a `tally server` child process
//! with its own data directory and log file; Ctrl-C, SIGTERM or SIGHUP stops them all.

use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use tally_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use tally_proto::etcdserverpb::StatusRequest;

#[derive(clap::Args)]
pub struct DevArgs {
    /// Where the members keep their data and logs (reused across runs).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// How many members (client ports 2379, 22379, 32379, 42379, ...).
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// The first member's client port; the others follow the same pattern (P, 20000+P,
    /// 30000+P, ...), each member's peer port is its client port plus one.
    #[arg(long, default_value_t = 2379, value_parser = clap::value_parser!(u16).range(1..=5534))]
    client_port: u16,
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

struct Members(Vec<Child>);

impl Drop for Members {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
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
    let names: Vec<String> = (1..=args.nodes).map(|i| format!("n{i}")).collect();
    let peer = |i: u16| format!("http://127.0.0.1:{}", client_port(args.client_port, i) + 1);
    let client = |i: u16| format!("http://127.0.0.1:{}", client_port(args.client_port, i));
    let initial_cluster: Vec<String> = (0..args.nodes).map(|i| format!("{}={}", names[i as usize], peer(i))).collect();
    let exe = std::env::current_exe().expect("own executable");
    let mut members = Members(Vec::new());
    for i in 0..args.nodes {
        let name = &names[i as usize];
        let log_path = dir.join(format!("{name}.log"));
        let log = match std::fs::OpenOptions::new().create(true).append(true).open(&log_path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("tally dev: cannot open {}: {e}", log_path.display());
                return ExitCode::from(1);
            }
        };
        let mut command = Command::new(&exe);
        stop_with_parent(&mut command);
        let child = command
            .arg("server")
            .args(["--name", name])
            .arg("--data-dir")
            .arg(dir.join(name))
            .args(["--listen-client-urls", &client(i)])
            .args(["--listen-peer-urls", &peer(i)])
            .args(["--initial-advertise-peer-urls", &peer(i)])
            .args(["--initial-cluster", &initial_cluster.join(",")])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn();
        match child {
            Ok(child) => members.0.push(child),
            Err(e) => {
                eprintln!("tally dev: cannot start {name}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let endpoints: Vec<String> =
        (0..args.nodes).map(|i| format!("127.0.0.1:{}", client_port(args.client_port, i))).collect();
    println!("tally dev: {} members, data and logs in {}", args.nodes, dir.display());
    for (i, name) in names.iter().enumerate() {
        println!("  {name}  client {}  peer {}", client(i as u16), peer(i as u16));
    }
    match wait_for_leader(&endpoints[0], Duration::from_secs(15)).await {
        Some(leader) => println!("cluster is up (leader {leader:x})."),
        None => println!("no leader yet; see the logs in {}", dir.display()),
    }
    println!(
        "\nTry:\n  etcdctl --endpoints={} put foo bar\n  etcdctl --endpoints={} get foo",
        endpoints.join(","),
        endpoints[0]
    );
    println!("Ctrl-C (or SIGTERM) stops every member.");
    // A member that dies (say, killed to watch a failover) is reported once; the rest go on.
    let mut reported = vec![false; members.0.len()];
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                for (i, child) in members.0.iter_mut().enumerate() {
                    if let (Ok(Some(status)), false) = (child.try_wait(), reported[i]) {
                        reported[i] = true;
                        let log = dir.join(format!("{}.log", names[i]));
                        eprintln!("tally dev: member {} exited ({status}); see {}", names[i], log.display());
                    }
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
