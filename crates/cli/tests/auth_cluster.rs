//! Auth state as replicated state: users, roles and permissions the same on every member, after
//! a kill -9 of every member (restored from snapshots and the log) and on a member added later;
//! every member refuses what the user may not do, reads (checked on the member itself) and
//! writes (checked at apply) alike.

mod support;

use std::time::Duration;

use support::reference_etcd::{
    ctl as ok, ctl_output as etcdctl, ctl_refused as refused, enable_auth_with_alice, ALICE, ROOT,
};
use support::{eventually, Cluster};

const FLAGS: [&str; 4] = ["--bcrypt-cost", "4", "--snapshot-count", "20"];

/// alice may read and write under a/ and nothing else, on member `endpoint` by itself.
fn assert_alice_confined(endpoint: &str, tag: &str) {
    let key = format!("a/{tag}");
    ok(endpoint, &[ALICE, "put", &key, "v"]);
    assert_eq!(refused(endpoint, &[ALICE, "put", &format!("b/{tag}"), "v"]), "Error: etcdserver: permission denied");
    assert_eq!(
        refused(endpoint, &[ALICE, "get", "--consistency=s", "b/", "--prefix"]),
        "Error: etcdserver: permission denied"
    );
    assert!(ok(endpoint, &[ALICE, "get", "--consistency=s", &key]).contains(&key));
    assert_eq!(refused(endpoint, &["get", "--consistency=s", &key]), "Error: etcdserver: user name is empty");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_member_enforces_the_same_auth_state_across_restarts_and_new_members() {
    let mut cluster = Cluster::start(3).await;
    cluster.restart_founders_with(&FLAGS).await;
    let first = cluster.members[0].endpoint();
    enable_auth_with_alice(&first);
    for i in 0..3 {
        assert_alice_confined(&cluster.members[i].endpoint(), &format!("first-{i}"));
    }
    // Past several snapshots, then every member killed and started again from its disk.
    for n in 0..60 {
        ok(&first, &[ALICE, "put", &format!("a/fill-{n:02}"), "x"]);
    }
    assert!(!cluster.snapshot_files(0).is_empty(), "no snapshot was taken");
    // (Not `restart_founders_with`: it waits for a leader through Status, which needs a user now.)
    let initial_cluster = cluster.initial_cluster_of(&[0, 1, 2]);
    for i in 0..3 {
        cluster.kill9(i);
    }
    for i in 0..3 {
        cluster.spawn_args(i, &initial_cluster, "new", &FLAGS);
    }
    eventually(Duration::from_secs(30), "a leader after the restart", || {
        std::future::ready(etcdctl(&first, &[ROOT, "put", "after-restart", "x"]).status.success().then_some(()))
    })
    .await;
    for i in 0..3 {
        let endpoint = cluster.members[i].endpoint();
        assert!(ok(&endpoint, &[ROOT, "auth", "status"]).contains("Authentication Status: true"));
        assert_alice_confined(&endpoint, &format!("restarted-{i}"));
    }

    // A member added now learns users and roles from the others.
    let slot = cluster.new_member("n4");
    let peer_url = cluster.members[slot].peer_url();
    ok(&first, &[ROOT, "member", "add", "n4", &format!("--peer-urls={peer_url}")]);
    let initial_cluster = cluster.initial_cluster_of(&[0, 1, 2, slot]);
    cluster.spawn_args(slot, &initial_cluster, "existing", &FLAGS);
    let added = cluster.members[slot].endpoint();
    eventually(Duration::from_secs(30), "the new member to catch up", || {
        let out = etcdctl(&added, &[ALICE, "get", "--consistency=s", "a/restarted-2"]);
        std::future::ready(String::from_utf8_lossy(&out.stdout).contains("a/restarted-2").then_some(()))
    })
    .await;
    assert_alice_confined(&added, "added");
    assert_eq!(ok(&added, &[ROOT, "user", "list"]), "alice\nroot\n");
}
