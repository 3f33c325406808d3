//! The official etcd Go client (`go.etcd.io/etcd/client/v3`) against Tally: runs
//! `tests/go/run.sh` with this build's `tally` binary. The script builds the reference etcd 3.5
//! (`scripts/etcd-ref`), runs the Go tests in `tests/go` once against a 3-member etcd cluster and
//! once against a 3-member Tally cluster, and fails if any test fails against either. It fails,
//! it does not skip, when Go is missing.

use std::path::Path;
use std::process::Command;

#[test]
fn go_etcd_client() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join("tests/go/run.sh");
    assert!(script.is_file(), "{} is missing", script.display());
    let go_ok = Command::new("go").arg("version").output().is_ok_and(|o| o.status.success());
    assert!(go_ok, "go is not available: the Go client test needs Go (see tests/go/go.mod for the version)");
    let status = Command::new("bash")
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_tally"))
        .current_dir(&root)
        .status()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(status.success(), "tests/go/run.sh failed ({status}); its output is above");
}
