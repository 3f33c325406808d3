//! Fault mixes ("swarm testing"): each seed draws which faults happen and how hard, so the
//! sweep covers both quiet runs, where subtle orderings show, and storms.

use crate::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    Calm,
    Lossy,
    Partitions,
    Crashes,
    Membership,
    Chaos,
    /// Leaders die young, often in the middle of a Ready, and Appends carry one entry: the
    /// conditions under which logs diverge the way Raft paper Figure 8 shows.
    Churn,
    /// Only spurious connection resets while every node is alive: fast failover must not
    /// cause an election storm.
    Resets,
}

pub const MIXES: [Mix; 8] =
    [Mix::Calm, Mix::Lossy, Mix::Partitions, Mix::Crashes, Mix::Membership, Mix::Chaos, Mix::Churn, Mix::Resets];

impl Mix {
    pub fn parse(name: &str) -> Option<Mix> {
        MIXES.iter().copied().find(|m| format!("{m:?}").eq_ignore_ascii_case(name))
    }
}

/// Spurious resets per node per second in the resets mix: far more than a real network shows
/// (one every two seconds on every node), to make any storm visible.
pub const SPURIOUS_RESETS_PER_SEC: f64 = 0.5;

/// Every knob of a run's faults, drawn from the seed.
#[derive(Clone, Debug)]
pub struct FaultPlan {
    pub mix: Mix,
    pub drop: f64,
    pub duplicate: f64,
    /// One-way network delay: base plus uniform jitter (jitter reorders messages).
    pub delay_base_us: u64,
    pub delay_jitter_us: u64,
    /// Mean time between fault actions.
    pub fault_every_us: u64,
    pub partitions: bool,
    pub crashes: bool,
    pub membership: bool,
    pub transfers: bool,
    /// Per Ready: probability that the node crashes after sending the Ready's leader messages
    /// and before anything of it is durable.
    pub crash_midway: f64,
    /// Probability that a newly elected leader crashes within 30 ms of winning: leaves
    /// divergent uncommitted tails behind, the raw material of Raft paper Figure 8.
    pub kill_new_leader: f64,
    /// Per-node tick length spread (clock skew): ticks last 10 ms times [1 - skew, 1 + skew].
    pub skew: f64,
    /// Spurious connection resets per node per second: a node is told its leader's connection
    /// reset although the leader is alive.
    pub spurious_resets_per_sec: f64,
    /// The core's fast_election_ticks (0: the transport's reset reports are ignored).
    pub fast_election_ticks: u32,
    /// Forces the core's entries per Append (otherwise drawn per seed).
    pub entries_per_msg_max: Option<usize>,
}

impl FaultPlan {
    pub fn draw(mix: Mix, rng: &mut Rng) -> Self {
        let mut plan = FaultPlan {
            mix,
            drop: 0.0,
            duplicate: 0.0,
            delay_base_us: rng.range(100, 2_000),
            delay_jitter_us: rng.range(0, 3_000),
            fault_every_us: rng.range(100_000, 600_000),
            partitions: false,
            crashes: false,
            membership: false,
            transfers: false,
            crash_midway: 0.0,
            kill_new_leader: 0.0,
            skew: rng.unit() * 0.3,
            entries_per_msg_max: None,
            spurious_resets_per_sec: 0.0,
            fast_election_ticks: rng.pick(&[0, 2, 3]),
        };
        let lossy = |plan: &mut FaultPlan, rng: &mut Rng| {
            plan.drop = rng.unit() * 0.2;
            plan.duplicate = rng.unit() * 0.05;
            plan.delay_jitter_us = rng.range(1_000, 60_000);
        };
        match mix {
            Mix::Calm => {}
            Mix::Lossy => lossy(&mut plan, rng),
            Mix::Partitions => plan.partitions = true,
            Mix::Crashes => {
                plan.crashes = true;
                plan.crash_midway = rng.unit() * 0.03;
                plan.kill_new_leader = rng.unit() * 0.7;
            }
            Mix::Membership => {
                plan.membership = true;
                plan.transfers = true;
                plan.crashes = rng.chance(0.5);
                plan.crash_midway = rng.unit() * 0.005;
            }
            Mix::Chaos => {
                lossy(&mut plan, rng);
                plan.spurious_resets_per_sec = rng.unit() * SPURIOUS_RESETS_PER_SEC;
                plan.partitions = true;
                plan.crashes = true;
                plan.membership = true;
                plan.transfers = true;
                plan.crash_midway = rng.unit() * 0.01;
                plan.kill_new_leader = rng.unit() * 0.3;
            }
            Mix::Churn => {
                plan.crashes = true;
                plan.crash_midway = 0.02 + rng.unit() * 0.08;
                plan.kill_new_leader = 0.5 + rng.unit() * 0.5;
                plan.drop = rng.unit() * 0.05;
                plan.entries_per_msg_max = Some(1);
            }
            Mix::Resets => {
                plan.spurious_resets_per_sec = SPURIOUS_RESETS_PER_SEC;
                plan.fast_election_ticks = 3;
            }
        }
        plan
    }
}
