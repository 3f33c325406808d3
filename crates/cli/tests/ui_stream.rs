//! The live view's server side (`--enable-ui`): the page and its assets, `/ui/cluster`, and the
//! `/ui/events` stream of what the node does, read as a browser's EventSource reads it. A
//! reader that stops reading never slows the member, and its stream never loses an event
//! without saying so (`dropped`).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Cluster, Setup};
use tally_proto::etcdserverpb::PutRequest;

fn with_ui() -> Setup {
    Setup { flags: vec!["--enable-ui".into()], ..Setup::default() }
}

/// An open `/ui/events` stream: its JSON events, one per `data:` line.
struct Events {
    lines: BufReader<TcpStream>,
}

impl Events {
    fn open(endpoint: &str) -> Events {
        let mut s = TcpStream::connect(endpoint).expect("connect");
        write!(s, "GET /ui/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n").expect("send");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
        let mut lines = BufReader::new(s);
        let mut status = String::new();
        lines.read_line(&mut status).expect("status line");
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        Events { lines }
    }

    /// The next event; chunked encoding's size lines and SSE's other lines are skipped.
    fn next(&mut self) -> Value {
        loop {
            let mut line = String::new();
            let n = self.lines.read_line(&mut line).expect("read the stream");
            assert!(n > 0, "the stream ended");
            if let Some(data) = line.trim_end().strip_prefix("data: ") {
                return serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"));
            }
        }
    }

    /// Reads until an event satisfies `want`, for at most `timeout`.
    fn until(&mut self, what: &str, timeout: Duration, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            assert!(Instant::now() < deadline, "no {what} within {timeout:?}");
            let event = self.next();
            if want(&event) {
                return event;
            }
        }
    }
}

fn kind(event: &Value) -> &str {
    event["type"].as_str().unwrap_or_default()
}

async fn put(cluster: &Cluster, i: usize, key: &str) {
    let req = PutRequest { key: key.into(), value: b"v".to_vec(), ..Default::default() };
    cluster.kv(i).put(req).await.expect("put");
}

#[tokio::test]
async fn a_member_serves_the_page_and_streams_what_it_does() {
    let cluster = Cluster::start_with(1, with_ui()).await;
    let endpoint = cluster.members[0].endpoint();
    let (code, page) = support::http_get(&endpoint, "/ui");
    assert_eq!(code, 200);
    assert!(page.contains("/ui/assets/ui.js"), "{page}");
    assert_eq!(support::http_get(&endpoint, "/ui/assets/ui.js").0, 200);
    assert_eq!(support::http_get(&endpoint, "/ui/nothing-here").0, 404);

    let (code, body) = support::http_get(&endpoint, "/ui/cluster");
    assert_eq!(code, 200);
    let cluster_json: Value = serde_json::from_str(&body).expect("cluster json");
    assert_eq!(cluster_json["controls"], false);
    let me = &cluster_json["members"][0];
    assert_eq!(me["name"], "n1");
    assert_eq!(me["id"], format!("{:016x}", cluster.id(0)));
    assert_eq!(me["client_url"], cluster.members[0].client_url());

    let mut events = Events::open(&endpoint);
    let hello = events.next();
    assert_eq!((kind(&hello), &hello["name"]), ("hello", &Value::from("n1")));
    let view = events.next();
    assert_eq!(kind(&view), "view");
    assert_eq!(view["role"], "leader");
    let last_index = view["last_index"].as_u64().expect("last_index");
    assert_eq!(view["log"].as_array().and_then(|l| l.last()).and_then(|e| e[0].as_u64()), Some(last_index));

    put(&cluster, 0, "a").await;
    let log = events.until("the put's log entry", Duration::from_secs(5), |e| kind(e) == "log");
    assert_eq!(log["from"].as_u64(), Some(last_index + 1));
    let term = view["term"].as_u64();
    assert_eq!(log["runs"][0][2].as_u64(), term, "{log}");
    events.until("its commit", Duration::from_secs(5), |e| {
        kind(e) == "commit" && e["applied"].as_u64() >= Some(last_index + 1)
    });
}

#[tokio::test]
async fn a_stalled_reader_never_slows_the_member_nor_loses_events_silently() {
    let cluster = Cluster::start_with(1, with_ui()).await;
    let endpoint = cluster.members[0].endpoint();
    let mut stalled = Events::open(&endpoint);
    let first = stalled.until("a view", Duration::from_secs(5), |e| kind(e) == "view");
    let mut next_index = first["last_index"].as_u64().expect("last_index") + 1;
    // Thousands of events (each put: a log and a commit event) while the stream is not read:
    // every put is answered all the same.
    for i in 0..6000 {
        put(&cluster, 0, &format!("k{i}")).await;
    }
    let last = cluster.status(0).await.expect("status").raft_index;
    // Reading on, the stream holds every log entry in order, or says it dropped events (the
    // buffers' bound; see ui::events' unit tests).
    let mut dropped = 0;
    while next_index <= last {
        let event = stalled.next();
        match kind(&event) {
            "dropped" => {
                dropped += event["count"].as_u64().expect("count");
                next_index = last + 1;
            }
            "log" => {
                assert_eq!(event["from"].as_u64(), Some(next_index), "an entry went missing: {event}");
                next_index = event["to"].as_u64().expect("to") + 1;
            }
            _ => {}
        }
    }
    eprintln!("6000 puts with a stalled stream open; the stream dropped {dropped} events");
}

#[tokio::test]
async fn a_follower_reports_the_leaders_death_and_the_election() {
    let mut cluster = Cluster::start_with(3, with_ui()).await;
    let leader = cluster.status(0).await.expect("status").leader;
    let leader_i = cluster.index_of(leader).expect("a member leads");
    let follower = (leader_i + 1) % 3;
    let mut events = Events::open(&cluster.members[follower].endpoint());
    let view = events.until("a view", Duration::from_secs(5), |e| kind(e) == "view");
    let term = view["term"].as_u64().expect("term");
    assert_eq!(view["leader"], format!("{leader:016x}"));
    assert!(view["heard"].as_array().is_some_and(|h| h.iter().any(|p| p["id"] == format!("{leader:016x}"))), "{view}");

    cluster.kill9(leader_i);
    let lost = events.until("the leader's connection lost", Duration::from_secs(5), |e| kind(e) == "peer-lost");
    assert_eq!(lost["peer"], format!("{leader:016x}"));
    // Someone wins a later term: either this follower (its role changes to leader) or the other
    // one (this follower grants its vote and follows it).
    let elected = events.until("a new leader", Duration::from_secs(5), |e| {
        (kind(e) == "role" || kind(e) == "view") && e["term"].as_u64() > Some(term) && e["leader"].is_string()
    });
    assert_ne!(elected["leader"], format!("{leader:016x}"), "{elected}");
}
