//! `tally dev`'s controls, driven over its HTTP API as the live view's buttons would, with the
//! outcome checked through the cluster itself: the Raft paper's scenarios (leader crash, a
//! partitioned follower repaired after it fell behind, a partitioned leader replaced and told
//! so on heal, a partitioned leader's uncommitted write overwritten on heal, a paused follower)
//! and the write load.

mod support;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use support::{channel, eventually};
use tally_proto::etcdserverpb::cluster_client::ClusterClient;
use tally_proto::etcdserverpb::kv_client::KvClient;
use tally_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use tally_proto::etcdserverpb::{MemberListRequest, RangeRequest, StatusRequest, StatusResponse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NODES: usize = 3;
/// How long the cluster may take to agree on a leader after a failure or a heal.
const FAILOVER: Duration = Duration::from_secs(5);

/// `tally dev`'s ports for a first client port P: member i's client port (P, 20000+P,
/// 30000+P), its peer port (+1) and proxy port (+2).
fn layout(p: u16) -> Vec<u16> {
    (0..NODES as u16)
        .flat_map(|i| {
            let client = if i == 0 { p } else { (i + 1) * 10000 + p };
            // Client, peer, proxy, and ZooKeeper (the client port minus 198).
            [client, client + 1, client + 2, client - 198]
        })
        .collect()
}

/// A first client port whose whole layout, and a UI port beside it, are free. All of them stay
/// below the kernel's ephemeral range (32768 and up), where an outgoing connection could take
/// one before its member binds it.
fn free_layout() -> (u16, u16) {
    let seed = std::process::id() as u16;
    (0..1600u16)
        .map(|i| 1100 + (seed.wrapping_add(i.wrapping_mul(7)) % 1600))
        .filter(|p| !(2370..2400).contains(p)) // a default `tally dev` someone may be running
        .find(|&p| layout(p).into_iter().chain([p + 3]).all(|port| TcpListener::bind(("127.0.0.1", port)).is_ok()))
        .map(|p| (p, p + 3))
        .expect("a free set of ports below 2800 (+20000, +30000)")
}

/// `tally dev` in a process group of its own (its members join it), killed with the group if the
/// test fails; a failing test prints the end of every member's log.
struct Dev {
    child: Child,
    dir: tempfile::TempDir,
}

impl Dev {
    fn pgid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    /// Whether any process of the group (tally dev or a member) is left.
    fn group_alive(&self) -> bool {
        // SAFETY: kill(2) with signal 0 only checks that the group exists.
        unsafe { libc::kill(-self.pgid(), 0) == 0 }
    }

    fn signal_group(&self, signal: libc::c_int) {
        // SAFETY: the group is ours (tally dev leads it).
        unsafe { libc::kill(-self.pgid(), signal) };
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for i in 1..=NODES {
                let log = self.dir.path().join(format!("n{i}.log"));
                eprintln!("--- n{i}.log ---\n{}", support::tail(&log, 4000));
            }
        }
        self.signal_group(libc::SIGCONT);
        self.signal_group(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

fn start_dev(p: u16, ui: u16) -> Dev {
    let dir = tempfile::Builder::new().prefix("tally-dev-controls-").tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["dev", "--client-port", &p.to_string(), "--ui-port", &ui.to_string()])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .expect("start tally dev");
    let stdout = child.stdout.take().expect("stdout");
    let (lines, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            println!("tally dev: {line}");
            let _ = lines.send(line);
        }
    });
    let dev = Dev { child, dir };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) if line.starts_with("cluster is up") => break,
            Ok(line) => seen.push(line),
            Err(_) => panic!("tally dev did not say the cluster is up; it said {seen:#?}"),
        }
    }
    assert!(seen.iter().any(|l| *l == format!("UI: http://127.0.0.1:{ui}/ui")), "no UI line in {seen:#?}");
    dev
}

struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request on a connection of its own.
async fn http(port: u16, method: &str, path: &str, body: Option<Value>) -> Reply {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no answer"))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{method} {path}: {response:?}"));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status code");
    let content_type = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(name, _)| name.eq_ignore_ascii_case("content-type")))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    Reply { status, content_type, body: body.to_string() }
}

async fn post(ui: u16, path: &str, body: Option<Value>) -> Value {
    let reply = http(ui, "POST", path, body).await;
    assert_eq!(reply.status, 200, "POST {path}: {}", reply.body);
    reply.json()
}

async fn cluster(ui: u16) -> Value {
    let reply = http(ui, "GET", "/ui/cluster", None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

fn member<'a>(cluster: &'a Value, name: &str) -> &'a Value {
    cluster["members"].as_array().expect("members").iter().find(|m| m["name"] == name).expect("the member")
}

/// A member's Status, unless it does not answer within a second (dead, paused or cut off).
async fn status(url: &str) -> Option<StatusResponse> {
    let mut client = MaintenanceClient::new(channel(url));
    let call = client.status(StatusRequest {});
    tokio::time::timeout(Duration::from_secs(1), call).await.ok()?.ok().map(|r| r.into_inner())
}

/// The leader and term that every member of `urls` reports alike.
async fn agreed_leader(urls: &[&str]) -> Option<(u64, u64)> {
    let mut agreed = None;
    for url in urls {
        let s = status(url).await?;
        if s.leader == 0 || agreed.is_some_and(|a| a != (s.leader, s.raft_term)) {
            return None;
        }
        agreed = Some((s.leader, s.raft_term));
    }
    agreed
}

async fn read_locally(url: &str, key: &str) -> Option<Vec<u8>> {
    let request = RangeRequest { key: key.as_bytes().to_vec(), serializable: true, ..Default::default() };
    let mut client = KvClient::new(channel(url));
    let call = client.range(request);
    let response = tokio::time::timeout(Duration::from_secs(1), call).await.ok()?.ok()?.into_inner();
    response.kvs.into_iter().next().map(|kv| kv.value)
}

fn wait_gone(dev: &mut Dev, ports: &[u16]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while dev.child.try_wait().expect("try_wait").is_none() || dev.group_alive() {
        assert!(std::time::Instant::now() < deadline, "tally dev or a member still runs after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    for &port in ports {
        assert!(TcpListener::bind(("127.0.0.1", port)).is_ok(), "port {port} is still taken");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_controls_reproduce_raft_scenarios() {
    let (p, ui) = free_layout();
    let mut dev = start_dev(p, ui);
    let ports = layout(p);
    let urls: Vec<String> = (0..NODES).map(|i| format!("http://127.0.0.1:{}", ports[i * 4])).collect();
    let names: Vec<String> = (1..=NODES).map(|i| format!("n{i}")).collect();

    // The page, the redirect to it, the cluster, and what is refused.
    let page = http(ui, "GET", "/ui", None).await;
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"), "{}", page.content_type);
    assert_eq!(http(ui, "GET", "/", None).await.status, 302);
    assert_eq!(http(ui, "GET", "/ui/nothing-here", None).await.status, 404);
    assert_eq!(http(ui, "POST", "/ui/cluster", None).await.status, 405);
    assert_eq!(http(ui, "GET", "/dev/members/n1/kill", None).await.status, 405);
    let unknown = http(ui, "POST", "/dev/members/n9/kill", None).await;
    assert_eq!((unknown.status, unknown.json()), (404, json!({"error": "no member n9"})));

    let listed = ClusterClient::new(channel(&urls[0]))
        .member_list(MemberListRequest { linearizable: false })
        .await
        .expect("member list")
        .into_inner()
        .members;
    let view = eventually(FAILOVER, "ids in /ui/cluster", || async {
        let view = cluster(ui).await;
        view["members"].as_array().unwrap().iter().all(|m| m["id"] != "").then_some(view)
    })
    .await;
    assert_eq!(view["controls"], true);
    // Every member serves ZooKeeper's clients too.
    for i in 0..NODES {
        assert_eq!(four_letter(ports[i * 4 + 3], b"ruok"), "imok", "n{}'s ZooKeeper port", i + 1);
    }
    assert_eq!(view["load"], json!({"running": false, "rate": 0, "written": 0}));
    let mut ids = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let m = member(&view, name);
        assert_eq!((m["process"].as_str(), m["cut"].as_bool()), (Some("running"), Some(false)), "{m}");
        assert_eq!(m["client_url"], urls[i]);
        let id = u64::from_str_radix(m["id"].as_str().unwrap(), 16).expect("a hex id");
        assert_eq!(m["id"].as_str().unwrap().len(), 16);
        let listed = listed.iter().find(|l| l.name == *name).expect("listed by the cluster");
        assert_eq!(listed.id, id, "{name}'s id");
        ids.push(id);
    }
    let index_of = |id: u64| ids.iter().position(|&x| x == id).expect("a member's id");
    let all: Vec<&str> = urls.iter().map(String::as_str).collect();
    let others = |i: usize| -> Vec<&str> { (0..NODES).filter(|&j| j != i).map(|j| urls[j].as_str()).collect() };

    // Leader crash: the others elect a new leader in a later term, and the old one rejoins.
    let (leader, term) = eventually(FAILOVER, "a leader", || agreed_leader(&all)).await;
    let l = index_of(leader);
    let after = post(ui, &format!("/dev/members/{}/kill", names[l]), None).await;
    assert_eq!(member(&after, &names[l])["process"], "killed");
    let (new_leader, _) = eventually(FAILOVER, "a new leader after the kill", || async {
        agreed_leader(&others(l)).await.filter(|&(id, t)| id != leader && t > term)
    })
    .await;
    assert_eq!(member(&cluster(ui).await, &names[l])["process"], "killed");
    let again = http(ui, "POST", &format!("/dev/members/{}/kill", names[l]), None).await;
    assert_eq!((again.status, again.json()), (409, json!({"error": format!("{} is not running", names[l])})));
    let after = post(ui, &format!("/dev/members/{}/restart", names[l]), None).await;
    assert_eq!(member(&after, &names[l])["process"], "running");
    eventually(Duration::from_secs(15), "the restarted member to follow the new leader", || async {
        status(&urls[l]).await.filter(|s| s.leader == new_leader)
    })
    .await;

    // A partitioned follower falls behind, and is repaired on heal.
    let (leader, _) = eventually(FAILOVER, "a leader", || agreed_leader(&all)).await;
    let l = index_of(leader);
    let f = (l + 1) % NODES;
    let after = post(ui, &format!("/dev/members/{}/cut", names[f]), None).await;
    assert_eq!(member(&after, &names[f])["cut"], true);
    let mut revision = 0;
    for k in 0..20 {
        let put = post(ui, "/dev/put", Some(json!({"key": format!("cut/{k}"), "value": format!("v{k}")}))).await;
        let r = put["revision"].as_i64().expect("a revision");
        assert!(r > revision, "revision {r} after {revision}");
        revision = r;
    }
    let leader_status = status(&urls[l]).await.expect("the leader's status");
    let cut_status = status(&urls[f]).await.expect("the cut follower's status");
    assert!(
        cut_status.raft_index < leader_status.raft_index,
        "the cut follower is at {}, the leader at {}",
        cut_status.raft_index,
        leader_status.raft_index
    );
    assert_eq!(read_locally(&urls[f], "cut/19").await, None, "the cut follower has the last key");
    post(ui, &format!("/dev/members/{}/heal", names[f]), None).await;
    eventually(FAILOVER, "the healed follower to catch up", || async {
        let (s, leader_s) = (status(&urls[f]).await?, status(&urls[l]).await?);
        let caught_up = s.raft_applied_index >= leader_s.raft_applied_index;
        (caught_up && read_locally(&urls[f], "cut/19").await? == b"v19").then_some(())
    })
    .await;

    // A partitioned leader is replaced; on heal it follows the new one.
    let (leader, term) = eventually(FAILOVER, "a leader", || agreed_leader(&all)).await;
    let l = index_of(leader);
    post(ui, &format!("/dev/members/{}/cut", names[l]), None).await;
    let (new_leader, _) = eventually(FAILOVER, "a new leader beside the cut one", || async {
        agreed_leader(&others(l)).await.filter(|&(id, t)| id != leader && t > term)
    })
    .await;
    let after = post(ui, &format!("/dev/members/{}/heal", names[l]), None).await;
    assert_eq!(member(&after, &names[l])["cut"], false);
    eventually(FAILOVER, "the old leader to follow the new one", || async {
        status(&urls[l]).await.filter(|s| s.leader == new_leader)
    })
    .await;

    // A write through a partitioned old leader stays in its log uncommitted; a new leader
    // writes other entries at those indexes, and on heal the old leader's are overwritten
    // (the paper's figure 7: a follower repaired after its log diverged).
    let (leader, term) = eventually(FAILOVER, "a leader", || agreed_leader(&all)).await;
    let l = index_of(leader);
    post(ui, &format!("/dev/members/{}/cut", names[l]), None).await;
    let stranded = json!({"key": "stranded", "value": "lost", "member": names[l]});
    let stranded = tokio::spawn(async move { http(ui, "POST", "/dev/put", Some(stranded)).await });
    let (new_leader, _) = eventually(FAILOVER, "a new leader beside the cut one", || async {
        agreed_leader(&others(l)).await.filter(|&(id, t)| id != leader && t > term)
    })
    .await;
    post(ui, "/dev/put", Some(json!({"key": "after-divergence", "value": "kept"}))).await;
    let stranded = stranded.await.expect("the stranded put");
    assert_eq!(stranded.status, 503, "a write to a cut leader cannot commit: {}", stranded.json());
    post(ui, &format!("/dev/members/{}/heal", names[l]), None).await;
    eventually(FAILOVER, "the old leader to take the new leader's log", || async {
        let s = status(&urls[l]).await.filter(|s| s.leader == new_leader)?;
        (read_locally(&urls[l], "after-divergence").await? == b"kept").then_some(s)
    })
    .await;
    for url in &urls {
        let request = RangeRequest { key: b"stranded".to_vec(), serializable: true, ..Default::default() };
        let found = KvClient::new(channel(url)).range(request).await.expect("a local read").into_inner().count;
        assert_eq!(found, 0, "the uncommitted write survived on {url}");
    }

    // A paused follower: writes go on without it.
    let (leader, _) = eventually(FAILOVER, "a leader", || agreed_leader(&all)).await;
    let f = (index_of(leader) + 1) % NODES;
    let after = post(ui, &format!("/dev/members/{}/pause", names[f]), None).await;
    assert_eq!(member(&after, &names[f])["process"], "paused");
    let twice = http(ui, "POST", &format!("/dev/members/{}/pause", names[f]), None).await;
    assert_eq!(twice.status, 409);
    for k in 0..5 {
        post(ui, "/dev/put", Some(json!({"key": format!("paused/{k}"), "value": "v"}))).await;
    }
    let after = post(ui, &format!("/dev/members/{}/resume", names[f]), None).await;
    assert_eq!(member(&after, &names[f])["process"], "running");
    eventually(FAILOVER, "the resumed follower to catch up", || async {
        (read_locally(&urls[f], "paused/4").await? == b"v").then_some(())
    })
    .await;

    // The write load.
    let load = post(ui, "/dev/load", Some(json!({"rate": 200}))).await;
    assert_eq!((load["running"].as_bool(), load["rate"].as_u64()), (Some(true), Some(200)), "{load}");
    eventually(FAILOVER, "the load to write", || async {
        let written = cluster(ui).await["load"]["written"].as_u64()?;
        (written > 0).then_some(())
    })
    .await;
    let load = post(ui, "/dev/load", Some(json!({"rate": 0}))).await;
    assert_eq!((load["running"].as_bool(), load["rate"].as_u64()), (Some(false), Some(0)), "{load}");
    assert!(load["written"].as_u64().unwrap() > 0);

    // SIGTERM to the group stops tally dev and every member.
    dev.signal_group(libc::SIGTERM);
    wait_gone(&mut dev, &ports);
}

fn four_letter(port: u16, word: &[u8; 4]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the ZooKeeper port");
    stream.write_all(word).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    answer
}
