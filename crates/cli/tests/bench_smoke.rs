//! Smoke test of `tally bench`: a 3-member cluster of real `tally server` processes, then
//! `tally bench --json` runs of `put`, `range` and `txn-put`, whose reports must count every
//! request as a success and carry sane latency fields, and a run with one endpoint dead, whose
//! requests must count as errors. Nothing here depends on timing.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tally_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use tally_proto::etcdserverpb::StatusRequest;

const TALLY: &str = env!("CARGO_BIN_EXE_tally");

/// Kills every member when dropped, also when the test panics.
struct Members(Vec<Child>);

impl Drop for Members {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[path = "support/ports.rs"]
mod ports;
use ports::free_port;

fn start_cluster(dir: &Path) -> (Members, Vec<String>) {
    let client: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let peer: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let initial: Vec<String> = (0..3).map(|i| format!("n{}=http://127.0.0.1:{}", i + 1, peer[i])).collect();
    let mut members = Members(Vec::new());
    for i in 0..3 {
        let log = File::create(dir.join(format!("n{}.log", i + 1))).expect("log file");
        let child = Command::new(TALLY)
            .arg("server")
            .args(["--name", &format!("n{}", i + 1)])
            .arg("--data-dir")
            .arg(dir.join(format!("n{}", i + 1)))
            .args(["--listen-client-urls", &format!("http://127.0.0.1:{}", client[i])])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{}", peer[i])])
            .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{}", peer[i])])
            .args(["--initial-cluster", &initial.join(",")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start tally server");
        members.0.push(child);
    }
    (members, client.iter().map(|p| format!("127.0.0.1:{p}")).collect())
}

/// Waits until every member answers Status and all of them name the same leader.
fn wait_for_leader(endpoints: &[String], dir: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let deadline = Instant::now() + Duration::from_secs(60);
    rt.block_on(async {
        loop {
            let mut leaders = Vec::new();
            for ep in endpoints {
                let status = async {
                    let mut client = MaintenanceClient::connect(format!("http://{ep}")).await.ok()?;
                    client.status(StatusRequest {}).await.ok().map(|r| r.into_inner().leader)
                };
                leaders.push(tokio::time::timeout(Duration::from_secs(2), status).await.ok().flatten());
            }
            if let Some(Some(first)) = leaders.first() {
                if *first != 0 && leaders.iter().all(|l| *l == Some(*first)) {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "no leader within 60 s; member logs in {}", dir.display());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

fn bench(endpoints: &[String], workload: &[&str]) -> Value {
    let out = Command::new(TALLY)
        .args(["bench", "--json", "--no-progress", "--total", "300", "--clients", "4", "--conns", "3"])
        .args(["--threads", "2"])
        .args(["--endpoints", &endpoints.join(",")])
        .args(workload)
        .stdin(Stdio::null())
        .output()
        .expect("run tally bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tally bench {workload:?} failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"))
}

fn number(v: &Value, field: &str) -> f64 {
    v[field].as_f64().unwrap_or_else(|| panic!("{field} is not a number in {v}"))
}

fn check_report(report: &Value, workload: &str) {
    assert_eq!(report["workload"], workload, "{report}");
    assert_eq!(report["successes"], 300, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert!(number(report, "throughput") > 0.0, "{report}");
    assert!(number(report, "elapsed_s") > 0.0, "{report}");
    let lat = &report["latency_ms"];
    let (min, p50, p90, p99, p999, max) = (
        number(lat, "min"),
        number(lat, "p50"),
        number(lat, "p90"),
        number(lat, "p99"),
        number(lat, "p999"),
        number(lat, "max"),
    );
    let mean = number(lat, "mean");
    assert!(min > 0.0, "{report}");
    assert!(min <= p50 && p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max, "{report}");
    assert!(min <= mean && mean <= max, "{report}");
    // Generous: the per-request timeout is 10 s, so no recorded latency can be far beyond it.
    assert!(max < 60_000.0, "{report}");
    assert_eq!(report["params"]["clients"], 4, "{report}");
    assert_eq!(report["params"]["total"], 300, "{report}");
    assert_eq!(report["params"]["threads"], 2, "{report}");
}

#[test]
fn bench_put_and_range_against_a_three_member_cluster() {
    let dir = tempfile::Builder::new().prefix("tally-bench-smoke-").tempdir().expect("temp dir");
    let (_members, endpoints) = start_cluster(dir.path());
    wait_for_leader(&endpoints, dir.path());

    let put = bench(&endpoints, &["put", "--key-space", "50"]);
    check_report(&put, "put");
    assert_eq!(put["ops"]["put"]["successes"], 300, "{put}");

    // Reads of the keys just written (random keys out of the same 50), linearizable...
    let range = bench(&endpoints, &["range", "--key-space", "50"]);
    check_report(&range, "range");
    assert_eq!(range["params"]["serializable"], false, "{range}");

    // ... and of a fixed key, serializable.
    let serializable = bench(&endpoints, &["range", "--serializable"]);
    check_report(&serializable, "range");
    assert_eq!(serializable["params"]["serializable"], true, "{serializable}");

    // Open loop: request i is due at i / rate, so 300 requests at 2,000/s cannot finish before
    // the last one is due, 149.5 ms after the start.
    let paced = bench(&endpoints, &["--rate", "2000", "range", "--key-space", "50"]);
    check_report(&paced, "range");
    assert_eq!(paced["params"]["rate"], 2000.0, "{paced}");
    assert!(number(&paced, "elapsed_s") >= 0.1495, "{paced}");
    assert!(number(&paced, "throughput") <= 2000.0 * 300.0 / 299.0, "{paced}");

    // Compare-and-swap transactions: each client's own key, every one a success or a
    // failed compare (read back), never an error.
    let txn = bench(&endpoints, &["txn-put"]);
    assert_eq!(txn["errors"], 0, "{txn}");
    let (succeeded, failed) = (&txn["ops"]["txn-succeeded"]["successes"], &txn["ops"]["txn-failed"]["successes"]);
    assert_eq!(succeeded.as_u64().unwrap_or(0) + failed.as_u64().unwrap_or(0), 300, "{txn}");
    assert!(succeeded.as_u64().unwrap_or(0) > 0, "{txn}");
}

#[test]
fn requests_to_an_endpoint_that_does_not_answer_count_as_errors() {
    let dir = tempfile::Builder::new().prefix("tally-bench-smoke-").tempdir().expect("temp dir");
    let (_members, mut endpoints) = start_cluster(dir.path());
    wait_for_leader(&endpoints, dir.path());
    // A fourth endpoint nobody listens on: the third connection goes there. Its clients wait
    // between redials instead of spending the run's requests at once.
    endpoints.push(format!("127.0.0.1:{}", free_port()));
    let out = Command::new(TALLY)
        .args(["bench", "--json", "--no-progress", "--total", "400", "--clients", "4", "--conns", "4"])
        .args(["--endpoints", &endpoints.join(",")])
        .args(["put", "--key-space", "50"])
        .stdin(Stdio::null())
        .output()
        .expect("run tally bench");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"), "the dead endpoint is reported");
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let (ok, errors) = (report["successes"].as_u64().unwrap(), report["errors"].as_u64().unwrap());
    assert_eq!(ok + errors, 400, "{report}");
    assert!(errors > 0 && report["error_codes"]["Unavailable"] == errors, "{report}");
    assert!(ok > 0, "the live endpoints' clients still succeed: {report}");
}
