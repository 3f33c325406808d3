//! Multi-Paxos under random faults: messages lost, duplicated and reordered, members crashing
//! (also between sending and persisting), partitions, compaction. After every step, no slot
//! may have been applied with two values; at the end, healed, the cluster must make progress.
//! Each deliberate bug must be caught by some seed.

mod support;

use support::{cmd, Cluster};
use tally_consensus::{NodeId, Role, SplitMix64};
use tally_paxos::multi::{Config, PaxosBug};

const STEPS: usize = 3000;

/// What a run covered: slots chosen, and the highest round any member promised.
#[derive(Default)]
struct Coverage {
    chosen: usize,
    rounds: u64,
}

/// One seeded run; returns the violations found.
fn run(seed: u64, bug: Option<PaxosBug>) -> Vec<String> {
    run_covered(seed, bug, &mut Coverage::default())
}

fn run_covered(seed: u64, bug: Option<PaxosBug>, coverage: &mut Coverage) -> Vec<String> {
    let mut rng = SplitMix64::new(seed);
    let n = if rng.range(0, 2) == 0 { 3 } else { 5 };
    let jitter = (seed % 2) as u32;
    let config =
        move |id| Config { seed, bug, election_tick: 4, leader_silence_jitter_ticks: jitter, ..Config::new(id) };
    let mut c = Cluster::with_config(n, config);
    let ids: Vec<NodeId> = (1..=n).collect();
    let mut proposed = 0;
    for _ in 0..STEPS {
        let id = ids[rng.range(0, n) as usize];
        // Members handle their Readies at random moments, so a crash can fall between
        // sending and persisting.
        match rng.range(0, 100) {
            0..=34 => deliver_one(&mut c, &mut rng),
            35..=54 => c.handle_ready(id),
            55..=64 => c.paxos_mut(id).tick(),
            65..=74 => {
                if c.paxos(id).role() == Role::Leader {
                    proposed += 1;
                    let _ = c.paxos_mut(id).propose(cmd(&format!("{seed}-{proposed}")));
                }
            }
            75..=76 => c.restart(id),
            77..=80 => c.handle_ready_or_crash(id, true),
            81..=83 => {
                let other = ids[rng.range(0, n) as usize];
                if other != id {
                    c.cut(id, other);
                }
            }
            84..=86 => c.heal(),
            87..=88 => {
                if c.paxos(id).applied() > c.paxos(id).snapshot().meta.index {
                    c.compact(id);
                }
            }
            _ => {
                // Duplicate a message in flight.
                if !c.in_flight.is_empty() {
                    let i = rng.range(0, c.in_flight.len() as u64) as usize;
                    let m = c.in_flight[i].clone();
                    c.in_flight.push_back(m);
                }
            }
        }
        if !c.violations.is_empty() {
            return c.violations;
        }
    }
    if bug.is_none() {
        assert_makes_progress(&mut c, seed);
    }
    coverage.chosen += c.chosen.len();
    coverage.rounds += c.members.values().map(|m| m.paxos.promised().round).max().unwrap_or(0);
    c.violations
}

/// Delivers (or, one time in ten, drops) a random message in flight.
fn deliver_one(c: &mut Cluster, rng: &mut SplitMix64) {
    if c.in_flight.is_empty() {
        return;
    }
    let i = rng.range(0, c.in_flight.len() as u64) as usize;
    let m = c.in_flight.remove(i).expect("in range");
    if rng.range(0, 10) != 0 {
        c.deliver(m);
    } else {
        c.drop_message(m);
    }
}

fn assert_makes_progress(c: &mut Cluster, seed: u64) {
    c.heal();
    for _ in 0..200 {
        c.tick_all(1);
        if let [leader] = c.leaders()[..] {
            let slot = c.paxos_mut(leader).propose(cmd("final")).expect("leader");
            c.stabilize();
            c.tick_all(3);
            let n = c.members.len() as u64;
            for id in 1..=n {
                let progress = c.paxos(leader).progress().get(&id);
                assert!(
                    c.paxos(id).applied() >= slot,
                    "seed {seed}: member {id} did not apply the final value: {progress:?}"
                );
            }
            return;
        }
    }
    let roles: Vec<_> = c.members.values().map(|m| (m.paxos.role(), m.paxos.promised())).collect();
    panic!("seed {seed}: no leader after healing: {roles:?}");
}

#[test]
fn random_faults_never_choose_two_values_for_a_slot() {
    // PAXOS_SEEDS=N runs a longer sweep; PAXOS_SEED=S replays one seed (PAXOS_TRACE=1 prints it).
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let seeds = match (env("PAXOS_SEED"), env("PAXOS_SEEDS")) {
        (Some(seed), _) => seed..seed + 1,
        (None, count) => 0..count.unwrap_or(1000),
    };
    let (mut coverage, count) = (Coverage::default(), seeds.end - seeds.start);
    for seed in seeds {
        let violations = run_covered(seed, None, &mut coverage);
        assert!(violations.is_empty(), "seed {seed}: {violations:?}");
    }
    eprintln!("{count} seeds: {} slots chosen, {} rounds", coverage.chosen, coverage.rounds);
}

fn caught(bug: PaxosBug) -> Option<u64> {
    (0..2000).find(|&seed| !run(seed, Some(bug)).is_empty())
}

#[test]
fn accepting_below_the_promise_is_caught() {
    assert!(caught(PaxosBug::AcceptBelowPromise).is_some());
}

#[test]
fn forgetting_the_highest_accepted_value_is_caught() {
    assert!(caught(PaxosBug::ForgetHighestAccepted).is_some());
}

#[test]
fn answering_before_persisting_is_caught() {
    assert!(caught(PaxosBug::AnswerBeforePersist).is_some());
}
