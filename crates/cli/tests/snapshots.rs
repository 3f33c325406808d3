//! A member's own snapshots: taken in the background while writes go on, the log compacted
//! behind them, and what a member restarts from after kill -9.

mod support;

use std::time::Duration;

use support::{eventually, Cluster};
use tally_proto::etcdserverpb::{PutRequest, RangeRequest};

const KEYS_BEFORE: usize = 1000;
const KEYS_AFTER: usize = 100;

fn key(i: usize) -> Vec<u8> {
    format!("snap/{i:05}").into_bytes()
}

async fn put_keys(cluster: &Cluster, at: usize, keys: std::ops::Range<usize>) {
    let mut tasks = Vec::new();
    for chunk in keys.collect::<Vec<_>>().chunks(100) {
        let (mut kv, chunk) = (cluster.kv(at), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            for i in chunk {
                let put = PutRequest { key: key(i), value: format!("v{i}").into_bytes(), ..Default::default() };
                kv.put(put).await.unwrap_or_else(|e| panic!("put {i}: {e}"));
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
}

async fn local_count(cluster: &Cluster, i: usize) -> Option<i64> {
    let req = RangeRequest {
        key: b"snap/".to_vec(),
        range_end: b"snap0".to_vec(),
        count_only: true,
        serializable: true,
        ..Default::default()
    };
    cluster.kv(i).range(req).await.ok().map(|r| r.into_inner().count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_restarts_from_its_own_snapshot_and_compacted_log() {
    let mut cluster = Cluster::start(3).await;
    cluster.restart_founders_with(&["--snapshot-count", "300"]).await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    put_keys(&cluster, leader, 0..KEYS_BEFORE).await;

    // Every member snapshotted (on its background thread) and adopted the file.
    eventually(Duration::from_secs(10), "a snapshot written by every member", || {
        let cluster = &cluster;
        async move {
            (0..3)
                .all(|i| !cluster.snapshot_files(i).is_empty() && cluster.log_since(i, 0).contains("snapshot written"))
                .then_some(())
        }
    })
    .await;

    cluster.kill9(follower);
    put_keys(&cluster, leader, KEYS_BEFORE..KEYS_BEFORE + KEYS_AFTER).await;
    cluster.spawn(follower);
    let total = (KEYS_BEFORE + KEYS_AFTER) as i64;
    eventually(Duration::from_secs(15), "the restarted follower holds every key", || {
        let cluster = &cluster;
        async move { (local_count(cluster, follower).await == Some(total)).then_some(()) }
    })
    .await;
    let log = cluster.log_since(follower, 0);
    assert!(!log.contains("received a snapshot"), "it restarted from its own snapshot, not the leader's:\n{log}");
    let got = cluster
        .kv(follower)
        .range(RangeRequest { key: key(500), serializable: true, ..Default::default() })
        .await
        .expect("range")
        .into_inner();
    assert_eq!(got.kvs[0].value, b"v500");
    cluster.assert_running();
}
