//! A node's own snapshot, once adopted, leaves the previous snapshot's file and bytes to the
//! host to release. Released on the driver thread, a 325 MB snapshot's file, bytes and log
//! took a leader 100-300 ms, and its followers elected another leader after its snapshots.

mod support;

use std::path::Path;

use support::{start_node, Answer, TestHost};
use tally_consensus::Consensus;
use tally_node::Node;
use tally_proto::etcdserverpb::PutRequest;
use tally_proto::tally_v1::{command::Op, Command};
use tally_raft::Role;
use tally_storage::fs::FileSystem;
use tally_storage::simfs::SimFs;

fn put(seq: u64) -> Command {
    let put = PutRequest { key: format!("k{seq}").into_bytes(), value: vec![b'v'; 100], ..Default::default() };
    Command { client_id: 1, seq, op: Some(Op::Put(put)), ..Default::default() }
}

fn snapshot_files(fs: &SimFs) -> Vec<String> {
    let mut names: Vec<String> =
        fs.list(Path::new("/data")).unwrap().into_iter().filter(|n| n.ends_with(".snap")).collect();
    names.sort();
    names
}

/// Proposes puts until the node hands over a snapshot job, runs it and reports it written.
fn snapshot(node: &mut Node<TestHost>, seq: &mut u64) {
    while node.host().jobs.is_empty() {
        *seq += 1;
        node.propose(put(*seq), Answer::default());
        node.handle_readies();
    }
    let job = node.host_mut().jobs.pop().unwrap();
    node.snapshot_written(job.run());
}

#[test]
fn an_adopted_snapshot_leaves_the_previous_file_to_the_hosts_release() {
    let fs = SimFs::new();
    let mut node = start_node(&fs, &[1], 1, 5);
    while node.engine().role() != Role::Leader {
        node.tick();
        node.handle_readies();
    }

    let mut seq = 0;
    snapshot(&mut node, &mut seq);
    let first = snapshot_files(&fs);
    assert_eq!(first.len(), 1);
    snapshot(&mut node, &mut seq);
    let both = snapshot_files(&fs);
    assert_eq!(both.len(), 2, "the first snapshot's file waits for the host");

    let retired = std::mem::take(&mut node.host_mut().retired);
    for r in retired {
        r.release();
    }
    let second: Vec<String> = both.into_iter().filter(|n| !first.contains(n)).collect();
    assert_eq!(snapshot_files(&fs), second, "the first snapshot's file was released");
}
