//! Watch progress as etcd 3.5.13+ sends it, which Kubernetes' watch cache relies on for its
//! consistent reads: a progress request is answered by one response with watch id -1 at the
//! current revision, after every event up to it, and not at all while a watcher of the stream is
//! behind or starts later; an idle `progress_notify` watch is told the current revision on a
//! timer (`--experimental-watch-progress-notify-interval`). The differential test compares the
//! answers to progress requests with a real etcd; this checks the ordering under load and the
//! timer, which it cannot.

mod support;

use std::time::Duration;

use support::{Cluster, WatchStream};
use tally_proto::etcdserverpb::watch_request::RequestUnion;
use tally_proto::etcdserverpb::{PutRequest, WatchCreateRequest, WatchProgressRequest, WatchResponse};

fn watch(key: &str, range_end: &str) -> WatchCreateRequest {
    WatchCreateRequest { key: key.into(), range_end: range_end.into(), ..Default::default() }
}

async fn put(cluster: &Cluster, i: usize, key: &str) -> i64 {
    let req = PutRequest { key: key.into(), value: b"v".to_vec(), ..Default::default() };
    let resp = cluster.kv(i).put(req).await.expect("put").into_inner();
    resp.header.expect("header").revision
}

async fn request_progress(s: &WatchStream) {
    s.send(RequestUnion::ProgressRequest(WatchProgressRequest {})).await;
}

/// Reads responses until the progress notification (watch id -1); returns it and what came first.
async fn until_progress(s: &mut WatchStream) -> (WatchResponse, Vec<WatchResponse>) {
    let mut before = Vec::new();
    loop {
        let r = s.expect("a progress notification").await;
        if r.watch_id == -1 {
            return (r, before);
        }
        before.push(r);
    }
}

fn revision(r: &WatchResponse) -> i64 {
    r.header.as_ref().expect("header").revision
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_request_is_answered_once_after_the_events_up_to_it() {
    let cluster = Cluster::start(3).await;
    let mut s = WatchStream::open(&cluster.members[0].client_url()).await.expect("open watch stream");

    request_progress(&s).await;
    assert!(s.next(Duration::from_millis(300)).await.is_none(), "a stream without watchers gets no progress");

    s.create(watch("p/", "p0")).await;
    s.expect_created(0).await;
    s.create(watch("p/a", "")).await;
    s.expect_created(1).await;
    for round in 0..20 {
        // Writes acknowledged by member 0 are applied there: the progress revision is at least
        // the last of them, and both watchers must have had every event up to it first.
        let mut last = 0;
        for key in ["p/a", "p/b", "p/a"] {
            last = put(&cluster, 0, key).await;
        }
        request_progress(&s).await;
        let (progress, before) = until_progress(&mut s).await;
        assert!(progress.events.is_empty() && !progress.created && !progress.canceled, "{progress:?}");
        let at = revision(&progress);
        assert!(at >= last, "round {round}: progress at {at}, before the acknowledged write at {last}");
        for (id, expected) in [(0, 3), (1, 2)] {
            let got: Vec<i64> = before
                .iter()
                .filter(|r| r.watch_id == id)
                .flat_map(|r| r.events.iter().map(|e| e.kv.as_ref().expect("kv").mod_revision))
                .collect();
            assert_eq!(got.len(), expected, "round {round}: watch {id} got {got:?} before the progress at {at}");
            assert!(got.iter().all(|&rev| rev <= at), "round {round}: watch {id}: {got:?} vs progress at {at}");
        }
        assert!(s.next(Duration::from_millis(50)).await.is_none(), "one progress response per request");
    }

    // A watcher that starts after the current revision holds the stream's progress back, as in
    // etcd, until the store reaches its start.
    let current = put(&cluster, 0, "q").await;
    s.create(WatchCreateRequest { start_revision: current + 2, ..watch("r", "") }).await;
    s.expect_created(2).await;
    request_progress(&s).await;
    assert!(s.next(Duration::from_millis(300)).await.is_none(), "progress while a watcher starts later");
    put(&cluster, 0, "q").await;
    let at = put(&cluster, 0, "q").await;
    request_progress(&s).await;
    let (progress, _) = until_progress(&mut s).await;
    assert_eq!(revision(&progress), at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_progress_notify_watches_hear_the_revision_on_a_timer() {
    let mut cluster = Cluster::start(3).await;
    cluster.kill9(0);
    let initial_cluster = cluster.initial_cluster_of(&[0, 1, 2]);
    cluster.spawn_args(0, &initial_cluster, "new", &["--experimental-watch-progress-notify-interval", "200ms"]);
    cluster.wait_for_leader().await;
    let at = put(&cluster, 0, "t").await;

    let mut s = WatchStream::open(&cluster.members[0].client_url()).await.expect("open watch stream");
    s.create(WatchCreateRequest { progress_notify: true, ..watch("t", "") }).await;
    s.expect_created(0).await;
    s.create(watch("t", "")).await; // no progress_notify: never notified
    s.expect_created(1).await;
    for _ in 0..3 {
        let r = s.expect("a timer progress notification").await;
        assert_eq!(r.watch_id, 0, "only the progress_notify watch is notified: {r:?}");
        assert!(r.events.is_empty() && !r.canceled, "{r:?}");
        assert_eq!(revision(&r), at);
    }
}
