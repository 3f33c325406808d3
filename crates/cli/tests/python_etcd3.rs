//! The `etcd3` Python client against a Tally cluster: runs `tests/python/run.sh` with this
//! build's `tally` binary. The script installs what it needs with pip (etcd3, protobuf<4,
//! pytest), starts a 3-member cluster, runs pytest and stops the cluster. It fails, it does not
//! skip, when Python or pip is missing.

mod support;

use std::process::Command;

#[test]
fn etcd3_python_client() {
    let python_ok = Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(python_ok, "python3 is not available: the etcd3 client test needs Python 3 with pip");
    let pip_ok = Command::new("python3").args(["-m", "pip", "--version"]).output().is_ok_and(|o| o.status.success());
    assert!(pip_ok, "pip is not available (python3 -m pip): the etcd3 client test installs etcd3 with it");
    support::run_client_suite("tests/python/run.sh");
}
