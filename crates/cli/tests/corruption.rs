//! etcd's corruption check: with `--experimental-corrupt-check-time`, the leader compares every
//! member's HashKV with its own, and a member whose data differs gets the CORRUPT alarm, after
//! which the cluster refuses writes and `/readyz` fails. The divergent member is made the way
//! a disk or a bug would leave it: its data directory restored from a state that differs from
//! the others' in one value, at the same revisions and log index.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::etcdctl::Etcdctl;
use support::{eventually, http_get, Cluster};
use tally_mvcc::{ImportedChange, ImportedHistory, StateMachine};
use tally_server::node::backup;

/// A backup file of a store holding `a` and `b` (at revisions 2 and 3) with `b`'s value given.
fn backup_with(path: &Path, b_value: &str) {
    let change = |key: &str, main, value: &str| ImportedChange {
        key: key.into(),
        main,
        sub: 0,
        create_revision: main,
        version: 1,
        lease: 0,
        value: Some(value.into()),
    };
    let history = ImportedHistory {
        changes: vec![change("a", 2, "1"), change("b", 3, b_value)],
        leases: vec![],
        current_revision: 3,
        ..Default::default()
    };
    let sm = StateMachine::import(history, 1).expect("import");
    std::fs::write(path, backup::encode(&sm.copy_for_snapshot())).expect("write backup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_data_differs_gets_the_corrupt_alarm() {
    let mut cluster = Cluster::start(3).await;
    let corrupted = 2;
    let corrupted_id = cluster.id(corrupted);
    cluster.stop_all();
    let (good, bad) = (cluster.dir().join("good.db"), cluster.dir().join("bad.db"));
    backup_with(&good, "2");
    backup_with(&bad, "not 2");
    let (initial_cluster, token) = cluster.initial_cluster_and_token();
    let (initial_cluster, token) = (initial_cluster.to_string(), token.to_string());
    for (i, m) in cluster.members.iter().enumerate() {
        std::fs::remove_dir_all(&m.data_dir).expect("remove data dir");
        let file = if i == corrupted { &bad } else { &good };
        let out = Command::new(env!("CARGO_BIN_EXE_tally"))
            .args(["snapshot", "restore", file.to_str().unwrap(), "--name", &m.name])
            .args(["--initial-cluster", &initial_cluster, "--initial-cluster-token", &token])
            .arg("--data-dir")
            .arg(&m.data_dir)
            .output()
            .expect("run tally snapshot restore");
        assert!(out.status.success(), "{out:?}");
    }
    // The healthy two elect a leader first, so that the check runs from a member with good data.
    let check = ["--experimental-corrupt-check-time", "500ms"];
    for i in 0..3 {
        cluster.spawn_args(i, &initial_cluster, "new", &check);
        if i == 1 {
            cluster.wait_for_leader().await;
        }
    }
    cluster.wait_for_leader().await;

    let ctl = Etcdctl::new(cluster.etcdctl_endpoints());
    let want = format!("memberID:{corrupted_id} alarm:CORRUPT");
    eventually(Duration::from_secs(15), "the CORRUPT alarm for the divergent member", || {
        let raised = ctl.ok(&["alarm", "list"]).contains(&want);
        async move { raised.then_some(()) }
    })
    .await;
    assert!(!ctl.ok(&["alarm", "list"]).contains(&format!("memberID:{} ", cluster.id(0))), "only the divergent one");
    let refused = ctl.run(&["put", "c", "3"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("etcdserver: corrupt cluster"), "{refused:?}");
    let (code, body) = http_get(&cluster.members[0].endpoint(), "/readyz");
    assert_eq!(code, 503);
    assert!(body.contains("[-]data_corruption failed: alarm activated: CORRUPT"), "{body}");
}
