//! etcdctl (etcd 3.4's, Debian package `etcd-client`) against a 3-member Tally cluster: the
//! commands a person types, checked against the output etcd itself prints.

mod support;

use serde_json::Value;
use support::etcdctl::Etcdctl;
use support::Cluster;

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn int(v: &Value, what: &str) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("{what} is not an integer: {v}"))
}

#[test]
fn base64_matches_etcdctl() {
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(b"bar2"), "YmFyMg==");
    assert_eq!(base64(b"ab"), "YWI=");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_against_a_three_member_cluster() {
    let mut cluster = Cluster::start(3).await;
    let ctl = Etcdctl::new(cluster.etcdctl_endpoints());

    // put: the store starts at revision 1, each put makes one more.
    assert_eq!(ctl.ok(&["put", "a", "1"]), "OK\n"); // revision 2
    assert_eq!(ctl.ok(&["put", "a", "2"]), "OK\n"); // 3
    assert_eq!(ctl.ok(&["put", "ab", "x"]), "OK\n"); // 4
    assert_eq!(ctl.ok(&["put", "b", "y"]), "OK\n"); // 5

    // get: plain, --prefix, --rev.
    assert_eq!(ctl.ok(&["get", "a"]), "a\n2\n");
    assert_eq!(ctl.ok(&["get", "a", "--prefix"]), "a\n2\nab\nx\n");
    assert_eq!(ctl.ok(&["get", "a", "--rev=2"]), "a\n1\n");
    assert_eq!(ctl.ok(&["get", "ab", "--rev=3"]), "", "ab did not exist yet at revision 3");
    assert_eq!(ctl.ok(&["get", "missing"]), "");

    // get -w json, field by field.
    let j = ctl.json(&["get", "a", "-w", "json"]);
    assert_eq!(int(&j["header"]["revision"], "header.revision"), 5, "{j}");
    assert_eq!(int(&j["count"], "count"), 1, "{j}");
    let kvs = j["kvs"].as_array().unwrap_or_else(|| panic!("no kvs: {j}"));
    assert_eq!(kvs.len(), 1, "{j}");
    assert_eq!(kvs[0]["key"], base64(b"a"), "{j}");
    assert_eq!(kvs[0]["value"], base64(b"2"), "{j}");
    assert_eq!(int(&kvs[0]["create_revision"], "create_revision"), 2, "{j}");
    assert_eq!(int(&kvs[0]["mod_revision"], "mod_revision"), 3, "{j}");
    assert_eq!(int(&kvs[0]["version"], "version"), 2, "{j}");
    let member_id = j["header"]["member_id"].as_u64().expect("header.member_id");
    assert!(cluster.index_of(member_id).is_some(), "header.member_id {member_id:x} is not a member: {j}");
    assert!(j["header"]["cluster_id"].as_u64().is_some_and(|id| id != 0), "{j}");
    assert!(int(&j["header"]["raft_term"], "raft_term") >= 1, "{j}");

    let j = ctl.json(&["get", "a", "--prefix", "-w", "json"]);
    assert_eq!(int(&j["count"], "count"), 2, "{j}");
    let kvs = j["kvs"].as_array().expect("kvs");
    assert_eq!(kvs[1]["key"], base64(b"ab"), "{j}");
    assert_eq!(int(&kvs[1]["create_revision"], "create_revision"), 4, "{j}");
    assert_eq!(int(&kvs[1]["mod_revision"], "mod_revision"), 4, "{j}");
    assert_eq!(int(&kvs[1]["version"], "version"), 1, "{j}");

    // etcdctl 3.4 has no --count-only (3.5 added it; count_only is checked by the etcd-client
    // and differential tests): the "fields" format shows the count, here with --keys-only.
    let out = ctl.ok(&["get", "a", "--prefix", "--keys-only", "-w", "fields"]);
    assert!(out.lines().any(|l| l == "\"Count\" : 2"), "keys-only output: {out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("\"Key\"")).count(), 2, "keys-only output: {out}");
    let values: Vec<&str> = out.lines().filter(|l| l.starts_with("\"Value\"")).collect();
    assert_eq!(values, ["\"Value\" : \"\""; 2], "keys-only output has values: {out}");

    // del prints how many keys it deleted.
    assert_eq!(ctl.ok(&["del", "b"]), "1\n"); // revision 6
    assert_eq!(ctl.ok(&["del", "b"]), "0\n"); // nothing deleted: no new revision
    assert_eq!(ctl.ok(&["get", "b"]), "");
    assert_eq!(ctl.ok(&["get", "b", "--rev=5"]), "b\ny\n");
    let j = ctl.json(&["get", "a", "-w", "json"]);
    assert_eq!(int(&j["header"]["revision"], "header.revision"), 6, "{j}");

    // txn, interactive form on stdin: compares, blank line, success ops, blank, failure ops.
    let out = ctl.ok_with(&["txn"], "value(\"a\") = \"2\"\nversion(\"a\") = \"2\"\n\nput t yes\nget a\n\nput t no\n\n");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"SUCCESS"), "txn output: {out}");
    assert_eq!(out, "SUCCESS\n\nOK\n\na\n2\n", "txn output");
    assert_eq!(ctl.ok(&["get", "t"]), "t\nyes\n"); // revision 7

    let out = ctl.ok_with(&["txn"], "mod(\"a\") > \"100\"\n\nput t yes\n\nput t no\nput u 1\n\n");
    assert_eq!(out.lines().next(), Some("FAILURE"), "txn output: {out}");
    assert_eq!(out, "FAILURE\n\nOK\n\nOK\n", "txn output");
    assert_eq!(ctl.ok(&["get", "t"]), "t\nno\n");
    assert_eq!(ctl.ok(&["get", "u"]), "u\n1\n"); // the failure branch is one revision: 8

    let out = ctl.ok_with(&["txn"], "create(\"a\") = \"2\"\nmod(\"ab\") < \"5\"\n\ndel ab\n\n\n");
    assert_eq!(out, "SUCCESS\n\n1\n", "txn output"); // revision 9
    assert_eq!(ctl.ok(&["get", "ab"]), "");
    let j = ctl.json(&["get", "t", "-w", "json"]);
    assert_eq!(int(&j["header"]["revision"], "header.revision"), 9, "{j}");
    assert_eq!(int(&j["kvs"][0]["version"], "version"), 2, "{j}");
    assert_eq!(int(&j["kvs"][0]["mod_revision"], "mod_revision"), 8, "{j}");

    // compaction: reads below it fail with etcd's message, reads at it still work.
    assert_eq!(ctl.ok(&["compaction", "4"]), "compacted revision 4\n");
    let out = ctl.run_with(&["get", "a", "--rev=3"], "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a read below the compaction succeeded: {}", String::from_utf8_lossy(&out.stdout));
    assert!(
        stderr.contains("etcdserver: mvcc: required revision has been compacted"),
        "unexpected error for a compacted revision: {stderr}"
    );
    assert_eq!(ctl.ok(&["get", "a", "--rev=4"]), "a\n2\n");
    let out = ctl.run_with(&["compaction", "4"], "");
    assert!(!out.status.success(), "compacting the same revision twice succeeded");
    assert!(String::from_utf8_lossy(&out.stderr).contains("etcdserver: mvcc: required revision has been compacted"));
    let out = ctl.run_with(&["compaction", "100"], "");
    assert!(!out.status.success(), "compacting a future revision succeeded");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("etcdserver: mvcc: required revision is a future revision"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // member list: "id, started, name, peer URLs, client URLs, is learner", one line a member.
    // Client URLs of peers are learned when they connect, so poll briefly for complete lines.
    let expected: Vec<(String, String, String)> =
        cluster.members.iter().map(|m| (m.name.clone(), m.peer_url(), m.client_url())).collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let list = loop {
        let out = ctl.ok(&["member", "list"]);
        let complete = expected.iter().all(|(name, peer, client)| {
            out.lines().any(|l| l.contains(&format!(", started, {name}, {peer}, {client}, false")))
        });
        if complete || std::time::Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(list.lines().count(), 3, "member list: {list}");
    for (i, (name, peer, client)) in expected.iter().enumerate() {
        let want = format!("{:x}, started, {name}, {peer}, {client}, false", cluster.id(i));
        assert!(list.lines().any(|l| l == want), "member list lacks the line {want:?}:\n{list}");
    }

    // endpoint status: one line per endpoint, exactly one of them the leader.
    let out = ctl.ok(&["endpoint", "status"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "endpoint status: {out}");
    let mut leaders = 0;
    for (i, m) in cluster.members.iter().enumerate() {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("{}, ", m.endpoint())))
            .unwrap_or_else(|| panic!("no status line for {}: {out}", m.endpoint()));
        let fields: Vec<&str> = line.split(", ").collect();
        assert_eq!(fields[1], format!("{:x}", cluster.id(i)), "{line}");
        assert_eq!(fields[2], "3.5.35", "{line}");
        match fields[4] {
            "true" => leaders += 1,
            "false" => {}
            other => panic!("is-leader column is {other:?}: {line}"),
        }
        assert_eq!(fields[5], "false", "is-learner: {line}");
    }
    assert_eq!(leaders, 1, "endpoint status must show exactly one leader:\n{out}");
    let leader = cluster.leader().await;
    assert!(
        out.lines().any(|l| l.starts_with(&format!(
            "{}, {:x}, 3.5.35, ",
            cluster.members[leader].endpoint(),
            cluster.id(leader)
        )) && l.contains(", true, false, ")),
        "the leader line is not the leader's ({:x}):\n{out}",
        cluster.id(leader)
    );
    cluster.assert_running();
}
