//! etcdctl 3.5.35 (the reference one, from `scripts/etcd-ref`) with `--user`: users, roles,
//! prefix permissions, `auth enable`, a limited user allowed and refused, `auth disable`; every
//! command's exact stdout and, for refused ones, its exact `Error:` line, as etcd 3.5.35 prints
//! them. Generic over the server:
//!
//! ```sh
//! TALLY_AUTH_TARGET=etcd cargo test -p tally --test auth_etcdctl    # etcd 3.5.35 only
//! TALLY_AUTH_TARGET=tally cargo test -p tally --test auth_etcdctl   # a 3-member Tally cluster
//! cargo test -p tally --test auth_etcdctl                           # both (the default)
//! ```

#[allow(dead_code)]
#[path = "differential/procs.rs"]
mod procs;

use std::process::Command;

/// The server flags both kinds get.
const FLAGS: &[&str] = &["--auth-token", "simple", "--bcrypt-cost", "4"];

/// "A cluster" of either kind: its etcdctl endpoints, kept alive by `_procs`.
struct Target {
    name: &'static str,
    endpoints: String,
    _procs: Box<dyn std::any::Any + Send>,
}

async fn start(kind: &str) -> Target {
    let host = |url: &str| url.trim_start_matches("http://").to_string();
    match kind {
        "etcd" => {
            let e = procs::Etcd::start_with(FLAGS).await;
            Target { name: "etcd", endpoints: host(&e.url), _procs: Box::new(e) }
        }
        "tally" => {
            let t = procs::Tally::start_with(3, FLAGS).await;
            let endpoints = t.urls.iter().map(|u| host(u)).collect::<Vec<_>>().join(",");
            Target { name: "tally", endpoints, _procs: Box::new(t) }
        }
        other => panic!("TALLY_AUTH_TARGET: unknown target {other} (etcd, tally or both)"),
    }
}

/// The targets chosen by `TALLY_AUTH_TARGET` (etcd, tally or both; default both).
fn targets() -> Vec<&'static str> {
    match std::env::var("TALLY_AUTH_TARGET").as_deref() {
        Ok("etcd") => vec!["etcd"],
        Ok("tally") => vec!["tally"],
        Ok("both") | Err(_) => vec!["etcd", "tally"],
        Ok(other) => panic!("TALLY_AUTH_TARGET={other}: expected etcd, tally or both"),
    }
}

fn etcdctl() -> std::path::PathBuf {
    procs::etcd_binary().with_file_name("etcdctl")
}

/// One etcdctl run: exit success, stdout, and the `Error: ...` line of stderr if any (etcdctl
/// also logs its client's retries as JSON lines there, with timestamps: not compared).
fn run(endpoints: &str, user: Option<&str>, args: &[&str]) -> (bool, String, Option<String>) {
    let mut cmd = Command::new(etcdctl());
    cmd.env("ETCDCTL_API", "3").arg(format!("--endpoints={endpoints}"));
    cmd.args(["--dial-timeout=3s", "--command-timeout=10s"]);
    if let Some(u) = user {
        cmd.arg(format!("--user={u}"));
    }
    let out = cmd.args(args).output().expect("run etcdctl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let error = stderr.lines().find(|l| l.starts_with("Error:")).map(str::to_string);
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), error)
}

const ROOT: Option<&str> = Some("root:rootpw");
const ALICE: Option<&str> = Some("alice:alicepw");

/// (user, args, stdout, error line): `None` error means the command must succeed.
type Case = (Option<&'static str>, &'static [&'static str], &'static str, Option<&'static str>);

const CASES: &[Case] = &[
    (None, &["user", "add", "root", "--new-user-password=rootpw"], "User root created\n", None),
    (None, &["user", "add", "alice", "--new-user-password=alicepw"], "User alice created\n", None),
    (None, &["role", "add", "app"], "Role app created\n", None),
    (None, &["role", "grant-permission", "app", "readwrite", "app/", "--prefix"], "Role app updated\n", None),
    (None, &["role", "grant-permission", "app", "read", "cfg"], "Role app updated\n", None),
    (None, &["role", "grant-permission", "app", "write", "log/", "--from-key"], "Role app updated\n", None),
    (None, &["user", "grant-role", "alice", "app"], "Role app is granted to user alice\n", None),
    (None, &["user", "grant-role", "alice", "nosuch"], "", Some("Error: etcdserver: role name not found")),
    (
        None,
        &["role", "get", "app"],
        "Role app\nKV Read:\n\t[app/, app0) (prefix app/)\n\tcfg\nKV Write:\n\t[app/, app0) (prefix app/)\n\t[log/, <open ended>\n",
        None,
    ),
    (None, &["user", "get", "alice"], "User: alice\nRoles: app\n", None),
    (None, &["user", "list"], "alice\nroot\n", None),
    (None, &["role", "list"], "app\n", None),
    (None, &["put", "cfg", "c1"], "OK\n", None),
    (None, &["put", "secret", "s1"], "OK\n", None),
    // There is no root role yet: etcdctl's `auth enable` makes it and grants it to root itself
    // (AuthEnable fails with "root user does not have root role" and etcdctl retries).
    (None, &["auth", "enable"], "Authentication Enabled\n", None),
    (None, &["role", "list"], "", Some("Error: etcdserver: user name is empty")),
    (ROOT, &["role", "list"], "app\nroot\n", None),
    // 10 successful auth changes so far (the failed grant-role and AuthEnable count none).
    (ROOT, &["auth", "status"], "Authentication Status: true\nAuthRevision: 10\n", None),
    (None, &["--user=alice", "--password=alicepw", "get", "cfg"], "cfg\nc1\n", None),
    (None, &["get", "cfg"], "", Some("Error: etcdserver: user name is empty")),
    (ALICE, &["put", "app/x", "1"], "OK\n", None),
    (ALICE, &["get", "app/", "--prefix"], "app/x\n1\n", None),
    (ALICE, &["get", "cfg"], "cfg\nc1\n", None),
    (ALICE, &["put", "cfg", "c2"], "", Some("Error: etcdserver: permission denied")),
    (ALICE, &["put", "log/1", "l"], "OK\n", None),
    (ALICE, &["get", "log/1"], "", Some("Error: etcdserver: permission denied")),
    (ALICE, &["get", "secret"], "", Some("Error: etcdserver: permission denied")),
    (ALICE, &["get", "", "--from-key"], "", Some("Error: etcdserver: permission denied")),
    (ALICE, &["del", "app/x"], "1\n", None),
    (ALICE, &["user", "list"], "", Some("Error: etcdserver: permission denied")),
    (ALICE, &["auth", "disable"], "", Some("Error: etcdserver: permission denied")),
    (Some("alice:wrong"), &["get", "cfg"], "", Some("Error: etcdserver: authentication failed, invalid user ID or password")),
    (Some("nobody:x"), &["get", "cfg"], "", Some("Error: etcdserver: authentication failed, invalid user ID or password")),
    (ROOT, &["get", "secret"], "secret\ns1\n", None),
    (ROOT, &["role", "revoke-permission", "app", "cfg"], "Permission of key cfg is revoked from role app\n", None),
    (ALICE, &["get", "cfg"], "", Some("Error: etcdserver: permission denied")),
    (ROOT, &["role", "revoke-permission", "app", "cfg"], "", Some("Error: etcdserver: permission is not granted to the role")),
    (ROOT, &["user", "revoke-role", "alice", "app"], "Role app is revoked from user alice\n", None),
    (ALICE, &["put", "app/y", "1"], "", Some("Error: etcdserver: permission denied")),
    (ROOT, &["user", "delete", "root"], "", Some("Error: etcdserver: invalid auth management")),
    (ROOT, &["user", "delete", "alice"], "User alice deleted\n", None),
    (ALICE, &["get", "cfg"], "", Some("Error: etcdserver: authentication failed, invalid user ID or password")),
    (ROOT, &["auth", "disable"], "Authentication Disabled\n", None),
    (None, &["get", "secret"], "secret\ns1\n", None),
    (None, &["auth", "disable"], "Authentication Disabled\n", None),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_with_user() {
    let mut failures = Vec::new();
    for kind in targets() {
        let target = start(kind).await;
        for (i, &(user, args, stdout, error)) in CASES.iter().enumerate() {
            let (ok, out, err) = run(&target.endpoints, user, args);
            let want_ok = error.is_none();
            if ok != want_ok || out != stdout || err.as_deref() != error {
                failures.push(format!(
                    "{}: case #{i} etcdctl --user={user:?} {args:?}\n  want: ok={want_ok} stdout={stdout:?} error={error:?}\n  got:  ok={ok} stdout={out:?} error={err:?}",
                    target.name
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatch(es):\n{}", failures.len(), failures.join("\n"));
}
