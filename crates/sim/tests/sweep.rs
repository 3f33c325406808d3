//! A short sweep over every fault mix and cluster size (CI runs the long one through the
//! binary), and determinism: one seed always replays the same run.

use tally_sim::linearizability::CheckResult;
use tally_sim::{run_seed, SimOptions};

#[test]
fn short_sweep_has_no_violations_and_stays_live() {
    for seed in 0..210 {
        let report = run_seed(SimOptions::new(seed));
        assert!(report.violations.is_empty(), "seed {seed}: {:?}", report.violations);
        assert_eq!(report.linearizability, CheckResult::Linearizable, "seed {seed}");
        assert!(report.elect_after_heal_us.is_some(), "seed {seed}: no leader after heal");
    }
}

#[test]
fn a_seed_replays_exactly() {
    for seed in [3, 17, 40] {
        let a = run_seed(SimOptions::new(seed));
        let b = run_seed(SimOptions::new(seed));
        assert_eq!((a.events, a.operations, a.elect_after_heal_us), (b.events, b.operations, b.elect_after_heal_us));
        assert!(a.operations > 0, "clients made progress");
    }
}
