//! The reference etcd (the newest 3.5.x, built by `scripts/etcd-ref`) and its etcdctl, for tests
//! that ask it and Tally the same questions.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{eventually, free_port};

/// The reference etcd's bin directory (etcd and etcdctl), built once by `scripts/etcd-ref`.
pub fn etcd_bin_dir() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/etcd-ref");
    let out = Command::new(&script).arg("3.5").stderr(Stdio::inherit()).output().expect("run scripts/etcd-ref");
    assert!(out.status.success(), "scripts/etcd-ref 3.5 failed: it needs Go and the module proxy");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// etcdctl (the reference one) against `endpoints`, whatever its outcome.
pub fn ctl_output(endpoints: &str, args: &[&str]) -> std::process::Output {
    Command::new(etcd_bin_dir().join("etcdctl"))
        .arg(format!("--endpoints={endpoints}"))
        .args(["--dial-timeout=3s", "--command-timeout=10s"])
        .args(args)
        .output()
        .expect("run etcdctl")
}

/// etcdctl (the reference one) against `endpoints`; panics with its stderr if it fails.
pub fn ctl(endpoints: &str, args: &[&str]) -> String {
    let out = ctl_output(endpoints, args);
    assert!(out.status.success(), "etcdctl {args:?} at {endpoints}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `Error:` line(s) of an etcdctl call that must fail.
pub fn ctl_refused(endpoints: &str, args: &[&str]) -> String {
    let out = ctl_output(endpoints, args);
    assert!(!out.status.success(), "etcdctl {args:?} at {endpoints} was allowed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr.lines().filter(|l| l.starts_with("Error:")).collect::<Vec<_>>().join("\n")
}

/// etcdctl's credentials of the users `enable_auth_with_alice` creates.
pub const ROOT: &str = "--user=root:root-pw";
pub const ALICE: &str = "--user=alice:alice-pw";

/// Through the member at `endpoint` (etcd or Tally): root, and alice whose role may read and
/// write under `a/` only; then auth on.
pub fn enable_auth_with_alice(endpoint: &str) {
    for args in [
        &["user", "add", "root:root-pw"][..],
        &["user", "add", "alice:alice-pw"],
        &["role", "add", "dev"],
        &["role", "grant-permission", "dev", "--prefix", "readwrite", "a/"],
        &["user", "grant-role", "alice", "dev"],
        &["auth", "enable"],
    ] {
        ctl(endpoint, args);
    }
}

/// A real etcd member on free ports, killed when dropped.
pub struct Etcd {
    child: Child,
    pub endpoint: String,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn start_etcd(dir: &Path) -> Etcd {
    let (client, peer) = (free_port(), free_port());
    let log = std::fs::File::create(dir.join("etcd.log")).unwrap();
    let child = Command::new(etcd_bin_dir().join("etcd"))
        .arg("--data-dir")
        .arg(dir.join("etcd"))
        .args(["--listen-client-urls", &format!("http://127.0.0.1:{client}")])
        .args(["--advertise-client-urls", &format!("http://127.0.0.1:{client}")])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args(["--initial-cluster", &format!("default=http://127.0.0.1:{peer}")])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start etcd");
    let etcd = Etcd { child, endpoint: format!("127.0.0.1:{client}") };
    eventually(Duration::from_secs(20), "etcd answers", || {
        let endpoint = etcd.endpoint.clone();
        async move {
            let ok = Command::new(etcd_bin_dir().join("etcdctl"))
                .args([&format!("--endpoints={endpoint}"), "endpoint", "health"])
                .output()
                .is_ok_and(|o| o.status.success());
            ok.then_some(())
        }
    })
    .await;
    etcd
}
