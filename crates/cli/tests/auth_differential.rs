//! Differential test of etcd's authentication: the same auth sequences (a script that walks
//! every rule once, then seeded random sequences over a small pool of users, roles, keys and
//! permissions) against a real etcd 3.5 member and a 3-member Tally cluster, both started with
//! `--auth-token simple --auth-token-ttl <s> --bcrypt-cost 4`; every answer must match (see
//! `auth_differential/exec.rs` for the normalisations). The script's steps are also checked
//! against what etcd 3.5.35 answers, so the script does what it claims.
//!
//! ```sh
//! cargo test -p tally --test auth_differential                    # script + seeds 0..100 x 30 ops
//! TALLY_AUTHDIFF_TARGET=etcd-vs-etcd cargo test -p tally --test auth_differential  # harness check
//! TALLY_AUTHDIFF_SEED=7 cargo test -p tally --test auth_differential auth_differential
//! ```
//!
//! Knobs: `TALLY_AUTHDIFF_SEEDS` (default 100), `TALLY_AUTHDIFF_FIRST_SEED`, `TALLY_AUTHDIFF_OPS`
//! (default 30), `TALLY_AUTHDIFF_KEEP_GOING=1` (every seed's first deviation, not just the first),
//! `TALLY_AUTHDIFF_TARGET=tally|etcd-vs-etcd` (what etcd is compared with; default tally),
//! `TALLY_DIFF_ETCD=/path/to/etcd`, `TALLY_AUTHDIFF_VERBOSE=1` (print the script's steps and answers).
//!
//! "revision of auth store is old" (`ErrAuthOldRevision`): with simple tokens etcd stamps a
//! request with the auth revision when it receives it and refuses it at apply time only if the
//! auth store changed in between, a race no sequential test provokes (a request sent after a
//! permission change is checked against the new permissions, which the script covers). JWT
//! tokens carry the revision they were issued at, which makes it deterministic:
//! `auth_jwt_old_revision` checks it.

#[path = "auth_differential/authgen.rs"]
mod authgen;
#[path = "auth_differential/exec.rs"]
mod exec;
#[allow(dead_code)] // Only `Rng` is used.
#[path = "differential/gen.rs"]
mod gen;
#[allow(dead_code)] // Only `pretty` and `diff` are used.
#[path = "differential/exec.rs"]
mod kvexec;
#[path = "auth_differential/ops.rs"]
mod ops;
#[path = "differential/procs.rs"]
mod procs;
#[path = "auth_differential/script.rs"]
mod script;

use std::time::Duration;

use exec::{Outcome, System};
use kvexec::{diff, pretty};
use ops::Step;
use script::Expect;

/// What etcd is compared with.
enum Other {
    Tally(procs::Tally),
    Etcd(procs::Etcd),
}

impl Other {
    async fn start(flags: &[&str]) -> Other {
        match std::env::var("TALLY_AUTHDIFF_TARGET").as_deref() {
            Ok("etcd-vs-etcd") => Other::Etcd(procs::Etcd::start_with(flags).await),
            Ok("tally") | Err(_) => Other::Tally(procs::Tally::start_with(3, flags).await),
            Ok(other) => panic!("TALLY_AUTHDIFF_TARGET={other}: expected tally or etcd-vs-etcd"),
        }
    }

    fn url(&self) -> &str {
        match self {
            Other::Tally(t) => &t.url,
            Other::Etcd(e) => &e.url,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Other::Tally(_) => "tally",
            Other::Etcd(_) => "etcd2",
        }
    }

    fn assert_running(&mut self) {
        match self {
            Other::Tally(t) => t.assert_running(),
            Other::Etcd(e) => e.assert_running(),
        }
    }
}

fn flags(ttl_secs: u32) -> Vec<String> {
    ["--auth-token", "simple", "--auth-token-ttl", &ttl_secs.to_string(), "--bcrypt-cost", "4"]
        .map(String::from)
        .to_vec()
}

struct Pair {
    etcd_proc: procs::Etcd,
    other_proc: Other,
    etcd: System,
    other: System,
}

impl Pair {
    async fn start(ttl_secs: u32) -> Pair {
        Pair::start_flags(flags(ttl_secs)).await
    }

    async fn start_flags(flags: Vec<String>) -> Pair {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let (etcd_proc, other_proc) = tokio::join!(procs::Etcd::start_with(&flags), Other::start(&flags));
        eprintln!("etcd at {}, {} at {}", etcd_proc.url, other_proc.name(), other_proc.url());
        let spare = || format!("http://127.0.0.1:{}", procs::free_port());
        let etcd = System::new(&etcd_proc.url, spare());
        let other = System::new(other_proc.url(), spare());
        Pair { etcd_proc, other_proc, etcd, other }
    }

    /// Runs `step` on both; `Err(report)` if the answers differ.
    async fn step(&mut self, what: &str, step: &Step) -> Result<Outcome, String> {
        let e = self.etcd.run(step).await;
        let o = self.other.run(step).await;
        if e == o {
            return Ok(e);
        }
        let name = self.other_proc.name();
        Err(format!(
            "DEVIATION at {what}\nwho: {:?}\nrequest: {}\netcd: {}\n{name}: {}\ndiffering lines:\n{}",
            step.who,
            pretty(&step.op),
            show(&e),
            show(&o),
            diff(&e, &o)
        ))
    }

    fn assert_running(&mut self) {
        self.etcd_proc.assert_running();
        self.other_proc.assert_running();
    }
}

fn show(o: &Outcome) -> String {
    match o {
        Ok(text) => text.clone(),
        Err((code, msg)) => format!("error {code:?}: {msg}"),
    }
}

/// Checks etcd's own answer against the script's expectation.
fn check_expect(index: usize, step: &Step, e: &Outcome, expect: &Expect) -> Result<(), String> {
    let ok = match (expect, e) {
        (Expect::Ok, Ok(_)) => true,
        (Expect::Err(msg), Err((_, got))) => got == msg,
        (Expect::Has(part), Ok(text)) => text.contains(part),
        _ => false,
    };
    if ok {
        return Ok(());
    }
    Err(format!(
        "etcd itself answered script step #{index} otherwise than the script expects ({expect:?}):\n\
         who: {:?}\nrequest: {}\netcd: {}",
        step.who,
        pretty(&step.op),
        show(e)
    ))
}

/// The header revision of a response (its first `revision:` line).
fn revision_of(o: &Outcome) -> Option<i64> {
    let text = o.as_ref().ok()?;
    text.lines().find_map(|l| l.trim().strip_prefix("revision: ")?.trim_end_matches(',').parse().ok())
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.trim().parse().unwrap_or_else(|_| panic!("{name}={v} is not a number")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_differential() {
    let mut pair = Pair::start(300).await;
    let one_seed = env_u64("TALLY_AUTHDIFF_SEED");

    // The script (not when replaying one seed).
    if one_seed.is_none() {
        // Every step is sent even after a failure, so that one run lists every problem.
        let script = script::script("script/");
        let mut failures = Vec::new();
        for (i, (step, expect)) in script.steps.iter().enumerate() {
            let result = pair.step(&format!("script step #{i}"), step).await;
            if std::env::var("TALLY_AUTHDIFF_VERBOSE").is_ok() {
                eprintln!("#{i} {:?} {:?}\n  -> {:?}", step.who, step.op, result.as_ref().map(show));
            }
            match result {
                Ok(e) => failures.extend(check_expect(i, step, &e, expect).err()),
                Err(r) => failures.push(r),
            }
        }
        pair.assert_running();
        assert!(failures.is_empty(), "{} script failure(s):\n{}", failures.len(), failures.join("\n"));
        eprintln!("script: {} steps agree", script.steps.len());
    }

    let (first, count) = match one_seed {
        Some(seed) => (seed, 1),
        None => (env_u64("TALLY_AUTHDIFF_FIRST_SEED").unwrap_or(0), env_u64("TALLY_AUTHDIFF_SEEDS").unwrap_or(100)),
    };
    let ops = env_u64("TALLY_AUTHDIFF_OPS").unwrap_or(30) as usize;
    let keep_going = std::env::var("TALLY_AUTHDIFF_KEEP_GOING").is_ok();
    let mut deviations = Vec::new();
    let mut revision = 1;
    let started = std::time::Instant::now();
    let mut outcomes = std::collections::BTreeMap::new();
    'seeds: for seed in first..first + count {
        let mut gen = authgen::AuthGen::new(seed);
        gen.revision = revision;
        let prelude = gen.prelude();
        let mut index = 0;
        let mut next = |gen: &mut authgen::AuthGen| {
            index += 1;
            if index <= prelude.len() {
                (format!("seed {seed}, prelude step #{}", index - 1), prelude[index - 1].clone())
            } else {
                (format!("seed {seed}, op #{}", index - 1 - prelude.len()), gen.next())
            }
        };
        for _ in 0..prelude.len() + ops {
            let (what, step) = next(&mut gen);
            match pair.step(&what, &step).await {
                Ok(e) => {
                    let kind = e.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|(_, m)| m.clone());
                    *outcomes.entry(kind).or_insert(0usize) += 1;
                    if let Some(r) = revision_of(&e) {
                        revision = revision.max(r);
                        gen.revision = revision;
                    }
                }
                Err(r) => {
                    let r = format!(
                        "{r}\nreplay: TALLY_AUTHDIFF_SEED={seed} cargo test -p tally --test auth_differential auth_differential\n"
                    );
                    eprintln!("{r}");
                    deviations.push(r);
                    if keep_going {
                        continue 'seeds;
                    }
                    break 'seeds;
                }
            }
        }
        pair.assert_running();
    }
    eprintln!("{count} seeds x {ops} ops (plus preludes) in {:?}; etcd's answers: {outcomes:#?}", started.elapsed());
    assert!(deviations.is_empty(), "{} deviation(s); the first:\n{}", deviations.len(), deviations[0]);
}

/// Simple tokens expire after `--auth-token-ttl` without use; every use starts the TTL anew
/// (etcd's `simpleTokenTTLKeeper` resets the deadline on each check, and sweeps expired tokens
/// every second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_token_expiry() {
    use ops::*;
    let mut pair = Pair::start(2).await;
    let (anon, alice) = (Who::Anon, user("alice"));
    let k = b"ttl/a";
    let setup = [
        user_add("root", script::ROOT_PW),
        role_add("root"),
        grant_role("root", "root"),
        user_add("alice", "pw"),
        role_add("reader"),
        grant_perm("reader", tally_proto::authpb::permission::Type::Read, b"ttl/", b"ttl0"),
        grant_role("alice", "reader"),
        Op::AuthEnable,
        authenticate("alice", "pw"),
    ];
    for (i, op) in setup.into_iter().enumerate() {
        let step = Step { who: anon.clone(), op };
        let e = pair.step(&format!("setup #{i}"), &step).await.unwrap_or_else(|r| panic!("{r}"));
        check_expect(i, &step, &e, &Expect::Ok).unwrap_or_else(|r| panic!("{r}"));
    }
    let read = Step { who: alice.clone(), op: get(k, b"") };
    // Used every second for 5 s: twice the TTL, still valid.
    for i in 0..5 {
        let e = pair.step(&format!("read #{i} while in use"), &read).await.unwrap_or_else(|r| panic!("{r}"));
        check_expect(i, &read, &e, &Expect::Ok).unwrap_or_else(|r| panic!("{r}"));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Unused for TTL + the sweep's second + margin: gone.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let expired = [
        (read.clone(), Expect::Err(script::INVALID_TOKEN)),
        (Step { who: alice.clone(), op: watch(k, b"") }, Expect::Ok), // canceled, "invalid auth token"
        (Step { who: anon.clone(), op: authenticate("alice", "pw") }, Expect::Ok),
        (read.clone(), Expect::Ok),
    ];
    for (i, (step, expect)) in expired.iter().enumerate() {
        let e = pair.step(&format!("after expiry #{i}"), step).await.unwrap_or_else(|r| panic!("{r}"));
        check_expect(i, step, &e, expect).unwrap_or_else(|r| panic!("{r}"));
        if i == 1 {
            let text = e.as_ref().expect("watch answered");
            assert!(text.contains("canceled: true") && text.contains(script::INVALID_TOKEN), "{text}");
        }
    }
    pair.assert_running();
}

/// JWT tokens (`--auth-token jwt,...`, an RSA key pair made by openssl) carry the auth revision
/// they were issued at, and etcd refuses a token older than the auth store: after any auth
/// change, even one that does not concern the user, its next request gets "revision of auth
/// store is old" until it authenticates again; admin-only calls (AuthStatus, AuthDisable, user
/// and role management) do not look at the revision. (Simple tokens are checked at the current
/// revision instead; see the module comment.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_jwt_old_revision() {
    use ops::*;
    let keys = tempfile::Builder::new().prefix("tally-authdiff-jwt-").tempdir().expect("temp dir");
    let (private, public) = (keys.path().join("priv.pem"), keys.path().join("pub.pem"));
    for args in [
        vec!["genrsa".to_string(), "-out".into(), private.display().to_string(), "2048".into()],
        vec![
            "rsa".into(),
            "-in".into(),
            private.display().to_string(),
            "-pubout".into(),
            "-out".into(),
            public.display().to_string(),
        ],
    ] {
        let out =
            std::process::Command::new("openssl").args(&args).output().expect("openssl is needed for the JWT test");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let jwt = format!("jwt,pub-key={},priv-key={},sign-method=RS256,ttl=5m", public.display(), private.display());
    let mut pair = Pair::start_flags(vec!["--auth-token".into(), jwt, "--bcrypt-cost".into(), "4".into()]).await;
    let (anon, root, alice) = (Who::Anon, user("root"), user("alice"));
    let old = "etcdserver: revision of auth store is old";
    let steps = [
        (anon.clone(), user_add("root", script::ROOT_PW), Expect::Ok),
        (anon.clone(), role_add("root"), Expect::Ok),
        (anon.clone(), grant_role("root", "root"), Expect::Ok),
        (anon.clone(), user_add("alice", "pw"), Expect::Ok),
        (anon.clone(), role_add("reader"), Expect::Ok),
        (anon.clone(), grant_perm("reader", tally_proto::authpb::permission::Type::Read, b"jwt/", b"jwt0"), Expect::Ok),
        (anon.clone(), grant_role("alice", "reader"), Expect::Ok),
        (anon.clone(), Op::AuthEnable, Expect::Ok),
        (anon.clone(), authenticate("alice", "pw"), Expect::Has("token: \"<jwt>\"")),
        (anon.clone(), authenticate("root", script::ROOT_PW), Expect::Has("token: \"<jwt>\"")),
        (alice.clone(), get(b"jwt/a", b""), Expect::Ok),
        (Who::Bogus("a.b.c"), get(b"jwt/a", b""), Expect::Err(script::INVALID_TOKEN)),
        // An auth change that has nothing to do with alice.
        (root.clone(), role_add("other"), Expect::Ok),
        (alice.clone(), get(b"jwt/a", b""), Expect::Err(old)),
        (alice.clone(), put(b"jwt/a", b"v"), Expect::Err(old)),
        (alice.clone(), watch(b"jwt/a", b""), Expect::Has("desc = etcdserver: revision of auth store is old")),
        // Admin-only calls check the user's root role, not the token's revision: root's old token
        // still works for them.
        (root.clone(), Op::AuthStatus, Expect::Ok),
        (anon.clone(), authenticate("alice", "pw"), Expect::Ok),
        (alice.clone(), get(b"jwt/a", b""), Expect::Ok),
        (anon.clone(), authenticate("root", script::ROOT_PW), Expect::Ok),
        (root.clone(), user_delete("alice"), Expect::Ok),
        (anon.clone(), authenticate("alice", "pw"), Expect::Err(script::AUTH_FAILED)),
        (root.clone(), Op::AuthDisable, Expect::Ok),
    ];
    let mut failures = Vec::new();
    for (i, (who, op, expect)) in steps.into_iter().enumerate() {
        let step = Step { who, op };
        match pair.step(&format!("jwt step #{i}"), &step).await {
            Ok(e) => failures.extend(check_expect(i, &step, &e, &expect).err()),
            Err(r) => failures.push(r),
        }
    }
    pair.assert_running();
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));
}
