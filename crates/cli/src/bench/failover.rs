//! `tally bench failover`: how long a cluster is unavailable for writes when its leader dies.
//!
//! Under a steady closed-loop write load (`--clients` tasks over every endpoint), each round:
//! waits until every member agrees on a leader and has applied what the leader had committed;
//! waits a random 0.5-1.5 × `--settle-ms`; runs `--kill-cmd` for the leader; from the moment the
//! kill command has returned, sends a probe put to a surviving member every
//! `--probe-interval-ms` (each probe with its own timeout, so one stuck request delays nothing);
//! the round's recovery time is from the kill to the first acknowledged probe. A write sent after
//! the leader died can only be acknowledged once a new leader has committed it. Then it runs
//! `--restart-cmd` for the killed member and waits until it has caught up.
//!
//! The commands run under `sh -c`, with `{index}` (the member's 0-based position in
//! `--endpoints`) and `{endpoint}` substituted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};
use tally_proto::etcdserverpb::kv_client::KvClient;
use tally_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use tally_proto::etcdserverpb::{PutRequest, StatusRequest, StatusResponse};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tonic::transport::Channel;

use super::{endpoint, key_bytes, value_bytes, Rng};

#[derive(Args)]
pub struct FailoverArgs {
    /// Shell command that kills a member ({index} and {endpoint} are substituted).
    #[arg(long)]
    kill_cmd: String,
    /// Shell command that starts the killed member again ({index} and {endpoint} are substituted).
    #[arg(long)]
    restart_cmd: String,
    /// Leader kills.
    #[arg(long, default_value_t = 30)]
    rounds: usize,
    /// Milliseconds between probe writes after the kill.
    #[arg(long, default_value_t = 5)]
    probe_interval_ms: u64,
    /// Mean wait, in milliseconds, between a settled cluster and the next kill.
    #[arg(long, default_value_t = 1000)]
    settle_ms: u64,
    /// Value size of the load's and the probes' puts.
    #[arg(long, default_value_t = 256)]
    val_size: usize,
    /// Give up on a round (recovery or catch-up) after this many seconds.
    #[arg(long, default_value_t = 60)]
    round_timeout_s: u64,
}

fn substitute(cmd: &str, index: usize, ep: &str) -> String {
    cmd.replace("{index}", &index.to_string()).replace("{endpoint}", ep)
}

async fn shell(cmd: &str) -> Result<(), String> {
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .status()
        .await
        .map_err(|e| format!("cannot run `{cmd}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{cmd}` failed: {status}"))
    }
}

async fn status(ch: &Channel) -> Option<StatusResponse> {
    let mut client = MaintenanceClient::new(ch.clone());
    match tokio::time::timeout(Duration::from_millis(500), client.status(StatusRequest {})).await {
        Ok(Ok(resp)) => Some(resp.into_inner()),
        _ => None,
    }
}

fn member_id(s: &StatusResponse) -> u64 {
    s.header.as_ref().map_or(0, |h| h.member_id)
}

/// Every member's status, or None for those that do not answer.
async fn statuses(channels: &[Channel]) -> Vec<Option<StatusResponse>> {
    let mut out = Vec::new();
    for ch in channels {
        out.push(status(ch).await);
    }
    out
}

/// The position of the leader, if every member answers and all agree on it.
fn agreed_leader(all: &[Option<StatusResponse>]) -> Option<usize> {
    let first = all.first()?.as_ref()?.leader;
    if first == 0 || all.iter().any(|s| s.as_ref().is_none_or(|s| s.leader != first)) {
        return None;
    }
    all.iter().position(|s| s.as_ref().is_some_and(|s| member_id(s) == first))
}

/// Waits until all members agree on a leader and every one has applied the index the leader had
/// committed when they first agreed. Returns the leader's position and term.
async fn wait_settled(channels: &[Channel], timeout: Duration) -> Result<(usize, u64), String> {
    let deadline = Instant::now() + timeout;
    let mut target = None;
    loop {
        let all = statuses(channels).await;
        if let Some(leader) = agreed_leader(&all) {
            let leader_status = all[leader].as_ref().expect("agreed members answered");
            match target {
                None => target = Some(leader_status.raft_index),
                Some(t) if all.iter().flatten().all(|s| s.raft_applied_index >= t) => {
                    return Ok((leader, leader_status.raft_term))
                }
                Some(_) => {}
            }
        }
        if Instant::now() > deadline {
            let seen: Vec<String> = all
                .iter()
                .map(|s| match s {
                    Some(s) => format!("leader {:x} applied {}", s.leader, s.raft_applied_index),
                    None => "no answer".into(),
                })
                .collect();
            return Err(format!("cluster did not settle within {timeout:?}: {}", seen.join("; ")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until member `index` answers and has applied what the leader had committed when it
/// first answered.
async fn wait_caught_up(channels: &[Channel], index: usize, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut target = None;
    loop {
        if let Some(me) = status(&channels[index]).await {
            if target.is_none() && me.leader != 0 {
                for (i, ch) in channels.iter().enumerate() {
                    if i != index {
                        if let Some(s) = status(ch).await.filter(|s| member_id(s) == s.leader) {
                            target = Some(s.raft_index);
                        }
                    }
                }
            }
            if target.is_some_and(|t| me.raft_applied_index >= t) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!("member {index} did not catch up within {timeout:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The steady closed-loop write load. Returns the number of acknowledged and failed puts.
fn steady_load(
    channels: &[Channel],
    clients: usize,
    value: Arc<Vec<u8>>,
    timeout: Duration,
    stop: Arc<AtomicBool>,
) -> (JoinSet<()>, Arc<AtomicU64>, Arc<AtomicU64>) {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut set = JoinSet::new();
    for c in 0..clients {
        let mut kv = KvClient::new(channels[c % channels.len()].clone());
        let (ok, failed, value, stop) = (ok.clone(), failed.clone(), value.clone(), stop.clone());
        set.spawn(async move {
            let mut rng = Rng::new(c as u64 + 1);
            while !stop.load(Ordering::Relaxed) {
                let put =
                    PutRequest { key: key_bytes(rng.below(10_000), 8), value: (*value).clone(), ..Default::default() };
                match tokio::time::timeout(timeout, kv.put(put)).await {
                    Ok(Ok(_)) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        // A dead member refuses connections at once; do not spin on it.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        });
    }
    (set, ok, failed)
}

/// Sends a probe put to a survivor every `every` until one is acknowledged; returns when.
async fn first_ack(
    survivors: &[Channel],
    every: Duration,
    value: Arc<Vec<u8>>,
    timeout: Duration,
) -> Result<Instant, String> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let mut probes = JoinSet::new();
    let deadline = Instant::now() + timeout;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    loop {
        tokio::select! {
            acked = rx.recv() => {
                probes.abort_all();
                return acked.ok_or_else(|| "probe channel closed".to_string());
            }
            _ = tick.tick() => {
                if Instant::now() > deadline {
                    probes.abort_all();
                    return Err(format!("no write was acknowledged within {timeout:?}"));
                }
                let mut kv = KvClient::new(survivors[n as usize % survivors.len()].clone());
                let (tx, value) = (tx.clone(), value.clone());
                let key = format!("failover-probe-{n}").into_bytes();
                probes.spawn(async move {
                    let put = PutRequest { key, value: (*value).clone(), ..Default::default() };
                    if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(5), kv.put(put)).await {
                        let _ = tx.send(Instant::now());
                    }
                });
                n += 1;
            }
        }
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    // Nearest rank.
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn distribution(values: &[f64]) -> Value {
    if values.is_empty() {
        return json!({"count": 0});
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    json!({
        "count": v.len(),
        "min": v[0],
        "median": quantile(&v, 0.5),
        "p90": quantile(&v, 0.9),
        "max": v[v.len() - 1],
        "mean": v.iter().sum::<f64>() / v.len() as f64,
    })
}

pub async fn run(
    args: FailoverArgs,
    endpoints: &[String],
    clients: usize,
    timeout_ms: u64,
    json_out: bool,
) -> Result<(), String> {
    if endpoints.len() < 3 {
        return Err("failover needs at least 3 endpoints".into());
    }
    // One channel per member for status and probes, one per member for the load.
    let mut channels = Vec::new();
    let mut load_channels = Vec::new();
    for ep in endpoints {
        channels.push(endpoint(ep)?.timeout(Duration::from_secs(5)).connect_lazy());
        load_channels.push(endpoint(ep)?.connect_lazy());
    }
    let value = Arc::new(value_bytes(args.val_size));
    let round_timeout = Duration::from_secs(args.round_timeout_s.max(1));
    let stop = Arc::new(AtomicBool::new(false));
    let (mut load, load_ok, load_failed) = steady_load(
        &load_channels,
        clients,
        value.clone(),
        Duration::from_millis(timeout_ms.clamp(1, 2000)),
        stop.clone(),
    );
    let mut rng = Rng::new(std::process::id() as u64);
    let mut rounds = Vec::new();
    let mut recoveries = Vec::new();
    for round in 1..=args.rounds {
        let (leader, term) = wait_settled(&channels, round_timeout).await?;
        let settle = args.settle_ms as f64 * (0.5 + rng.unit());
        tokio::time::sleep(Duration::from_secs_f64(settle / 1000.0)).await;
        // Leadership may have moved while we slept (it should not, but measure what we kill).
        let (leader, term) = match agreed_leader(&statuses(&channels).await) {
            Some(l) if l == leader => (leader, term),
            _ => wait_settled(&channels, round_timeout).await?,
        };
        let old_id = status(&channels[leader]).await.map_or(0, |s| member_id(&s));
        let survivors: Vec<Channel> =
            channels.iter().enumerate().filter(|(i, _)| *i != leader).map(|(_, c)| c.clone()).collect();
        shell(&substitute(&args.kill_cmd, leader, &endpoints[leader])).await?;
        let killed_at = Instant::now();
        let acked =
            first_ack(&survivors, Duration::from_millis(args.probe_interval_ms.max(1)), value.clone(), round_timeout)
                .await;
        let recovery_ms = acked.as_ref().ok().map(|t| t.duration_since(killed_at).as_secs_f64() * 1000.0);
        let mut new_leader = None;
        let mut new_term = None;
        for ch in &survivors {
            if let Some(s) = status(ch).await.filter(|s| s.leader != 0) {
                new_leader = Some(s.leader);
                new_term = Some(s.raft_term);
                break;
            }
        }
        let restarted_at = Instant::now();
        shell(&substitute(&args.restart_cmd, leader, &endpoints[leader])).await?;
        let caught_up = wait_caught_up(&channels, leader, round_timeout).await;
        let catchup_ms = caught_up.is_ok().then(|| restarted_at.elapsed().as_secs_f64() * 1000.0);
        let leader_changed = new_leader.is_some_and(|l| l != old_id) && new_term.is_some_and(|t| t > term);
        if let (Some(ms), true) = (recovery_ms, leader_changed) {
            recoveries.push(ms);
        }
        let line = json!({
            "round": round,
            "killed_index": leader,
            "killed_member": format!("{old_id:x}"),
            "old_term": term,
            "new_leader": new_leader.map(|l| format!("{l:x}")),
            "new_term": new_term,
            "leader_changed": leader_changed,
            "recovery_ms": recovery_ms,
            "catchup_ms": catchup_ms,
            "error": acked.err().or(caught_up.err()),
        });
        eprintln!(
            "round {round:>3}: killed member {leader} ({old_id:x}, term {term}); write acknowledged after {} ms; \
             new leader {} term {}; restarted member caught up after {} ms",
            recovery_ms.map_or("-".into(), |v| format!("{v:.1}")),
            new_leader.map_or("-".into(), |l| format!("{l:x}")),
            new_term.map_or("-".into(), |t| t.to_string()),
            catchup_ms.map_or("-".into(), |v| format!("{v:.0}")),
        );
        rounds.push(line);
    }
    stop.store(true, Ordering::Relaxed);
    load.abort_all();
    while load.join_next().await.is_some() {}

    let summary = distribution(&recoveries);
    let report = json!({
        "workload": "failover",
        "params": {
            "endpoints": endpoints,
            "clients": clients,
            "rounds": args.rounds,
            "probe_interval_ms": args.probe_interval_ms,
            "settle_ms": args.settle_ms,
            "val_size": args.val_size,
        },
        "recovery_ms": summary,
        "recoveries_ms": recoveries,
        "excluded_rounds": args.rounds - recoveries.len(),
        "load": {"successes": load_ok.load(Ordering::Relaxed), "errors": load_failed.load(Ordering::Relaxed)},
        "rounds": rounds,
    });
    if json_out {
        println!("{report}");
    } else {
        println!(
            "failover: {} rounds ({} counted), time from kill -9 of the leader to the first acknowledged write, ms:\n  {}",
            args.rounds,
            recoveries.len(),
            report["recovery_ms"]
        );
    }
    Ok(())
}
