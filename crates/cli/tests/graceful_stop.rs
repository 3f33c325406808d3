//! `tally server` on SIGTERM stops as etcd does: a leader first hands leadership to a caught-up
//! voter, writes in flight are answered, and the process exits 0.

mod support;

use std::time::Duration;

use support::{eventually, Cluster};
use tally_proto::etcdserverpb::PutRequest;

async fn put(cluster: &Cluster, i: usize, key: &str) -> bool {
    let req = PutRequest { key: key.into(), value: b"v".to_vec(), ..Default::default() };
    cluster.kv(i).put(req).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_the_leader_hands_over_and_exits_0() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let old_id = cluster.id(leader);
    let survivor = (leader + 1) % 3;
    assert!(put(&cluster, survivor, "before").await, "{}", cluster.logs());

    cluster.signal(leader, "-TERM");
    let status = cluster.wait_exit(leader, Duration::from_secs(10)).await;
    assert!(status.is_some_and(|s| s.success()), "exit status {status:?}{}", cluster.logs());
    let log = cluster.log_since(leader, 0);
    assert!(log.contains("handed leadership over"), "the leader handed over before stopping:{}", cluster.logs());

    let new_leader = cluster.wait_for_leader().await;
    assert_ne!(new_leader, old_id);
    eventually(Duration::from_secs(10), "a write after the stop", || async {
        put(&cluster, survivor, "after").await.then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_a_follower_exits_0_and_the_leader_stays() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let leader_id = cluster.id(leader);
    let follower = (leader + 1) % 3;
    cluster.signal(follower, "-TERM");
    let status = cluster.wait_exit(follower, Duration::from_secs(10)).await;
    assert!(status.is_some_and(|s| s.success()), "exit status {status:?}{}", cluster.logs());
    assert!(!cluster.log_since(follower, 0).contains("handed leadership"));
    assert_eq!(cluster.wait_for_leader().await, leader_id);
    assert!(put(&cluster, leader, "k").await);
}
