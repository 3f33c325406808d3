//! The space quota and alarms, as etcd has them: a write that would take the store past
//! `--quota-backend-bytes` raises NOSPACE on every member and is refused with etcd's error;
//! reads, deletes and compaction go on; `/health` reports the alarm (unless excluded); the alarm
//! survives restarts; after space is freed, `etcdctl alarm disarm` lets writes in again.

mod support;

use support::etcdctl::Etcdctl;
use support::{http_get, Cluster};

const QUOTA: &str = "200000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nospace_refuses_writes_until_space_is_freed_and_the_alarm_disarmed() {
    let mut cluster = Cluster::start(3).await;
    cluster.restart_founders_with(&["--quota-backend-bytes", QUOTA]).await;
    let ctl = Etcdctl::new(cluster.etcdctl_endpoints());
    let value = "x".repeat(30_000);
    let mut refused = None;
    for i in 0..20 {
        let out = ctl.run(&["put", &format!("big/{i}"), &value]);
        if !out.status.success() {
            refused = Some(String::from_utf8_lossy(&out.stderr).into_owned());
            break;
        }
    }
    let refused = refused.expect("a put past the quota is refused");
    assert!(refused.contains("etcdserver: mvcc: database space exceeded"), "{refused}");

    // Raised through the log: every member lists it and refuses even a small put.
    for m in &cluster.members {
        let alarms = Etcdctl::new(m.endpoint()).ok(&["alarm", "list"]);
        assert!(alarms.contains("alarm:NOSPACE"), "{} lists {alarms:?}", m.name);
        let out = Etcdctl::new(m.endpoint()).run(&["put", "small", "v"]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("database space exceeded"));
    }
    assert!(ctl.ok(&["get", "big/0", "--print-value-only"]).starts_with("xxx"), "reads go on");
    for i in 0..3 {
        let log = cluster.log_since(i, 0);
        assert!(log.contains("alarm raised") && log.contains("NOSPACE"), "member {i} logs the alarm");
    }
    let endpoint = cluster.members[0].endpoint();
    assert_eq!(http_get(&endpoint, "/health"), (503, "{\"health\":\"false\",\"reason\":\"ALARM NOSPACE\"}\n".into()));
    assert_eq!(http_get(&endpoint, "/health?exclude=NOSPACE").0, 200);
    // etcdctl's own health check (the reference 3.5) reads the alarms too.
    let health = std::process::Command::new(support::reference_etcd::etcd_bin_dir().join("etcdctl"))
        .args([&format!("--endpoints={endpoint}"), "endpoint", "health"])
        .output()
        .expect("run etcdctl endpoint health");
    let said = String::from_utf8_lossy(&health.stdout).to_string() + &String::from_utf8_lossy(&health.stderr);
    assert!(!health.status.success() && said.contains("Active Alarm(s): NOSPACE"), "{said}");

    // The alarm is state, not memory: it survives a full restart.
    cluster.restart_founders_with(&["--quota-backend-bytes", QUOTA]).await;
    assert!(ctl.ok(&["alarm", "list"]).contains("alarm:NOSPACE"));

    // Free space (delete and compact), disarm, write again.
    ctl.ok(&["del", "big/", "--prefix"]);
    let rev = ctl.json(&["get", "nothing", "-w", "json"])["header"]["revision"].as_i64().unwrap();
    ctl.ok(&["compaction", &rev.to_string()]);
    let disarmed = ctl.ok(&["alarm", "disarm"]);
    assert!(disarmed.contains("alarm:NOSPACE"), "{disarmed}");
    assert_eq!(ctl.ok(&["alarm", "list"]).trim(), "");
    ctl.ok(&["put", "small", "v"]);
    assert_eq!(http_get(&endpoint, "/health").0, 200);
    support::reference_etcd::ctl(&endpoint, &["endpoint", "health"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_request_bytes_bounds_a_request_as_etcd_does() {
    let mut cluster = Cluster::start(3).await;
    cluster.restart_founders_with(&["--max-request-bytes", "1000"]).await;
    let ctl = Etcdctl::new(cluster.etcdctl_endpoints());
    ctl.ok(&["put", "small", &"x".repeat(500)]);
    let out = ctl.run(&["put", "large", &"x".repeat(2000)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("etcdserver: request is too large"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_txn_ops_bounds_a_txn_as_etcd_does() {
    let mut cluster = Cluster::start(3).await;
    let ctl = Etcdctl::new(cluster.etcdctl_endpoints());
    let puts: String = (0..150).map(|i| format!("put t{i} v\n")).collect();
    let txn = format!("\n{puts}\n\n");
    let out = ctl.run_with(&["txn"], &txn);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("etcdserver: too many operations in txn request"), "{err}");
    cluster.restart_founders_with(&["--max-txn-ops", "200"]).await;
    let ctl = Etcdctl::new(cluster.etcdctl_endpoints());
    assert!(ctl.ok_with(&["txn"], &txn).starts_with("SUCCESS"));
    assert_eq!(ctl.ok(&["get", "t149", "--print-value-only"]).trim(), "v");
}
