//! One real etcd 3.5 member on loopback, driven through etcdctl. The process is killed when
//! the `Etcd` is dropped, also while a test panics; a failing test gets the end of its log.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::ports::free_port;

const LOG_TAIL_BYTES: u64 = 6000;

/// The directory holding etcd and etcdctl, as `scripts/etcd-ref 3.5` builds (or finds) them.
fn etcd_bin_dir() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/etcd-ref");
    let out = Command::new(&script)
        .arg("3.5")
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(out.status.success(), "{} 3.5 failed ({}): it needs Go and the module proxy", script.display(), out.status);
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

pub struct Etcd {
    child: Child,
    bin: PathBuf,
    endpoint: String,
    log: PathBuf,
    pub dir: TempDir,
}

impl Etcd {
    /// Starts a single-member cluster in a fresh data directory and waits until it serves.
    pub fn start() -> Etcd {
        let bin = etcd_bin_dir();
        let dir = tempfile::Builder::new().prefix("tally-etcd-snapshot-").tempdir().expect("temp dir");
        let (client, peer) = (format!("http://127.0.0.1:{}", free_port()), format!("http://127.0.0.1:{}", free_port()));
        let log = dir.path().join("etcd.log");
        let child = Command::new(bin.join("etcd"))
            .args(["--name", "snap0", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("snap0={peer}"), "--initial-cluster-state", "new"])
            .args(["--unsafe-no-fsync", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("etcd log file"))
            .spawn()
            .expect("start etcd");
        let endpoint = client.trim_start_matches("http://").to_string();
        let etcd = Etcd { child, bin, endpoint, log, dir };
        etcd.wait_healthy();
        etcd
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.run(&["endpoint", "health"], None).status.success() {
            assert!(Instant::now() < deadline, "etcd did not become healthy in 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs etcdctl, feeding it `stdin` if given, and returns its output, whatever its status.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(self.bin.join("etcdctl"))
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint))
            .args(["--dial-timeout=3s", "--command-timeout=30s"])
            .args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run etcdctl");
        if let Some(input) = stdin {
            child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write etcdctl stdin");
        }
        child.wait_with_output().expect("etcdctl output")
    }

    /// Runs etcdctl and returns its stdout, failing the test if it fails.
    pub fn ctl_with(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "etcdctl {args:?} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    pub fn ctl(&self, args: &[&str]) -> String {
        self.ctl_with(args, None)
    }

    /// Runs etcdctl with `-w json` and parses what it prints.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.ctl(&[args, &["-w", "json"]].concat());
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("etcdctl {args:?} printed no JSON ({e}): {out}"))
    }

    /// Saves a snapshot into the data directory's parent and returns its path.
    pub fn save_snapshot(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        self.ctl(&["snapshot", "save", path.to_str().expect("utf-8 temp path")]);
        path
    }

    /// Kills etcd; its data directory stays until the `Etcd` is dropped.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The member's own bbolt file: a snapshot without the SHA-256 trailer.
    pub fn member_db(&self) -> PathBuf {
        self.dir.path().join("data/member/snap/db")
    }

    fn log_tail(&self) -> String {
        let Ok(mut f) = std::fs::File::open(&self.log) else { return "(no log)".into() };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)));
        let mut buf = Vec::new();
        let _ = f.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- end of etcd's log ---\n{}", self.log_tail());
        }
    }
}
