//! The node's host in a server process: the real clock and disk, the peer transport, a
//! thread per snapshot, the watch hub and the simple tokens.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Instant;

use tally_mvcc::CommandResponse;
use tally_node::members::Members;
use tally_node::PeerMessage;
use tally_node::{Host, MembershipOutcome, ProposeOutcome, ReadOutcome, Retired, SnapshotJob};
use tally_proto::mvccpb::Event;
use tally_proto::tally_v1::Command;
use tally_raft::{NodeId, Snapshot};
use tally_storage::fs::RealFs;
use tokio::sync::oneshot;

use crate::node::simple_tokens::SimpleTokens;
use crate::node::watch_hub::WatchHub;
use crate::peer::transport::{self, Transport};
use crate::ui::events::UiPublisher;
use crate::zk::watches::ZkWatches;
use tally_node::observe::{NodeView, Observation};

/// File in the data directory recording that this member was removed.
pub const REMOVED_MARKER: &str = "REMOVED";

pub struct ServerHost {
    pub id: NodeId,
    pub transport: Transport,
    pub hub: Arc<WatchHub>,
    /// Simple tokens, registered as Authenticate entries apply (absent with JWT tokens).
    pub tokens: Option<Arc<SimpleTokens>>,
    pub data_dir: PathBuf,
    /// Where snapshot threads hand back what they wrote.
    pub snapshots_written: Sender<Result<Snapshot, String>>,
    /// The live view's publisher, with `--enable-ui`.
    pub ui: Option<UiPublisher>,
    /// ZooKeeper clients' watches, fired as the tree's changes apply.
    pub zk_watches: Arc<ZkWatches>,
}

impl ServerHost {
    /// Whether the live view's next whole-state view is due.
    pub fn view_due(&self, now: Instant) -> bool {
        self.ui.as_ref().is_some_and(|ui| ui.view_due(now))
    }

    pub fn publish_view(&mut self, view: &NodeView, now: Instant) {
        if let Some(ui) = &mut self.ui {
            ui.publish_view(view, now);
        }
    }
}

impl Host for ServerHost {
    type Fs = RealFs;
    type ProposeReply = oneshot::Sender<ProposeOutcome>;
    type ReadReply = oneshot::Sender<ReadOutcome>;
    type MembershipReply = oneshot::Sender<MembershipOutcome>;

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall_clock_ms(&self) -> i64 {
        crate::zk::unix_ms()
    }

    fn observing(&self) -> bool {
        self.ui.as_ref().is_some_and(|ui| ui.watched())
    }

    fn observe(&mut self, observation: Observation) {
        if let Some(ui) = &mut self.ui {
            ui.publish(&observation);
        }
    }

    fn send(&mut self, messages: &mut Vec<PeerMessage>) {
        self.transport.send_all(messages.drain(..));
    }

    fn forward(&mut self, leader: NodeId, commands: Vec<Command>) {
        self.transport.forward(leader, commands);
    }

    fn write_snapshot(&mut self, job: SnapshotJob<RealFs>) {
        let done = self.snapshots_written.clone();
        let spawned = std::thread::Builder::new().name("snapshot".into()).spawn(move || {
            yield_to_the_member();
            let _ = done.send(job.run());
        });
        if let Err(e) = spawned {
            self.fatal("starting the snapshot thread", &e);
        }
    }

    fn release(&mut self, retired: Retired<RealFs>) {
        let spawned = std::thread::Builder::new().name("snapshot-release".into()).spawn(move || {
            yield_to_the_member();
            retired.release()
        });
        if let Err(e) = spawned {
            // The bytes are freed here then, and the file stays until the next start.
            tracing::warn!("could not start a thread to release a retired snapshot: {e}");
        }
    }

    fn publish(&mut self, batches: Vec<(i64, Vec<Event>)>) {
        self.hub.publish(batches);
    }

    fn state_restored(&mut self) {
        self.hub.restored();
    }

    fn applied_fresh(&mut self, cmd: &Command, response: &CommandResponse) {
        if let Some(tokens) = &self.tokens {
            tokens.applied(cmd, response);
        }
        if let CommandResponse::Zk(applied) = response {
            self.zk_watches.fire(&applied.events);
            self.zk_session_moved(cmd, applied);
        }
    }

    fn members_changed(&mut self, members: &Members) {
        self.transport.set_peers(peer_addresses(members, self.id), &members.removed);
    }

    /// Remembers the removal in the data directory, then stops the process.
    fn removed(&mut self, reason: &str) {
        let marker = self.data_dir.join(REMOVED_MARKER);
        let _ = std::fs::write(&marker, format!("{reason}\n"));
        tracing::warn!("{reason}; stopping");
        eprintln!("tally: {reason}; this member stops. Delete its data directory to reuse the machine.");
        // Let the last messages (the leader handing over) leave before the process ends.
        std::thread::spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(500));
            std::process::exit(0);
        });
    }

    fn fatal(&mut self, what: &str, err: &dyn Display) -> ! {
        tracing::error!("{what}: {err}");
        eprintln!("tally: fatal: {what}: {err}");
        std::process::exit(2);
    }
}

pub fn peer_addresses(members: &Members, me: NodeId) -> BTreeMap<NodeId, SocketAddr> {
    members
        .members
        .values()
        .filter(|m| m.id != me)
        .filter_map(|m| m.peer_urls.first().and_then(|u| transport::url_to_addr(u).ok()).map(|a| (m.id, a)))
        .collect()
}

impl ServerHost {
    /// A session reattached somewhere: this member closes its other connections.
    fn zk_session_moved(&self, cmd: &Command, applied: &tally_zk::Applied) {
        use tally_proto::tally_v1::command::Op;
        let Some(Op::Zk(z)) = &cmd.op else { return };
        if let (Ok(tally_zk::ZkCommand::Attach { session, owner }), tally_zk::Outcome::Reply(Ok(_))) =
            (tally_zk::ZkCommand::decode(&z.command), &applied.outcome)
        {
            self.zk_watches.attached(session, owner);
        }
    }
}

/// How much a background thread's nice value is raised (see [`yield_to_the_member`]).
const BACKGROUND_NICE_INCREMENT: libc::c_int = 10;

/// Lowers the calling thread's priority: a snapshot is background work, and when the cores are
/// busy it should take what the member's driver and client threads leave, not share with them
/// (as RocksDB lowers its compaction threads'). At nice 10 a thread gets about a tenth of a
/// core that a thread at 0 also wants; on an idle core it runs at full speed. With 64 sessions
/// writing to a 700 MB tree this kept ~15% more writes per second while snapshots ran.
fn yield_to_the_member() {
    // SAFETY: `nice` only reads its argument; on Linux it changes the calling thread alone.
    // Raising one's own nice value needs no privilege; should it fail, the thread runs as is.
    unsafe { libc::nice(BACKGROUND_NICE_INCREMENT) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn this_threads_nice() -> libc::c_int {
        // SAFETY: reads the calling thread's nice value (`who` 0 is the caller on Linux).
        unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
    }

    #[test]
    fn a_background_thread_runs_at_a_lower_priority_and_the_caller_keeps_its_own() {
        let before = this_threads_nice();
        let background = std::thread::spawn(|| {
            yield_to_the_member();
            this_threads_nice()
        });
        assert_eq!(background.join().unwrap(), (before + BACKGROUND_NICE_INCREMENT).min(19));
        assert_eq!(this_threads_nice(), before, "only the calling thread is lowered");
    }
}
