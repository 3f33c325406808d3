//! What a node needs from the world it runs in.

use std::fmt::Display;
use std::time::Instant;

use tally_mvcc::CommandResponse;
use tally_proto::mvccpb::Event;
use tally_proto::tally_v1::Command;
use tally_raft::NodeId;
use tally_storage::fs::FileSystem;

use crate::engine::PeerMessage;
use crate::members::Members;
use crate::membership::MembershipOutcome;
use crate::observe::Observation;
use crate::outcomes::{ProposeOutcome, ReadOutcome};
use crate::snapshots::{Retired, SnapshotJob};

/// Where a waiting caller's answer goes.
pub trait Reply<T> {
    fn send(self, outcome: T);
    /// Whether the caller gave up (its answer would be dropped).
    fn is_closed(&self) -> bool {
        false
    }
}

impl<T> Reply<T> for tokio::sync::oneshot::Sender<T> {
    fn send(self, outcome: T) {
        // A caller that gave up no longer wants it.
        let _ = tokio::sync::oneshot::Sender::send(self, outcome);
    }

    fn is_closed(&self) -> bool {
        tokio::sync::oneshot::Sender::is_closed(self)
    }
}

/// The node's surroundings: time, disk, network, background work and the layers above.
pub trait Host {
    type Fs: FileSystem;
    type ProposeReply: Reply<ProposeOutcome>;
    type ReadReply: Reply<ReadOutcome>;
    type MembershipReply: Reply<MembershipOutcome>;

    fn now(&self) -> Instant;
    /// Milliseconds since the Unix epoch: the clock of ZooKeeper's ctime, mtime and TTLs.
    fn wall_clock_ms(&self) -> i64;
    /// Sends messages to peers, in order, leaving `messages` empty.
    fn send(&mut self, messages: &mut Vec<PeerMessage>);
    /// Hands client commands to the leader (etcd's MsgProp).
    fn forward(&mut self, leader: NodeId, commands: Vec<Command>);
    /// Encodes and writes `job` off the node's thread, then hands the result to
    /// [`crate::Node::snapshot_written`].
    fn write_snapshot(&mut self, job: SnapshotJob<Self::Fs>);
    /// Releases what a newer snapshot left behind, preferably off the node's thread.
    fn release(&mut self, retired: Retired<Self::Fs>) {
        retired.release();
    }
    /// The events of the entries applied in one Ready, by revision, for watchers.
    fn publish(&mut self, _batches: Vec<(i64, Vec<Event>)>) {}
    /// The state machine was replaced by a leader's snapshot: revisions were skipped, so
    /// watchers must catch up from its history (etcd's watchableStore.Restore).
    fn state_restored(&mut self) {}
    /// An entry applied for the first time here (not a retry of an applied request).
    fn applied_fresh(&mut self, _cmd: &Command, _response: &CommandResponse) {}
    /// The member table changed: connect to the new peers, drop the removed ones.
    fn members_changed(&mut self, _members: &Members) {}
    /// This member was removed from the cluster.
    fn removed(&mut self, _reason: &str) {}
    /// Whether anyone watches this node's inner workings; [`Host::observe`] is called only then.
    fn observing(&self) -> bool {
        false
    }
    /// Something the node did or saw, for whoever watches (the live view).
    fn observe(&mut self, _observation: Observation) {}
    /// The node cannot go on (its disk failed, a committed entry does not decode).
    fn fatal(&mut self, what: &str, err: &dyn Display) -> !;
}
