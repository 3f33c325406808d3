//! A test harness that runs real `tally server` processes on loopback ports.
//!
//! Every member is a child process with its own data directory and log file (its stderr) in a
//! temporary directory. Children are killed when the `Cluster` is dropped, also while a test
//! panics; a panicking test also gets the tail of every member's log printed, so a failed
//! assertion shows what the servers were doing.

#![allow(dead_code)] // Each test file uses a different part of the harness.

pub mod etcdctl;
mod logs;
pub mod pki;
mod ports;
pub mod reference_etcd;
mod watch_stream;
pub mod zk;

pub use logs::tail;
pub use ports::free_port;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
#[allow(unused_imports)] // Used by the watch tests only.
pub use watch_stream::WatchStream;

use tally_proto::etcdserverpb::kv_client::KvClient;
use tally_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use tally_proto::etcdserverpb::{StatusRequest, StatusResponse};
use tempfile::TempDir;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

/// How long a fresh (or restarted) cluster may take to elect a leader.
pub const LEADER_TIMEOUT: Duration = Duration::from_secs(20);
/// Log bytes printed per member when a test fails.
const LOG_TAIL_BYTES: u64 = 6000;

pub struct Member {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    /// Where it serves ZooKeeper's clients, if the cluster's `Setup::zk` says so.
    pub zk_port: u16,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    /// "http", or "https" for both its client and peer URLs.
    scheme: &'static str,
    child: Option<Child>,
}

impl Member {
    pub fn client_url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.client_port)
    }

    pub fn peer_url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.peer_port)
    }

    /// `host:port`, the form etcdctl's `--endpoints` takes.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

pub struct Cluster {
    pub members: Vec<Member>,
    initial_cluster: String,
    /// Member ids (from Status response headers), filled in by `start`.
    ids: Vec<u64>,
    token: String,
    dir: TempDir,
    setup: Setup,
}

/// How a cluster's members are reached, beyond the defaults (plain http).
#[derive(Clone, Default)]
pub struct Setup {
    /// "https" for TLS client and peer URLs ("http" when empty).
    pub scheme: &'static str,
    /// Flags every member starts with (certificates and the like).
    pub flags: Vec<String>,
    /// How the test's gRPC clients reach https URLs.
    pub tls: Option<tally_server::tls::ChannelConnector>,
    /// Every member also serves ZooKeeper's clients, on its `zk_port`.
    pub zk: bool,
}

/// A channel that connects on first use and gives up quickly on a dead member.
pub fn channel(url: &str) -> Channel {
    endpoint(url).connect_lazy()
}

fn endpoint(url: &str) -> Endpoint {
    Endpoint::from_shared(url.to_string())
        .expect("endpoint url")
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(10))
}

/// Polls `f` until it yields `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Cluster {
    /// Starts `n` members and waits until every one of them knows the same leader.
    pub async fn start(n: usize) -> Cluster {
        Self::start_with(n, Setup::default()).await
    }

    /// `start`, with the members set up as `setup` says.
    pub async fn start_with(n: usize, mut setup: Setup) -> Cluster {
        if setup.scheme.is_empty() {
            setup.scheme = "http";
        }
        let dir = tempfile::Builder::new().prefix("tally-it-").tempdir().expect("temp dir");
        let mut members = Vec::new();
        for i in 0..n {
            let name = format!("n{}", i + 1);
            members.push(Member {
                client_port: free_port(),
                peer_port: free_port(),
                zk_port: free_port(),
                data_dir: dir.path().join(&name),
                log_path: dir.path().join(format!("{name}.log")),
                name,
                scheme: setup.scheme,
                child: None,
            });
        }
        let initial_cluster =
            members.iter().map(|m| format!("{}={}", m.name, m.peer_url())).collect::<Vec<_>>().join(",");
        let token = dir.path().file_name().expect("temp dir name").to_string_lossy().into_owned();
        let mut cluster = Cluster { members, initial_cluster, ids: Vec::new(), token, dir, setup };
        cluster.start_all();
        cluster.wait_for_leader().await;
        let mut ids = Vec::new();
        for i in 0..n {
            let status = cluster.status(i).await.expect("status of a fresh member");
            ids.push(status.header.expect("status header").member_id);
        }
        cluster.ids = ids;
        cluster
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// The `--initial-cluster` and `--initial-cluster-token` its members start with.
    pub fn initial_cluster_and_token(&self) -> (&str, &str) {
        (&self.initial_cluster, &self.token)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Client URLs (`http://127.0.0.1:port`) of every member, running or not.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::client_url).collect()
    }

    /// `host:port` endpoints joined with commas, for etcdctl.
    pub fn etcdctl_endpoints(&self) -> String {
        self.members.iter().map(Member::endpoint).collect::<Vec<_>>().join(",")
    }

    pub fn id(&self, i: usize) -> u64 {
        self.ids[i]
    }

    pub fn index_of(&self, id: u64) -> Option<usize> {
        self.ids.iter().position(|&x| x == id)
    }

    /// Starts member `i` with the same flags and data directory as always.
    pub fn spawn(&mut self, i: usize) {
        let initial_cluster = self.initial_cluster.clone();
        self.spawn_args(i, &initial_cluster, "new", &[]);
    }

    pub fn start_all(&mut self) {
        for i in 0..self.members.len() {
            if !self.members[i].is_running() {
                self.spawn(i);
            }
        }
    }

    /// SIGKILL (what `Child::kill` sends on Unix), then reap.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends member `i`'s process a signal, as `kill` takes it (`-STOP`, `-CONT`). A `-STOP`
    /// returns once the process is stopped: delivery is asynchronous, and on a busy machine a
    /// member could otherwise still answer a message sent after the call.
    pub fn signal(&self, i: usize, signal: &str) {
        let pid = self.members[i].child.as_ref().expect("member running").id();
        let status = Command::new("kill").args([signal, &pid.to_string()]).status().expect("run kill");
        assert!(status.success(), "kill {signal} {pid}");
        if signal == "-STOP" {
            let stopped = || {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                // The state follows the parenthesized command name.
                stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('T'))
            };
            let deadline = Instant::now() + Duration::from_secs(5);
            while !stopped() {
                assert!(Instant::now() < deadline, "member {i} (pid {pid}) did not stop");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    pub fn stop_all(&mut self) {
        for i in 0..self.members.len() {
            self.kill9(i);
        }
    }

    /// Kills member `i` if it runs, then starts it again on the same data directory.
    pub fn restart(&mut self, i: usize) {
        self.kill9(i);
        self.spawn(i);
    }

    /// Panics if a member that should be running has exited.
    pub fn assert_running(&mut self) {
        for m in &mut self.members {
            if let Some(child) = &mut m.child {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("member {} exited unexpectedly ({status})", m.name);
                }
            }
        }
    }

    /// A channel to member `i`'s client URL (over TLS for https).
    pub fn channel(&self, i: usize) -> Channel {
        let endpoint = endpoint(&self.members[i].client_url());
        match &self.setup.tls {
            Some(tls) => endpoint.connect_with_connector_lazy(tls.clone()),
            None => endpoint.connect_lazy(),
        }
    }

    pub fn kv(&self, i: usize) -> KvClient<Channel> {
        KvClient::new(self.channel(i)).max_decoding_message_size(64 << 20)
    }

    pub fn maintenance(&self, i: usize) -> MaintenanceClient<Channel> {
        MaintenanceClient::new(self.channel(i))
    }

    /// Status of member `i`, or `None` if it does not answer within a second.
    pub async fn status(&self, i: usize) -> Option<StatusResponse> {
        if !self.members[i].is_running() {
            return None;
        }
        let mut client = self.maintenance(i);
        let mut req = tonic::Request::new(StatusRequest {});
        req.set_timeout(Duration::from_secs(1));
        match tokio::time::timeout(Duration::from_secs(2), client.status(req)).await {
            Ok(Ok(resp)) => Some(resp.into_inner()),
            _ => None,
        }
    }

    /// The leader id every running member agrees on, if they all agree on one.
    pub async fn agreed_leader(&self) -> Option<u64> {
        let mut leader = None;
        for i in 0..self.members.len() {
            if !self.members[i].is_running() {
                continue;
            }
            let l = self.status(i).await?.leader;
            if l == 0 || leader.is_some_and(|x| x != l) {
                return None;
            }
            leader = Some(l);
        }
        leader
    }

    /// Waits until every running member reports the same leader; returns its id.
    pub async fn wait_for_leader(&mut self) -> u64 {
        let deadline = Instant::now() + LEADER_TIMEOUT;
        loop {
            self.assert_running();
            if let Some(l) = self.agreed_leader().await {
                return l;
            }
            assert!(Instant::now() < deadline, "no leader agreed on by every running member within {LEADER_TIMEOUT:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Index of the current leader (waiting for one if need be).
    pub async fn leader(&mut self) -> usize {
        let id = self.wait_for_leader().await;
        self.index_of(id).unwrap_or_else(|| panic!("leader id {id:x} is not a member id ({:x?})", self.ids))
    }

    /// The last `LOG_TAIL_BYTES` of every member's log.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for m in &self.members {
            out.push_str(&format!("\n----- {} ({}) log tail -----\n", m.name, m.log_path.display()));
            out.push_str(&tail(&m.log_path, LOG_TAIL_BYTES));
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

// ----- Membership changes: members added after the start, removed members that stop. -----

impl Cluster {
    /// A slot for a member that is not part of the initial cluster: fresh ports, data directory
    /// and log, not started. Its id is 0 until `set_id` (from the MemberAdd response).
    pub fn new_member(&mut self, name: &str) -> usize {
        self.members.push(Member {
            name: name.to_string(),
            client_port: free_port(),
            peer_port: free_port(),
            zk_port: free_port(),
            data_dir: self.dir.path().join(name),
            log_path: self.dir.path().join(format!("{name}.log")),
            scheme: self.setup.scheme,
            child: None,
        });
        self.ids.push(0);
        self.members.len() - 1
    }

    pub fn set_id(&mut self, i: usize, id: u64) {
        self.ids[i] = id;
    }

    /// The `--initial-cluster` value naming exactly the members `which`.
    pub fn initial_cluster_of(&self, which: &[usize]) -> String {
        which
            .iter()
            .map(|&i| format!("{}={}", self.members[i].name, self.members[i].peer_url()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts member `i` with `--initial-cluster <initial_cluster> --initial-cluster-state
    /// <state>` (otherwise the flags `spawn` uses), e.g. a member just added by MemberAdd.
    pub fn spawn_with(&mut self, i: usize, initial_cluster: &str, state: &str) {
        self.spawn_args(i, initial_cluster, state, &[]);
    }

    /// `spawn_with` plus `extra` flags (e.g. `--snapshot-count`).
    pub fn spawn_args(&mut self, i: usize, initial_cluster: &str, state: &str, extra: &[&str]) {
        let m = &self.members[i];
        assert!(m.child.is_none(), "member {} is already running", m.name);
        let log = OpenOptions::new().create(true).append(true).open(&m.log_path).expect("open member log");
        let zk_url = format!("tcp://127.0.0.1:{}", m.zk_port);
        let zk_flags = if self.setup.zk { vec!["--listen-zk-urls", &zk_url] } else { Vec::new() };
        let child = Command::new(env!("CARGO_BIN_EXE_tally"))
            .arg("server")
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(["--listen-client-urls", &m.client_url()])
            .args(["--listen-peer-urls", &m.peer_url()])
            .args(["--initial-advertise-peer-urls", &m.peer_url()])
            .args(["--initial-cluster", initial_cluster])
            .args(["--initial-cluster-state", state])
            // Every test cluster has the same member names: a token of its own gives it its own
            // cluster id, so members of two clusters never talk to each other.
            .args(["--initial-cluster-token", &self.token])
            .args(["--heartbeat-interval", "30", "--election-timeout", "150"])
            .args(&self.setup.flags)
            .args(&zk_flags)
            .args(extra)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn tally server");
        self.members[i].child = Some(child);
    }

    /// Restarts every founding member (those of `--initial-cluster`) with `extra` flags added,
    /// e.g. a small `--snapshot-count`, and waits for a leader. (`spawn` and `restart` later
    /// start them with the usual flags again.)
    pub async fn restart_founders_with(&mut self, extra: &[&str]) {
        let founders = self.initial_cluster.split(',').count();
        for i in 0..founders {
            self.kill9(i);
        }
        let initial_cluster = self.initial_cluster.clone();
        for i in 0..founders {
            self.spawn_args(i, &initial_cluster, "new", extra);
        }
        self.wait_for_leader().await;
    }

    /// Snapshot files (`snap-*.snap`) anywhere under member `i`'s data directory.
    pub fn snapshot_files(&self, i: usize) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "snap") {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.members[i].data_dir, &mut out);
        out
    }

    /// Waits until member `i`'s process ends by itself (and reaps it); `None` if it still runs
    /// after `timeout` (or was not running).
    pub async fn wait_exit(&mut self, i: usize, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.members[i].child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.members[i].child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Bytes in member `i`'s log so far (to read only what a later run writes).
    pub fn log_len(&self, i: usize) -> u64 {
        std::fs::metadata(&self.members[i].log_path).map(|m| m.len()).unwrap_or(0)
    }

    /// Member `i`'s log from byte `offset` on.
    pub fn log_since(&self, i: usize, offset: u64) -> String {
        let Ok(mut f) = File::open(&self.members[i].log_path) else { return String::new() };
        let _ = f.seek(SeekFrom::Start(offset));
        let mut buf = Vec::new();
        let _ = f.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }

    pub fn cluster_client(&self, i: usize) -> tally_proto::etcdserverpb::cluster_client::ClusterClient<Channel> {
        tally_proto::etcdserverpb::cluster_client::ClusterClient::new(self.channel(i))
    }
}

/// Runs a client suite's script (`tests/<lang>/run.sh`, relative to the repository) with this
/// build's `tally` binary; the test fails if the script does. Its output is the test's.
pub fn run_client_suite(script: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = root.join(script);
    assert!(path.is_file(), "{} is missing", path.display());
    let status = Command::new("bash")
        .arg(&path)
        .arg(env!("CARGO_BIN_EXE_tally"))
        .current_dir(&root)
        .status()
        .unwrap_or_else(|e| panic!("running {}: {e}", path.display()));
    assert!(status.success(), "{script} failed ({status}); its output is above");
}

/// GET `path` from `endpoint` (host:port) over plain HTTP/1.1: (status code, body).
pub fn http_get(endpoint: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(endpoint).expect("connect");
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("send request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read response");
    let code = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// A counter's value in a member's `/metrics` (0 if absent).
pub fn metric(endpoint: &str, name: &str) -> u64 {
    let (_, body) = http_get(endpoint, "/metrics");
    body.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse::<f64>().ok())).map_or(0, |v| v as u64)
}
