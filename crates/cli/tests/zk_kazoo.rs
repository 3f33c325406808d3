//! kazoo, ZooKeeper's Python client, against a 3-member Tally cluster serving ZooKeeper's
//! protocol: runs `tests/zk/run.sh` with this build's `tally` binary. The script installs kazoo
//! and pytest with pip when missing, starts the cluster and runs `tests/zk/test_kazoo.py`:
//! nodes, versions and errors, sequential names, multi, ephemerals ending with their session on
//! every member, a session resumed on another member, digest ACLs, one-shot watches fired by
//! writes through another member, persistent and recursive watches (through `rawzk.py`, as
//! kazoo has no addWatch), kazoo's lock, counter, election, barrier and party recipes, a
//! dead client's session expiring (its ephemeral removed) and a pinging client's living on, and
//! the four-letter words; last, the leader killed (kill -9) under clients connected to it, whose
//! sessions, ephemerals and writes carry on through another member.

mod support;

#[test]
fn kazoo_against_tally() {
    support::run_client_suite("tests/zk/run.sh");
}
