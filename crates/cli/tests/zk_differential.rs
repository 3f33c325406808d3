//! A differential test of ZooKeeper's protocol: runs `tests/zk/run-diff.sh` with this build's
//! `tally` binary. The script starts a 3-member Tally cluster serving ZooKeeper's protocol and a
//! real ZooKeeper 3.8 (`scripts/zk-ref`, Debian's package, installed when missing), and
//! `tests/zk/differential.py` sends both the same seeded random requests through kazoo's
//! connection, from three sessions each: every create mode, delete, exists, getData, setData,
//! getChildren(2), getAllChildrenNumber, multi, sync, getACL/setACL, addauth, session restarts,
//! with one-shot watches, and addWatch, checkWatches, removeWatches, multiRead, getEphemerals and
//! SetWatches(2) (also after moving the session to a new connection); every answer (error or
//! result and Stat, zxids by rank) and every watch event is compared. `TALLY_ZKDIFF_SEEDS`, `TALLY_ZKDIFF_OPS`, `TALLY_ZKDIFF_SEED` (one seed)
//! and `TALLY_ZKDIFF_KEEP_GOING` change the run (defaults: 50 seeds x 200 requests).

mod support;

#[test]
fn zookeeper_differential() {
    support::run_client_suite("tests/zk/run-diff.sh");
}
