//! TLS with etcd's flags on real `tally server` processes: etcdctl and curl over https, client
//! certificates (`--client-cert-auth`), refusals that are logged while the member keeps
//! serving, auto-tls, and a 3-member cluster with mutually authenticated peers that survives a
//! leader kill and a certificate rotation.

mod support;

use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use support::etcdctl::Etcdctl;
use support::pki::{Ca, Pair};
use support::{eventually, Cluster, Setup};
use tally_proto::etcdserverpb::lease_client::LeaseClient;
use tally_proto::etcdserverpb::{LeaseGrantRequest, LeaseTimeToLiveRequest, PutRequest, RangeRequest};
use tally_server::tls::ChannelConnector;
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;

/// The certificates of one test: a CA, a member certificate every member uses, a client
/// certificate naming alice, and a CA nobody trusts.
struct Pki {
    _dir: TempDir,
    ca: Ca,
    member: Pair,
    alice: Pair,
    stranger: Ca,
}

fn pki() -> Pki {
    let dir = tempfile::Builder::new().prefix("tally-tls-").tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let stranger = Ca::new(dir.path(), "stranger");
    Pki { member: ca.member("member"), alice: ca.client("alice"), ca, stranger, _dir: dir }
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A TLS client config trusting `ca`, presenting `identity` if given.
fn client_config(ca: &Path, identity: Option<&Pair>, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(tally_server::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(pair) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(&pair.cert).unwrap().map(Result::unwrap).collect(),
                PrivateKeyDer::from_pem_file(&pair.key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Flags for TLS on both sides with the shared member certificate; peers must present theirs.
fn member_flags(pki: &Pki, client_cert_auth: bool) -> Vec<String> {
    let (cert, key, ca) = (path(&pki.member.cert), path(&pki.member.key), path(&pki.ca.file));
    let mut flags = vec!["--cert-file", &cert, "--key-file", &key].into_iter().map(String::from).collect::<Vec<_>>();
    if client_cert_auth {
        flags.extend(["--trusted-ca-file".into(), ca.clone(), "--client-cert-auth".into()]);
    }
    let peer = ["--peer-cert-file", &cert, "--peer-key-file", &key, "--peer-trusted-ca-file", &ca];
    flags.extend(peer.iter().map(|s| s.to_string()));
    flags.push("--peer-client-cert-auth".into());
    flags
}

async fn tls_cluster(n: usize, pki: &Pki, client_cert_auth: bool) -> Cluster {
    let identity = client_cert_auth.then_some(&pki.alice);
    let tls = ChannelConnector::new(client_config(&pki.ca.file, identity, &[b"h2"]));
    Cluster::start_with(
        n,
        Setup { scheme: "https", flags: member_flags(pki, client_cert_auth), tls: Some(tls), ..Setup::default() },
    )
    .await
}

fn etcdctl(cluster: &Cluster, i: usize, tls: &[&str], args: &[&str]) -> Output {
    let ctl = Etcdctl { endpoints: cluster.members[i].client_url(), command_timeout: "5s" };
    ctl.run(&[tls, args].concat())
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn output(out: &Output) -> String {
    format!("status {}\nstdout: {}\nstderr: {}", out.status, stdout(out), String::from_utf8_lossy(&out.stderr))
}

/// Waits until member `i`'s log (from `offset`) has a line with every one of `parts`.
async fn logged(cluster: &Cluster, i: usize, offset: u64, parts: &[&str]) {
    let what = format!("a log line with {parts:?}");
    eventually(Duration::from_secs(10), &what, || async {
        cluster.log_since(i, offset).lines().any(|line| parts.iter().all(|p| line.contains(p))).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_and_curl_over_https_and_refusals_that_leave_the_member_serving() {
    let pki = pki();
    let metrics_port = support::free_port();
    let mut flags = member_flags(&pki, false);
    flags.extend(["--listen-metrics-urls".to_string(), format!("https://127.0.0.1:{metrics_port}")]);
    let tls = ChannelConnector::new(client_config(&pki.ca.file, None, &[b"h2"]));
    let cluster = Cluster::start_with(1, Setup { scheme: "https", flags, tls: Some(tls), ..Setup::default() }).await;
    let ca = path(&pki.ca.file);
    let cacert = ["--cacert", &ca];
    let out = etcdctl(&cluster, 0, &cacert, &["put", "greeting", "hello"]);
    assert!(out.status.success(), "{}{}", output(&out), cluster.logs());
    let out = etcdctl(&cluster, 0, &cacert, &["get", "greeting", "--print-value-only"]);
    assert_eq!(stdout(&out).trim(), "hello", "{}", output(&out));

    // A client that does not trust our CA refuses the member.
    let stranger = path(&pki.stranger.file);
    let out = etcdctl(&cluster, 0, &["--cacert", &stranger], &["get", "greeting"]);
    assert!(!out.status.success(), "a client trusting another CA got through: {}", output(&out));

    // A plaintext client on the TLS port is refused, with a log line saying who and why.
    let offset = cluster.log_len(0);
    let plain = Etcdctl { endpoints: format!("http://{}", cluster.members[0].endpoint()), command_timeout: "3s" };
    let out = plain.run(&["get", "greeting"]);
    assert!(!out.status.success(), "a plaintext client got an answer: {}", output(&out));
    logged(&cluster, 0, offset, &["rejected client connection", "remote_addr=127.0.0.1:", "corrupt message"]).await;

    // ... and the member goes on serving TLS clients, gRPC and HTTP/1.1 on the same port.
    let out = etcdctl(&cluster, 0, &cacert, &["get", "greeting", "--print-value-only"]);
    assert_eq!(stdout(&out).trim(), "hello", "{}", output(&out));
    let url = format!("{}/health", cluster.members[0].client_url());
    let curl = std::process::Command::new("curl").args(["-sS", "--cacert", &ca, &url]).output().expect("run curl");
    assert_eq!(stdout(&curl), r#"{"health":"true","reason":""}"#, "{}", output(&curl));
    let url = format!("{}/metrics", cluster.members[0].client_url());
    let curl = std::process::Command::new("curl").args(["-sS", "--http1.1", "--cacert", &ca, &url]).output().unwrap();
    assert!(stdout(&curl).contains("etcd_server_has_leader 1"), "{}", output(&curl));
    // An https metrics URL serves over TLS too.
    let url = format!("https://127.0.0.1:{metrics_port}/metrics");
    let curl = std::process::Command::new("curl").args(["-sS", "--cacert", &ca, &url]).output().unwrap();
    assert!(stdout(&curl).contains("etcd_server_has_leader 1"), "{}", output(&curl));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_cert_auth_takes_certificates_from_the_trusted_ca_only() {
    let pki = pki();
    let cluster = tls_cluster(1, &pki, true).await;
    let (ca, cert, key) = (path(&pki.ca.file), path(&pki.alice.cert), path(&pki.alice.key));
    let alice = ["--cacert", &ca, "--cert", &cert, "--key", &key];
    let out = etcdctl(&cluster, 0, &alice, &["put", "k", "v"]);
    assert!(out.status.success(), "{}{}", output(&out), cluster.logs());
    let out = etcdctl(&cluster, 0, &alice, &["get", "k", "--print-value-only"]);
    assert_eq!(stdout(&out).trim(), "v", "{}", output(&out));

    let refusals: [(&str, Pair, &str); 2] = [
        ("a certificate from another CA", pki.stranger.client("mallory"), "UnknownIssuer"),
        ("an expired certificate", pki.ca.expired_member("expired-client"), "expired"),
    ];
    for (what, pair, reason) in refusals {
        let offset = cluster.log_len(0);
        let (cert, key) = (path(&pair.cert), path(&pair.key));
        let out = etcdctl(&cluster, 0, &["--cacert", &ca, "--cert", &cert, "--key", &key], &["get", "k"]);
        assert!(!out.status.success(), "{what} got through: {}", output(&out));
        logged(&cluster, 0, offset, &["rejected client connection", "remote_addr=", reason]).await;
    }
    let offset = cluster.log_len(0);
    let out = etcdctl(&cluster, 0, &["--cacert", &ca], &["get", "k"]);
    assert!(!out.status.success(), "a client without a certificate got through: {}", output(&out));
    logged(&cluster, 0, offset, &["rejected client connection", "peer sent no certificates"]).await;

    let out = etcdctl(&cluster, 0, &alice, &["get", "k", "--print-value-only"]);
    assert_eq!(stdout(&out).trim(), "v", "still serving: {}", output(&out));
    let log = cluster.log_since(0, 0);
    assert!(!log.contains("PRIVATE KEY"), "key material in the log");
}

/// With `--client-cert-auth` and auth on, a verified certificate's common name is its user
/// (etcd's AuthInfoFromTLS): root's certificate may do anything, alice's only what her role
/// allows, without a password or token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificates_common_name_is_its_user_when_auth_is_on() {
    let pki = pki();
    let cluster = tls_cluster(1, &pki, true).await;
    let root_pair = pki.ca.client("root");
    let ca = path(&pki.ca.file);
    let (root_cert, root_key) = (path(&root_pair.cert), path(&root_pair.key));
    let (alice_cert, alice_key) = (path(&pki.alice.cert), path(&pki.alice.key));
    let root = ["--cacert", &ca, "--cert", &root_cert, "--key", &root_key];
    let alice = ["--cacert", &ca, "--cert", &alice_cert, "--key", &alice_key];
    for args in [
        &["user", "add", "root:root-pw"][..],
        &["role", "add", "root"],
        &["user", "grant-role", "root", "root"],
        &["user", "add", "alice:alice-pw"],
        &["role", "add", "dev"],
        &["role", "grant-permission", "dev", "--prefix=true", "readwrite", "a/"],
        &["user", "grant-role", "alice", "dev"],
        &["auth", "enable"],
    ] {
        let out = etcdctl(&cluster, 0, &root, args);
        assert!(out.status.success(), "{args:?}: {}", output(&out));
    }
    let out = etcdctl(&cluster, 0, &root, &["put", "b", "by-root"]);
    assert!(out.status.success(), "root's certificate: {}", output(&out));
    let out = etcdctl(&cluster, 0, &alice, &["put", "a/1", "by-alice"]);
    assert!(out.status.success(), "alice's certificate in her prefix: {}", output(&out));
    for args in [&["put", "b", "x"][..], &["get", "b"]] {
        let out = etcdctl(&cluster, 0, &alice, args);
        assert!(!out.status.success(), "alice's certificate outside her prefix: {}", output(&out));
        assert!(output(&out).contains("permission denied"), "{}", output(&out));
    }
    let out = etcdctl(&cluster, 0, &alice, &["get", "a/1", "--print-value-only"]);
    assert_eq!(stdout(&out).trim(), "by-alice", "{}", output(&out));
    // Both: a password login wins over the certificate, as in etcd (the token is read first).
    let out = etcdctl(&cluster, 0, &alice, &["--user", "root:root-pw", "put", "b", "root-over-tls"]);
    assert!(out.status.success(), "root's login on alice's certificate: {}", output(&out));
    let out = etcdctl(&cluster, 0, &root, &["--user", "alice:alice-pw", "put", "b", "x"]);
    assert!(output(&out).contains("permission denied"), "alice's login on root's certificate: {}", output(&out));
}

/// The load generator over TLS, logged in as a user (what `bench/compare --tls --auth` runs):
/// every request answered, none refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tally_bench_over_tls_as_a_user() {
    let pki = pki();
    let cluster = tls_cluster(1, &pki, false).await;
    let ca = path(&pki.ca.file);
    for args in [&["user", "add", "root:root-pw"][..], &["auth", "enable"]] {
        let out = etcdctl(&cluster, 0, &["--cacert", &ca], args);
        assert!(out.status.success(), "{args:?}: {}", output(&out));
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["bench", "--json", "--no-progress", "--total", "200", "--clients", "4", "--conns", "2"])
        .args(["--endpoints", &cluster.members[0].client_url(), "--cacert", &ca, "--user", "root:root-pw", "put"])
        .output()
        .expect("run tally bench");
    assert!(out.status.success(), "{}", output(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON report");
    assert_eq!((report["successes"].as_u64(), report["errors"].as_u64()), (Some(200), Some(0)), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_server_certificate_is_refused_by_the_client() {
    let pki = pki();
    let expired = pki.ca.expired_member("expired-server");
    // The member starts (its peers are not checked here: one member), but no client takes it.
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let url = format!("https://127.0.0.1:{port}");
    let peer_url = format!("http://127.0.0.1:{}", support::free_port());
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["server", "--listen-client-urls", &url, "--listen-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("default={peer_url}")])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--cert-file", &path(&expired.cert), "--key-file", &path(&expired.key)])
        .env("NO_COLOR", "1")
        .stderr(log)
        .spawn()
        .unwrap();
    let _stop = KillOnDrop(child);
    let ctl = Etcdctl { endpoints: url, command_timeout: "3s" };
    let ca = path(&pki.ca.file);
    let log_path = dir.path().join("log");
    let out = ctl.run(&["--cacert", &ca, "get", "k"]);
    assert!(!out.status.success(), "{}", output(&out));
    // etcdctl 3.4 only says the connection failed; the member logs the client's alert...
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("rejected client connection") && log.contains("BadCertificate"), "{log}");
    // ... and a rustls client names the reason.
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(client_config(&pki.ca.file, None, &[b"h2"]));
    let Err(err) = connector.connect(ServerName::try_from("127.0.0.1").unwrap(), stream).await else {
        panic!("a client took an expired certificate")
    };
    assert!(err.to_string().contains("certificate expired"), "{err}");
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_tls_serves_etcdctl_without_verification() {
    let dir = tempfile::tempdir().unwrap();
    // The test's own client presents an auto-tls certificate of its own and verifies nothing,
    // as a member does with another's.
    let flags = tally_server::tls::TlsFlags { auto_tls: true, ..Default::default() };
    let hosts = ["127.0.0.1".to_string()];
    let auto = tally_server::tls::AutoTls { dir: dir.path().to_path_buf(), hosts: &hosts, validity_years: 1 };
    let tls = tally_server::tls::Tls::from_flags(&flags, "", auto).unwrap().unwrap();
    let tls = ChannelConnector::new(tls.client_config(&[b"h2"], None).unwrap());
    let flags = ["--auto-tls", "--peer-auto-tls"].map(String::from).to_vec();
    let cluster = Cluster::start_with(3, Setup { scheme: "https", flags, tls: Some(tls), ..Setup::default() }).await;
    let skip = ["--insecure-transport=false", "--insecure-skip-tls-verify"];
    let out = etcdctl(&cluster, 1, &skip, &["put", "auto", "tls"]);
    assert!(out.status.success(), "{}{}", output(&out), cluster.logs());
    for i in 0..3 {
        let out = etcdctl(&cluster, i, &skip, &["get", "auto", "--print-value-only"]);
        assert_eq!(stdout(&out).trim(), "tls", "member {i}: {}", output(&out));
        for side in ["client", "peer"] {
            let fixtures = cluster.members[i].data_dir.join("fixtures").join(side);
            assert!(fixtures.join("cert.pem").is_file() && fixtures.join("key.pem").is_file(), "{side} of {i}");
        }
    }
    let ca = path(&cluster.members[0].data_dir.join("fixtures/client/cert.pem"));
    let out = etcdctl(&cluster, 1, &["--cacert", &ca], &["get", "auto"]);
    assert!(!out.status.success(), "another member's self-signed certificate verified: {}", output(&out));
}

/// Writes keys `w/<n>` through the members in turn until `stop`; records the acknowledged ones.
fn write_load(cluster: &Cluster, stop: Arc<AtomicBool>, acked: Arc<Mutex<Vec<String>>>) -> impl FnOnce() {
    let clients: Vec<_> = (0..cluster.len()).map(|i| cluster.kv(i)).collect();
    let task = tokio::spawn(async move {
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let key = format!("w/{n:06}");
            let mut client = clients[n as usize % clients.len()].clone();
            let mut req =
                tonic::Request::new(PutRequest { key: key.clone().into(), value: b"v".to_vec(), ..Default::default() });
            req.set_timeout(Duration::from_secs(3));
            if client.put(req).await.is_ok() {
                acked.lock().unwrap().push(key);
            }
            n += 1;
        }
    });
    move || task.abort()
}

fn acked_count(acked: &Mutex<Vec<String>>) -> usize {
    acked.lock().unwrap().len()
}

/// Whether member `i`'s peer port refuses a TLS connection made with `config`. (In TLS 1.3
/// the server checks the client's certificate after the client is done, so a refusal shows as
/// the connection closing; one that was taken stays open, waiting for a hello.)
async fn peer_refuses(cluster: &Cluster, i: usize, config: Arc<rustls::ClientConfig>) -> bool {
    use tokio::io::AsyncReadExt;
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", cluster.members[i].peer_port)).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(config);
    let Ok(mut tls) = connector.connect(ServerName::try_from("127.0.0.1").unwrap(), stream).await else { return true };
    let mut buf = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(2), tls.read(&mut buf)).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_peers_survive_a_leader_kill_and_a_certificate_rotation() {
    let pki = pki();
    let mut cluster = tls_cluster(3, &pki, true).await;
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop_load = write_load(&cluster, stop.clone(), acked.clone());
    let progress = |at_least: usize| {
        let acked = acked.clone();
        move || {
            let acked = acked.clone();
            async move { (acked_count(&acked) >= at_least).then_some(()) }
        }
    };
    eventually(Duration::from_secs(20), "30 writes", progress(30)).await;

    // kill -9 the leader under load: a new one is elected over TLS, writes go on.
    let old_leader = cluster.leader().await;
    cluster.kill9(old_leader);
    let at_kill = acked_count(&acked);
    eventually(Duration::from_secs(20), "30 writes after the kill", progress(at_kill + 30)).await;
    cluster.spawn(old_leader);
    cluster.wait_for_leader().await;

    // A follower forwards to the leader over a member channel (mutual TLS on client URLs).
    let follower = (cluster.leader().await + 1) % 3;
    let mut lease = LeaseClient::new(cluster.channel(follower));
    let granted = lease.lease_grant(LeaseGrantRequest { ttl: 60, id: 0 }).await.unwrap().into_inner();
    let ttl = lease.lease_time_to_live(LeaseTimeToLiveRequest { id: granted.id, keys: false }).await;
    assert!(ttl.is_ok_and(|r| r.into_inner().ttl > 0), "lease TTL through a follower{}", cluster.logs());

    // Rotation: new certificate files from the same CA. A running member presents the new one
    // at its next handshake, without a restart...
    let old_der = CertificateDer::from_pem_file(&pki.member.cert).unwrap();
    let rotated = pki.ca.member("member");
    let new_der = CertificateDer::from_pem_file(&rotated.cert).unwrap();
    assert_ne!(old_der, new_der);
    let config = client_config(&pki.ca.file, Some(&pki.alice), &[b"h2"]);
    let presented = eventually(Duration::from_secs(5), "the new certificate on a running member", || {
        let config = config.clone();
        let port = cluster.members[follower].client_port;
        let new_der = new_der.clone();
        async move {
            let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
            let tls = tokio_rustls::TlsConnector::from(config);
            let tls = tls.connect(ServerName::try_from("127.0.0.1").unwrap(), stream).await.ok()?;
            let cert = tls.get_ref().1.peer_certificates()?[0].clone();
            (cert == new_der).then_some(cert)
        }
    })
    .await;
    assert_eq!(presented, new_der);
    // ... and a restarted member makes new peer handshakes with it, while writes go on.
    let restarted = (cluster.leader().await + 2) % 3;
    cluster.kill9(restarted);
    cluster.spawn(restarted);
    let at_restart = acked_count(&acked);
    eventually(Duration::from_secs(20), "30 writes after the restart", progress(at_restart + 30)).await;
    cluster.wait_for_leader().await;

    // A peer without a client certificate, or with one from another CA, or in plaintext, is
    // refused with a log line; the cluster keeps serving. (The member's own certificate is
    // taken: the check sees a refusal, not just any closed connection.)
    let leader = cluster.leader().await;
    assert!(!peer_refuses(&cluster, leader, client_config(&pki.ca.file, Some(&rotated), &[])).await);
    let offset = cluster.log_len(leader);
    assert!(peer_refuses(&cluster, leader, client_config(&pki.ca.file, None, &[])).await);
    logged(&cluster, leader, offset, &["rejected peer connection", "remote_addr=", "peer sent no certificates"]).await;
    let stranger = pki.stranger.member("stranger-member");
    assert!(peer_refuses(&cluster, leader, client_config(&pki.ca.file, Some(&stranger), &[])).await);
    logged(&cluster, leader, offset, &["rejected peer connection", "UnknownIssuer"]).await;
    let mut plain = tokio::net::TcpStream::connect(("127.0.0.1", cluster.members[leader].peer_port)).await.unwrap();
    plain.write_all(b"\x00\x00\x00\x10not a tls hello!").await.unwrap();
    logged(&cluster, leader, offset, &["rejected peer connection", "corrupt message"]).await;
    let at_refusals = acked_count(&acked);
    eventually(Duration::from_secs(20), "30 writes after the refusals", progress(at_refusals + 30)).await;

    stop.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop_load();
    // Every acknowledged write is there, on every member.
    let acked = acked.lock().unwrap().clone();
    for i in 0..3 {
        let mut kv = cluster.kv(i);
        let range =
            RangeRequest { key: b"w/".to_vec(), range_end: b"w0".to_vec(), keys_only: true, ..Default::default() };
        let found: std::collections::HashSet<Vec<u8>> =
            kv.range(range).await.unwrap().into_inner().kvs.into_iter().map(|kv| kv.key).collect();
        let missing: Vec<&String> = acked.iter().filter(|k| !found.contains(k.as_bytes())).collect();
        assert!(missing.is_empty(), "member {i} lacks acknowledged writes {missing:?}{}", cluster.logs());
    }
}

/// The `etcd3` Python client (grpcio) with a CA and a client certificate: it works with them,
/// and without a client certificate it is refused. (tests/python/run.sh installs etcd3.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_etcd3_over_mutual_tls() {
    let import = std::process::Command::new("python3").args(["-c", "import etcd3"]).output();
    assert!(
        import.is_ok_and(|o| o.status.success()),
        "python3 with the etcd3 package is needed (tests/python/run.sh installs it with pip)"
    );
    let pki = pki();
    let cluster = tls_cluster(1, &pki, true).await;
    let script = r#"
import sys, etcd3
port, ca, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
client = etcd3.client(host="127.0.0.1", port=port, ca_cert=ca, cert_cert=cert, cert_key=key, timeout=5)
client.put("py/tls", "secret")
value, meta = client.get("py/tls")
assert value == b"secret", value
bare = etcd3.client(host="127.0.0.1", port=port, ca_cert=ca, timeout=3)
try:
    bare.get("py/tls")
except Exception as e:
    print("refused:", type(e).__name__)
else:
    sys.exit("a client without a certificate got an answer")
"#;
    let port = cluster.members[0].client_port.to_string();
    let out = std::process::Command::new("python3")
        .args(["-c", script, &port, &path(&pki.ca.file), &path(&pki.alice.cert), &path(&pki.alice.key)])
        .output()
        .expect("run python3");
    assert!(out.status.success(), "{}{}", output(&out), cluster.logs());
    assert!(stdout(&out).contains("refused:"), "{}", output(&out));
    logged(&cluster, 0, 0, &["rejected client connection", "peer sent no certificates"]).await;
}
