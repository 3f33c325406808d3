//! The hub with a real store and its dispatcher thread: delivery through the index, and where a
//! watcher resumes when it falls behind after writes it did not match.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tally_mvcc::StateMachine;
use tally_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, WatchResponse};
use tally_proto::mvccpb::event::EventType;
use tokio::sync::{mpsc, Notify};
use tonic::Status;

use super::{HeaderSource, WatchHub, Watcher};

type Inbox = mpsc::Receiver<Result<WatchResponse, Status>>;

fn hub() -> Arc<WatchHub> {
    let sm = Arc::new(RwLock::new(StateMachine::default()));
    let headers = HeaderSource { cluster_id: 1, member_id: 1, term: Arc::new(AtomicU64::new(1)) };
    WatchHub::new(sm, headers, Duration::from_secs(600))
}

/// Registers a watch on [key, range_end) whose stream buffers `buffer` responses.
fn watch(hub: &WatchHub, key: &str, range_end: &[u8], buffer: usize) -> (u64, Inbox) {
    let (out, rx) = mpsc::channel(buffer);
    let w = Watcher {
        watch_id: 7,
        stream: hub.new_stream(),
        key: key.into(),
        range_end: range_end.to_vec(),
        no_put: false,
        no_delete: false,
        prev_kv: false,
        start_rev: 0,
        progress_notify: false,
        sent_events: false,
        next_rev: 0,
        synced: false,
        out,
        wake: Arc::new(Notify::new()),
    };
    (hub.add(w), rx)
}

/// Applies a put and publishes its events, as the driver does; returns its revision.
fn put(hub: &WatchHub, key: &str) -> i64 {
    let req = PutRequest { key: key.into(), value: b"v".to_vec(), ..Default::default() };
    let (revision, events) = {
        let mut sm = hub.sm.write().unwrap();
        let events = sm.store.put(&req).unwrap().1;
        (sm.store.revision(), events)
    };
    hub.publish(vec![(revision, events)]);
    revision
}

fn next(rx: &mut Inbox) -> WatchResponse {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(resp) = rx.try_recv() {
            return resp.unwrap();
        }
        assert!(Instant::now() < deadline, "no response in 5 s");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 5 s");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn keys(resp: &WatchResponse) -> Vec<String> {
    resp.events.iter().map(|e| String::from_utf8(e.kv.as_ref().unwrap().key.clone()).unwrap()).collect()
}

#[test]
fn each_event_reaches_exactly_the_watchers_whose_range_holds_its_key() {
    let hub = hub();
    let (_, mut single) = watch(&hub, "a/1", b"", 16);
    let (_, mut prefix) = watch(&hub, "a/", b"a0", 16);
    let (_, mut from_b) = watch(&hub, "b", &[0], 16);
    put(&hub, "a/1");
    put(&hub, "a/2");
    let b = put(&hub, "b/1");
    assert_eq!(keys(&next(&mut single)), ["a/1"]);
    assert_eq!(keys(&next(&mut prefix)), ["a/1"]);
    assert_eq!(keys(&next(&mut prefix)), ["a/2"]);
    let resp = next(&mut from_b);
    assert_eq!((keys(&resp), resp.header.unwrap().revision), (vec!["b/1".to_string()], b));
    // One revision deleting three keys: the prefix watcher gets its two in one response, in order.
    let req = DeleteRangeRequest { key: b"a/".to_vec(), range_end: b"b/2".to_vec(), ..Default::default() };
    let (revision, events) = {
        let mut sm = hub.sm.write().unwrap();
        let events = sm.store.delete_range(&req).unwrap().1;
        (sm.store.revision(), events)
    };
    hub.publish(vec![(revision, events)]);
    let resp = next(&mut prefix);
    assert_eq!(keys(&resp), ["a/1", "a/2"]);
    assert!(resp.events.iter().all(|e| e.r#type == EventType::Delete as i32));
    assert_eq!(keys(&next(&mut single)), ["a/1"]);
    assert_eq!(keys(&next(&mut from_b)), ["b/1"]);
    assert!(single.try_recv().is_err() && prefix.try_recv().is_err() && from_b.try_recv().is_err());
}

/// A watcher the dispatcher skipped for many revisions (its `next_rev` stale) that then falls
/// behind must resume at the revision it missed, not at its stale `next_rev`: history below the
/// compaction is gone, and resuming there would cancel the watch.
#[test]
fn a_watcher_falling_behind_after_unmatched_writes_resumes_at_the_revision_it_missed() {
    let hub = hub();
    let (key, mut rx) = watch(&hub, "a", b"", 1);
    for _ in 0..50 {
        put(&hub, "b");
    }
    let compacted = hub.sm.read().unwrap().store.revision() - 10;
    hub.sm.write().unwrap().store.compact(compacted).unwrap();
    // Fill the stream's buffer, so the next event finds it full.
    let stream = hub.with_watcher(key, |w| (w.stream, w.out.clone())).unwrap();
    stream.1.try_send(Ok(WatchResponse::default())).unwrap();
    let missed = put(&hub, "a");
    wait_until("the watcher falls behind", || hub.behind(stream.0, 10) == [key]);
    assert_eq!(hub.with_watcher(key, |w| (w.synced, w.next_rev)), Some((false, missed)));
    next(&mut rx);
    assert!(hub.try_sync(key).unwrap(), "catching up from {missed} works (compacted at {compacted})");
    assert_eq!(keys(&next(&mut rx)), ["a"]);
    assert!(hub.behind(stream.0, 10).is_empty());
}

#[test]
fn progress_after_unmatched_writes_past_a_compaction_is_sent() {
    let hub = hub();
    let (key, mut rx) = watch(&hub, "a", b"", 4);
    let mut last = 0;
    for _ in 0..50 {
        last = put(&hub, "b");
    }
    hub.sm.write().unwrap().store.compact(last - 10).unwrap();
    wait_until("the dispatcher delivers everything", || hub.lock().delivered == last);
    assert!(hub.progress(&[key], -1));
    let resp = next(&mut rx);
    assert_eq!((resp.watch_id, resp.events.len(), resp.header.unwrap().revision), (-1, 0, last));
}

#[test]
fn a_removed_watcher_is_out_of_the_index() {
    let hub = hub();
    let (key, mut rx) = watch(&hub, "a", &[0], 4);
    hub.remove(key);
    put(&hub, "a");
    let (_, mut other) = watch(&hub, "a", b"", 4);
    put(&hub, "a");
    next(&mut other);
    assert!(rx.try_recv().is_err());
}

/// A follower that installs a leader's snapshot skips revisions without publishing their
/// events; its synced watchers must still get them, from the new state's history (found by the
/// whole-node simulator: with restores ignored, `tally-sim --whole --seeds 1000` reported 26
/// watchers missing revisions, e.g. seed 22).
#[test]
fn a_snapshot_install_sends_synced_watchers_to_catch_up_on_the_revisions_it_skipped() {
    let hub = hub();
    let (key, mut rx) = watch(&hub, "a", b"", 16);
    let stream = hub.with_watcher(key, |w| w.stream).unwrap();
    put(&hub, "a");
    assert_eq!(keys(&next(&mut rx)), ["a"]);
    // The leader's state: two more writes to "a", never published here.
    let skipped: Vec<i64> = (0..2)
        .map(|_| {
            let mut sm = hub.sm.write().unwrap();
            sm.store.put(&PutRequest { key: b"a".to_vec(), value: b"w".to_vec(), ..Default::default() }).unwrap();
            sm.store.revision()
        })
        .collect();
    hub.restored();
    wait_until("the watcher falls behind", || hub.behind(stream, 10) == [key]);
    assert!(hub.try_sync(key).unwrap());
    let resp = next(&mut rx);
    let revisions: Vec<i64> = resp.events.iter().map(|e| e.kv.as_ref().unwrap().mod_revision).collect();
    assert_eq!(revisions, skipped, "the skipped revisions, from history");
    let after = put(&hub, "a");
    assert_eq!(next(&mut rx).header.unwrap().revision, after);
}
