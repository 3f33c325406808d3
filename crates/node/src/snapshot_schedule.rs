//! When a member takes its own snapshot. etcd takes one every `--snapshot-count` entries
//! whatever the state's size; with 1 KiB znodes, a 325 MB state was written every 100k
//! entries (110 MB of log), and encoding and syncing it took a third of the servers' CPU.
//! So a point of the grid is also passed over while the log applied since the last snapshot
//! is smaller than `log_ratio` times that snapshot, the rule of the Raft dissertation
//! (§5.1.1): writing snapshots then costs at most 1/`log_ratio` of what writing the log
//! does, and a restart replays at most `log_ratio` times the state's size. A ratio of 0 is
//! etcd's schedule.

use tally_raft::Index;

pub(crate) struct SnapshotSchedule {
    /// Applied entries between the points of the grid.
    count: u64,
    log_ratio: f64,
    /// The newest snapshot, ours or the leader's, and its size.
    index: Index,
    bytes: u64,
    /// Bytes of the entries applied since the newest snapshot was copied.
    log_bytes: u64,
    /// The last point of the grid passed over because the log was still small.
    passed: Index,
}

impl SnapshotSchedule {
    pub(crate) fn new(count: u64, log_ratio: f64, index: Index, bytes: u64) -> Self {
        Self { count: count.max(1), log_ratio, index, bytes, log_bytes: 0, passed: 0 }
    }

    pub(crate) fn index(&self) -> Index {
        self.index
    }

    /// About the most the next snapshot can take: the newest one and the log applied since
    /// (an entry adds about its own size to the state at most).
    pub(crate) fn next_bytes_estimate(&self) -> u64 {
        self.bytes + self.log_bytes
    }

    /// An entry of `bytes` was applied.
    pub(crate) fn applied(&mut self, bytes: usize) {
        self.log_bytes += bytes as u64;
    }

    /// Whether to snapshot now that `applied` is applied, for a member whose grid is shifted
    /// by `rank` of `members`: their snapshots are spread evenly over the grid, so that a
    /// quorum is never encoding and syncing at once (on one machine, snapshots of a 36 MB
    /// state taken by all three members at once stalled puts for 120-370 ms).
    pub(crate) fn due(&mut self, applied: Index, rank: u64, members: u64) -> bool {
        let stagger = rank * self.count / members.max(1);
        if applied <= self.index || applied < next_point(self.index.max(self.passed), self.count, stagger) {
            return false;
        }
        if (self.log_bytes as f64) < self.bytes as f64 * self.log_ratio {
            self.passed = applied;
            return false;
        }
        true
    }

    /// A snapshot of everything applied so far was copied; the log counts from here.
    pub(crate) fn started(&mut self) {
        self.log_bytes = 0;
    }

    /// Our snapshot at `index`, of `bytes`, is the current one.
    pub(crate) fn taken(&mut self, index: Index, bytes: u64) {
        if index > self.index {
            self.index = index;
            self.bytes = bytes;
        }
    }

    /// The leader's snapshot at `index`, of `bytes`, replaced the state.
    pub(crate) fn installed(&mut self, index: Index, bytes: u64) {
        self.index = index;
        self.bytes = bytes;
        self.log_bytes = 0;
    }
}

/// The first point after `from` of a grid of every `count` entries, shifted by `stagger`.
fn next_point(from: u64, count: u64, stagger: u64) -> u64 {
    if from < stagger {
        return stagger;
    }
    stagger + ((from - stagger) / count + 1) * count
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The indexes a member snapshots at, applying `entries` entries of `entry_bytes`, each
    /// snapshot `state_bytes` large.
    fn points(mut s: SnapshotSchedule, rank: u64, entries: u64, entry_bytes: usize, state_bytes: u64) -> Vec<u64> {
        let mut taken = Vec::new();
        for applied in 1..=entries {
            s.applied(entry_bytes);
            if s.due(applied, rank, 3) {
                s.started();
                s.taken(applied, state_bytes);
                taken.push(applied);
            }
        }
        taken
    }

    #[test]
    fn members_snapshot_every_count_entries_at_their_own_offsets() {
        let etcd = || SnapshotSchedule::new(300, 0.0, 0, 0);
        assert_eq!(points(etcd(), 0, 900, 10, 1_000_000), [300, 600, 900]);
        assert_eq!(points(etcd(), 1, 900, 10, 1_000_000), [100, 400, 700]);
        assert_eq!(points(etcd(), 2, 900, 10, 1_000_000), [200, 500, 800]);
    }

    #[test]
    fn after_the_leaders_snapshot_a_member_goes_back_to_its_own_grid() {
        let mut s = SnapshotSchedule::new(300, 0.0, 0, 0);
        s.installed(450, 10);
        assert!(!s.due(699, 1, 3));
        assert!(s.due(700, 1, 3));
        let mut s = SnapshotSchedule::new(300, 0.0, 0, 0);
        s.installed(399, 10);
        assert!(s.due(400, 1, 3));
    }

    #[test]
    fn a_point_is_passed_over_while_the_log_is_smaller_than_the_last_snapshot() {
        // Snapshots of 2,500 bytes, 10-byte entries: every 250 entries at most, on the grid.
        let s = SnapshotSchedule::new(100, 1.0, 0, 2_500);
        assert_eq!(points(s, 0, 1000, 10, 2_500), [300, 600, 900]);
        // Half the ratio: every 125 entries, so every other point.
        let s = SnapshotSchedule::new(100, 0.5, 0, 2_500);
        assert_eq!(points(s, 0, 1000, 10, 2_500), [200, 400, 600, 800, 1000]);
        // A small state: every point, as etcd.
        let s = SnapshotSchedule::new(100, 1.0, 0, 50);
        assert_eq!(points(s, 2, 400, 10, 50), [66, 166, 266, 366]);
    }

    #[test]
    fn the_log_counts_from_the_leaders_snapshot() {
        let mut s = SnapshotSchedule::new(100, 1.0, 0, 0);
        for _ in 0..100 {
            s.applied(10);
        }
        s.installed(100, 1_500);
        for applied in 101..=300 {
            s.applied(10);
            assert_eq!(s.due(applied, 0, 3), applied == 300, "at {applied}");
        }
    }

    #[test]
    fn the_next_snapshot_is_estimated_as_the_last_one_and_the_log_applied_since() {
        let mut s = SnapshotSchedule::new(100, 1.0, 0, 2_500);
        assert_eq!(s.next_bytes_estimate(), 2_500);
        for _ in 0..30 {
            s.applied(10);
        }
        assert_eq!(s.next_bytes_estimate(), 2_800);
        s.started();
        s.taken(30, 2_700);
        assert_eq!(s.next_bytes_estimate(), 2_700);
    }
}
