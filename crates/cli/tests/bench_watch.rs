//! `tally bench watch` against a 3-member cluster: every watch is created and canceled, and
//! every event the puts must cause arrives once, in order, on the right watch. Nothing here
//! depends on timing.

mod support;

use serde_json::Value;
use support::Cluster;

fn count(report: &Value, path: &[&str]) -> u64 {
    let v = path.iter().fold(report, |v, k| &v[*k]);
    v.as_u64().unwrap_or_else(|| panic!("{} is not a count in {report}", path.join(".")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_watch_delivers_every_event_once_and_in_order() {
    let cluster = Cluster::start(3).await;
    // A key space of 400 (not the default 10000) so that half the puts hit a single-key watcher.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["bench", "--json", "--no-progress", "--total", "500"])
        .args(["--endpoints", &cluster.endpoints().join(",")])
        .args(["watch", "--watchers", "200", "--prefix-watchers", "10", "--streams", "3", "--key-space", "400"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run tally bench watch");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tally bench watch failed ({}): {stderr}\n{stdout}", out.status);
    let report: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"));

    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(count(&report, &["puts", "successes"]), 500, "{report}");
    for (path, want) in [
        (&["create", "watches"][..], 210),
        (&["create", "created"], 210),
        (&["create", "failed"], 0),
        (&["create", "canceled_by_server"], 0),
        (&["cancel", "canceled"], 210),
        (&["events", "missing"], 0),
        (&["events", "duplicates"], 0),
        (&["events", "out_of_order"], 0),
        (&["events", "wrong_watch"], 0),
    ] {
        assert_eq!(count(&report, path), want, "{}: {report}", path.join("."));
    }
    // Every put is seen by one prefix watcher, and by a single-key watcher if its key is one of
    // the first 200 of the 400.
    let expected = count(&report, &["events", "expected"]);
    assert!((501..=1000).contains(&expected), "{report}");
    assert_eq!(count(&report, &["events", "delivered"]), expected, "{report}");
    assert!(report["events"]["lag_ms"]["max"].is_number() && report["events"]["tail_ms"].is_number(), "{report}");
}
