//! Whole-node simulation: the production node (`tally_node::Node`: the Raft core, the WAL over
//! a simulated disk, the MVCC state machine, proposals and forwarding, ReadIndex reads, the
//! lease clock, snapshots written in the background) run by many members in virtual time,
//! with etcd clients, watchers and faults, and checks of what clients can see.

pub mod checks;
pub mod clients;
pub mod host;
pub mod member;
pub mod plan;
pub mod requests;
pub mod world;

pub use world::{WholeCoverage, WholeOptions, WholeReport, WholeSim};

/// A member's disk failure ends its process with a [`host::Fatal`] panic, which the event loop
/// turns into a crash: it is no news, so the panic message is not printed.
fn quiet_fatal_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<host::Fatal>().is_none() {
                default(info);
            }
        }));
    });
}

/// Runs one seed, turning a panic anywhere in the node into a reported violation.
pub fn run_whole_seed(opts: WholeOptions) -> WholeReport {
    quiet_fatal_panics();
    let (seed, nodes) = (opts.seed, opts.nodes.unwrap_or(0));
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| WholeSim::new(opts).run())) {
        Ok(report) => report,
        Err(panic) => {
            let detail = crate::queue::panic_message(panic.as_ref());
            WholeReport {
                seed,
                nodes,
                violations: vec![checks::Violation { property: "panic", time_us: 0, detail }],
                operations: 0,
                events: 0,
                coverage: WholeCoverage::default(),
            }
        }
    }
}
