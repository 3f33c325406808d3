//! The `etcd3` Python client with user and password (`tests/python/test_auth_etcd3.py`) against
//! etcd 3.5.35 and/or a 3-member Tally cluster, both with `--auth-token simple --bcrypt-cost 4`:
//!
//! ```sh
//! TALLY_AUTH_TARGET=etcd cargo test -p tally --test auth_python    # etcd only
//! TALLY_AUTH_TARGET=tally cargo test -p tally --test auth_python   # Tally only
//! cargo test -p tally --test auth_python                           # both (the default)
//! ```
//!
//! Installs etcd3, protobuf<4 and pytest with pip when missing (as `tests/python/run.sh`
//! does); fails, never skips, when Python or pip is missing.

#[allow(dead_code)]
#[path = "differential/procs.rs"]
mod procs;

use std::path::Path;
use std::process::Command;

const FLAGS: &[&str] = &["--auth-token", "simple", "--bcrypt-cost", "4"];

fn ensure_python_deps() {
    let check = "import etcd3, pytest, google.protobuf as p; assert int(p.__version__.split('.')[0]) < 4";
    if Command::new("python3").args(["-c", check]).status().is_ok_and(|s| s.success()) {
        return;
    }
    let status = Command::new("python3")
        .args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "etcd3", "protobuf<4", "pytest"])
        .status()
        .expect("python3 is needed for the etcd3 client test");
    assert!(status.success(), "pip could not install etcd3 'protobuf<4' pytest");
}

fn pytest(endpoint: &str) -> bool {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python");
    Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"])
        .args(["-W", "ignore::pytest.PytestUnhandledThreadExceptionWarning", "test_auth_etcd3.py"])
        .env("TALLY_ENDPOINTS", endpoint)
        .current_dir(dir)
        .status()
        .expect("run pytest")
        .success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd3_python_client_with_user() {
    ensure_python_deps();
    let targets = match std::env::var("TALLY_AUTH_TARGET").as_deref() {
        Ok("etcd") => vec!["etcd"],
        Ok("tally") => vec!["tally"],
        Ok("both") | Err(_) => vec!["etcd", "tally"],
        Ok(other) => panic!("TALLY_AUTH_TARGET={other}: expected etcd, tally or both"),
    };
    let mut failed = Vec::new();
    for kind in targets {
        let host = |url: &str| url.trim_start_matches("http://").to_string();
        let ok = if kind == "etcd" {
            let e = procs::Etcd::start_with(FLAGS).await;
            pytest(&host(&e.url))
        } else {
            let t = procs::Tally::start_with(3, FLAGS).await;
            pytest(&host(&t.url))
        };
        if !ok {
            failed.push(kind);
        }
    }
    assert!(failed.is_empty(), "test_auth_etcd3.py failed against {failed:?}; pytest's output is above");
}
