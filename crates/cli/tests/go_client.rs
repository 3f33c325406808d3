//! The official etcd Go client (`go.etcd.io/etcd/client/v3`) against Tally: runs
//! `tests/go/run.sh` with this build's `tally` binary. The script builds the reference etcd 3.5
//! (`scripts/etcd-ref`), runs the Go tests in `tests/go` once against a 3-member etcd cluster and
//! once against a 3-member Tally cluster, and fails if any test fails against either. It fails,
//! it does not skip, when Go is missing.

mod support;

use std::process::Command;

#[test]
fn go_etcd_client() {
    let go_ok = Command::new("go").arg("version").output().is_ok_and(|o| o.status.success());
    assert!(go_ok, "go is not available: the Go client test needs Go (see tests/go/go.mod for the version)");
    support::run_client_suite("tests/go/run.sh");
}
