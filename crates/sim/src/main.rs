//! `tally-sim --seeds N` sweeps seeds 0..N (or `--start S --seeds N` for S..S+N) and ends with
//! `seeds: N, violations: V`; `--seed S` replays one seed with a trace of every event.
//! `--whole` does the same with the whole-node simulation (`tally_sim::whole`).

mod sweep;
mod whole_cli;

use std::process::ExitCode;

use tally_raft::InjectedBug;
use tally_sim::linearizability::CheckResult;
use tally_sim::{run_seed, Coverage, Mix, Report, SimOptions};

struct Args {
    start: u64,
    seeds: u64,
    replay: Option<u64>,
    mix: Option<Mix>,
    nodes: Option<usize>,
    bug: Option<InjectedBug>,
    threads: usize,
    quiet: bool,
    whole: bool,
    node_bug: Option<tally_node::NodeBug>,
    paxos: bool,
    paxos_bug: Option<tally_paxos::multi::PaxosBug>,
    sessions_max: Option<usize>,
}

const USAGE: &str = "usage: tally-sim [--seeds N] [--start S] [--seed S] [--mix calm|lossy|partitions|crashes|membership|chaos] \
[--nodes 3|5|7] [--bug skip-election-restriction|commit-previous-term|vote-twice|vote-before-persist|follower-reads-without-quorum|read-index-ignores-follower-commits] [--threads T] [--quiet]
       tally-sim --whole [--seeds N] [--start S] [--seed S] [--nodes 3|5] \
[--node-bug answer-before-fsync|lazy-vote|drop-forwarded|read-without-read-index|no-lease-grace] [--bug (as above)] \
[--consensus raft|paxos] [--paxos-bug accept-below-promise|forget-highest-accepted|answer-before-persist] \
[--sessions-max N (a small exactly-once table; only ZooKeeper clients write)] [--threads T] [--quiet]";

fn parse_bug(name: &str) -> Option<InjectedBug> {
    Some(match name {
        "skip-election-restriction" => InjectedBug::SkipElectionRestriction,
        "commit-previous-term" => InjectedBug::CommitPreviousTermByCounting,
        "vote-twice" => InjectedBug::VoteTwicePerTerm,
        "vote-before-persist" => InjectedBug::VoteBeforePersist,
        "follower-reads-without-quorum" => InjectedBug::FollowerReadsWithoutQuorum,
        "read-index-ignores-follower-commits" => InjectedBug::ReadIndexIgnoresFollowerCommits,
        _ => return None,
    })
}

fn bug_flag(bug: InjectedBug) -> &'static str {
    match bug {
        InjectedBug::SkipElectionRestriction => "skip-election-restriction",
        InjectedBug::CommitPreviousTermByCounting => "commit-previous-term",
        InjectedBug::VoteTwicePerTerm => "vote-twice",
        InjectedBug::VoteBeforePersist => "vote-before-persist",
        InjectedBug::FollowerReadsWithoutQuorum => "follower-reads-without-quorum",
        InjectedBug::ReadIndexIgnoresFollowerCommits => "read-index-ignores-follower-commits",
    }
}

fn parse_args() -> Result<Args, String> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut args = Args {
        start: 0,
        seeds: 100,
        replay: None,
        mix: None,
        nodes: None,
        bug: None,
        threads,
        quiet: false,
        whole: false,
        node_bug: None,
        paxos: false,
        paxos_bug: None,
        sessions_max: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--seeds" => args.seeds = value()?.parse().map_err(|e| format!("--seeds: {e}"))?,
            "--start" => args.start = value()?.parse().map_err(|e| format!("--start: {e}"))?,
            "--seed" => args.replay = Some(value()?.parse().map_err(|e| format!("--seed: {e}"))?),
            "--mix" => args.mix = Some(Mix::parse(&value()?).ok_or("unknown --mix")?),
            "--nodes" => args.nodes = Some(value()?.parse().map_err(|e| format!("--nodes: {e}"))?),
            "--bug" => args.bug = Some(parse_bug(&value()?).ok_or("unknown --bug")?),
            "--threads" => args.threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--quiet" => args.quiet = true,
            "--whole" => args.whole = true,
            "--node-bug" => {
                args.node_bug = Some(whole_cli::parse_node_bug(&value()?).ok_or("unknown --node-bug")?);
                args.whole = true;
            }
            "--consensus" => {
                args.paxos = match value()?.as_str() {
                    "raft" => false,
                    "paxos" => true,
                    _ => return Err("unknown --consensus".into()),
                };
                args.whole = true;
            }
            "--paxos-bug" => {
                args.paxos_bug = Some(whole_cli::parse_paxos_bug(&value()?).ok_or("unknown --paxos-bug")?);
                args.paxos = true;
                args.whole = true;
            }
            "--sessions-max" => {
                args.sessions_max = Some(value()?.parse().map_err(|e| format!("--sessions-max: {e}"))?);
                args.whole = true;
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn options(args: &Args, seed: u64) -> SimOptions {
    SimOptions { mix: args.mix, nodes: args.nodes, bug: args.bug, ..SimOptions::new(seed) }
}

fn replay_command(args: &Args, seed: u64) -> String {
    let mut cmd = format!("cargo run --release -p tally-sim -- --seed {seed}");
    if let Some(mix) = args.mix {
        cmd += &format!(" --mix {mix:?}").to_lowercase();
    }
    if let Some(nodes) = args.nodes {
        cmd += &format!(" --nodes {nodes}");
    }
    if let Some(bug) = args.bug {
        cmd += &format!(" --bug {}", bug_flag(bug));
    }
    cmd
}

fn print_failure(args: &Args, report: &Report) {
    let run = format!("{:?}, {} nodes", report.mix, report.nodes);
    sweep::print_failure(report.seed, &run, &report.violations, &replay_command(args, report.seed));
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    if args.whole {
        return whole_cli::run(whole_cli::WholeArgs {
            start: args.start,
            seeds: args.seeds,
            replay: args.replay,
            nodes: args.nodes,
            bug: args.node_bug,
            raft_bug: args.bug,
            paxos: args.paxos,
            paxos_bug: args.paxos_bug,
            sessions_max: args.sessions_max,
            threads: args.threads,
            quiet: args.quiet,
        });
    }
    if let Some(seed) = args.replay {
        let mut opts = options(&args, seed);
        opts.trace = !args.quiet;
        let report = run_seed(opts);
        println!(
            "seed {seed}: {:?}, {} nodes, {} events, {} operations, {} leaders elected, linearizability {:?}, leader {} after heal",
            report.mix,
            report.nodes,
            report.events,
            report.operations,
            report.coverage.leaders,
            report.linearizability,
            report.elect_after_heal_us.map_or("never".to_string(), |us| format!("{:.1} ms", us as f64 / 1000.0)),
        );
        if !report.violations.is_empty() {
            print_failure(&args, &report);
        }
        println!("seeds: 1, violations: {}", report.violations.len());
        return if report.violations.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    }

    let mut stats = (0u64, 0u64, Vec::new(), 0u64, Coverage::default());
    let failures = sweep::sweep(
        args.start,
        args.seeds,
        args.threads,
        |seed| run_seed(options(&args, seed)),
        |report| {
            stats.0 += report.events;
            stats.1 += report.operations as u64;
            stats.2.extend(report.elect_after_heal_us);
            stats.4 += report.coverage;
            stats.3 += u64::from(matches!(report.linearizability, CheckResult::Inconclusive { .. }));
            if !report.violations.is_empty() {
                print_failure(&args, &report);
            }
            !report.violations.is_empty()
        },
    );
    let (events, operations, mut elect, inconclusive, coverage) = stats;
    elect.sort_unstable();
    let pct = |p: usize| elect.get((elect.len().saturating_sub(1)) * p / 100).map_or(0.0, |&us| us as f64 / 1000.0);
    println!(
        "events: {events}, client operations: {operations}, linearizability inconclusive: {inconclusive}, \
time to leader after heal (ms): median {:.1}, p99 {:.1}, max {:.1}",
        pct(50),
        pct(99),
        pct(100)
    );
    println!(
        "coverage: {} leaders elected, {} crashes, {} snapshots sent, {} leadership transfers, {} follower reads, {} durable hints, {} membership changes",
        coverage.leaders,
        coverage.crashes,
        coverage.snapshots_sent,
        coverage.timeout_now_sent,
        coverage.follower_reads,
        coverage.durable_hints,
        coverage.conf_changes_proposed
    );
    println!("seeds: {}, violations: {}", args.seeds, failures);
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
