//! Deterministic simulator for Tally's Raft core: many nodes in virtual time, message loss,
//! duplication, reordering and delay, partitions, crashes that lose what was not durable,
//! clock skew, membership changes and leadership transfers, with the safety properties checked
//! after every event and client histories checked for linearizability at the end.
//! One seed decides everything, so every failure replays exactly.

pub mod checker;
pub mod client;
pub mod faults;
pub mod kv;
pub mod linearizability;
pub mod links;
pub mod node;
pub mod queue;
pub mod rng;
pub mod sim;
pub mod whole;

pub use faults::Mix;
pub use sim::{Coverage, Report, SimOptions, Simulation};

/// Runs one seed, turning a panic inside the core into a reported violation.
pub fn run_seed(opts: SimOptions) -> Report {
    let seed = opts.seed;
    let mix = opts.mix;
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Simulation::new(opts).run())) {
        Ok(report) => report,
        Err(panic) => {
            let detail = queue::panic_message(panic.as_ref());
            Report {
                seed,
                mix: mix.unwrap_or(Mix::Calm),
                nodes: 0,
                violations: vec![checker::Violation { property: "panic", time_us: 0, detail }],
                operations: 0,
                linearizability: linearizability::CheckResult::Linearizable,
                elect_after_heal_us: None,
                events: 0,
                coverage: Coverage::default(),
            }
        }
    }
}
