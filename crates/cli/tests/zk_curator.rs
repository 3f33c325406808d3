//! ZooKeeper's Java client (3.9) and Apache Curator's recipes (5.9) against a 3-member Tally
//! cluster serving ZooKeeper's protocol: runs `tests/zk-java/run.sh` with this build's `tally`
//! binary. The script needs java (17+) and mvn, which fetches the client libraries; it starts
//! the cluster and runs the JUnit 5 suite in `tests/zk-java`: nodes, stats, versions, multi,
//! ephemerals ending with their session on every member, a session moved to another member with
//! its id and password, a dropped client's session expiring, one-shot watches; Curator's
//! InterProcessMutex, LeaderLatch, LeaderSelector, barriers, SharedCount, DistributedAtomicLong,
//! NodeCache, PathChildrenCache and TreeCache, each with one client per member; last, the leader
//! killed (kill -9) under Curator clients holding a lock, a latch and ephemerals, whose sessions
//! are kept and whose writes resume through another member.

mod support;

#[test]
fn curator_against_tally() {
    support::run_client_suite("tests/zk-java/run.sh");
}
