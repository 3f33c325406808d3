//! `tally-sim --whole ...`: the whole-node simulation's sweep and replay.

use std::process::ExitCode;
use std::time::Instant;

use tally_node::{ConsensusKind, NodeBug};
use tally_paxos::multi::PaxosBug;
use tally_raft::InjectedBug;
use tally_sim::whole::{run_whole_seed, WholeCoverage, WholeOptions, WholeReport};

pub struct WholeArgs {
    pub start: u64,
    pub seeds: u64,
    pub replay: Option<u64>,
    pub nodes: Option<usize>,
    pub bug: Option<NodeBug>,
    /// A bug planted in the Raft core.
    pub raft_bug: Option<InjectedBug>,
    /// Run Multi-Paxos instead of Raft.
    pub paxos: bool,
    pub paxos_bug: Option<PaxosBug>,
    /// A small exactly-once table (`WholeOptions::sessions_max`).
    pub sessions_max: Option<usize>,
    pub threads: usize,
    pub quiet: bool,
}

pub const NODE_BUGS: [(&str, NodeBug); 6] = [
    ("answer-before-fsync", NodeBug::AnswerBeforeFsync),
    ("lazy-vote", NodeBug::LazyVote),
    ("drop-forwarded", NodeBug::DropForwarded),
    ("read-without-read-index", NodeBug::ReadWithoutReadIndex),
    ("no-lease-grace", NodeBug::NoLeaseGraceOnPromote),
    ("no-zk-session-grace", NodeBug::NoZkSessionGraceOnPromote),
];

pub fn parse_node_bug(name: &str) -> Option<NodeBug> {
    NODE_BUGS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

fn bug_flag(bug: NodeBug) -> &'static str {
    NODE_BUGS.iter().find(|(_, b)| *b == bug).map_or("?", |(n, _)| n)
}

pub const PAXOS_BUGS: [(&str, PaxosBug); 3] = [
    ("accept-below-promise", PaxosBug::AcceptBelowPromise),
    ("forget-highest-accepted", PaxosBug::ForgetHighestAccepted),
    ("answer-before-persist", PaxosBug::AnswerBeforePersist),
];

pub fn parse_paxos_bug(name: &str) -> Option<PaxosBug> {
    PAXOS_BUGS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

fn options(args: &WholeArgs, seed: u64) -> WholeOptions {
    let consensus = if args.paxos { ConsensusKind::Paxos } else { ConsensusKind::Raft };
    WholeOptions {
        nodes: args.nodes,
        bug: args.bug,
        consensus,
        paxos_bug: args.paxos_bug,
        raft_bug: args.raft_bug,
        sessions_max: args.sessions_max,
        ..WholeOptions::new(seed)
    }
}

fn replay_command(args: &WholeArgs, seed: u64) -> String {
    let mut cmd = format!("cargo run --release -p tally-sim -- --whole --seed {seed}");
    if let Some(nodes) = args.nodes {
        cmd += &format!(" --nodes {nodes}");
    }
    if let Some(bug) = args.bug {
        cmd += &format!(" --node-bug {}", bug_flag(bug));
    }
    if let Some(bug) = args.raft_bug {
        cmd += &format!(" --bug {}", crate::bug_flag(bug));
    }
    if let Some(bug) = args.paxos_bug {
        let name = PAXOS_BUGS.iter().find(|(_, b)| *b == bug).map_or("?", |(n, _)| n);
        cmd += &format!(" --paxos-bug {name}");
    } else if args.paxos {
        cmd += " --consensus paxos";
    }
    if let Some(max) = args.sessions_max {
        cmd += &format!(" --sessions-max {max}");
    }
    cmd
}

fn print_failure(args: &WholeArgs, report: &WholeReport) {
    let run = format!("{} nodes", report.nodes);
    crate::sweep::print_failure(report.seed, &run, &report.violations, &replay_command(args, report.seed));
}

fn print_coverage(c: &WholeCoverage) {
    println!(
        "coverage: {} leaders, {} crashes ({} by disk failures), {} snapshots written, {} installed from a leader, \
{} commands forwarded by members, {} by their callers ({} awaited after they applied), {} leases expired, {} ZooKeeper sessions expired, {} pipelined ZooKeeper writes applied (counted per member), {} acknowledged, {} start-overs under a new client id, {} refused as SessionMoved, {} TTL znodes expired (counted per member), {} watch (re)connects, {} state hashes compared, {} members added, \
{} removed, {} leadership transfers, {} durable hints",
        c.leaders,
        c.crashes,
        c.disk_failures,
        c.snapshots_written,
        c.snapshots_installed,
        c.forwarded,
        c.forwarded_by_callers,
        c.awaits_after_apply,
        c.lease_expiries,
        c.zk_session_expiries,
        c.zk_pipelined_applied,
        c.zk_pipelined_acknowledged,
        c.zk_pipeline_start_overs,
        c.zk_refused_as_moved,
        c.znodes_expired,
        c.watch_reconnects,
        c.state_hashes,
        c.members_added,
        c.members_removed,
        c.transfers,
        c.durable_hints
    );
}

pub fn run(args: WholeArgs) -> ExitCode {
    if let Some(seed) = args.replay {
        let mut opts = options(&args, seed);
        opts.trace = !args.quiet;
        let report = run_whole_seed(opts);
        println!("seed {seed}: {} nodes, {} events, {} operations", report.nodes, report.events, report.operations);
        print_coverage(&report.coverage);
        if !report.violations.is_empty() {
            print_failure(&args, &report);
        }
        println!("seeds: 1, violations: {}", report.violations.len());
        return if report.violations.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    }
    let began = Instant::now();
    let (mut events, mut operations, mut coverage) = (0u64, 0u64, WholeCoverage::default());
    let failures = crate::sweep::sweep(
        args.start,
        args.seeds,
        args.threads,
        |seed| run_whole_seed(options(&args, seed)),
        |report| {
            events += report.events;
            operations += report.operations as u64;
            coverage += report.coverage;
            if !report.violations.is_empty() {
                print_failure(&args, &report);
            }
            !report.violations.is_empty()
        },
    );
    let secs = began.elapsed().as_secs_f64();
    println!(
        "whole node: events: {events}, client operations: {operations}, {:.1} s ({:.2} s per 1,000 seeds on {} threads)",
        secs,
        secs * 1000.0 / args.seeds.max(1) as f64,
        args.threads.max(1)
    );
    print_coverage(&coverage);
    println!("seeds: {}, violations: {}", args.seeds, failures);
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
