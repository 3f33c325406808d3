//! A member's caller that forwards its write to the leader itself, as `tally-server`'s
//! `NodeHandle::propose_now` does on a follower: the command goes straight to the leader, and
//! the driver is told, without a wake-up, to answer the caller when the entry applies. The
//! driver takes that in a later turn of its own, so here it may come before the entry returns,
//! after the entry applied, or after the leader changed.

use tally_consensus::Consensus;
use tally_proto::tally_v1::Command;
use tally_raft::NodeId;

use super::{Event, WholeSim};
use crate::kv::ClientId;

/// How late a member's driver may take a caller's await, at most, in network delays.
const AWAIT_DELAY_MAX_HOPS: u64 = 4;
/// How often it takes it that late rather than within one network delay.
const LATE_AWAIT_CHANCE: f64 = 0.1;

/// A caller's await, on its way to the member's driver.
pub(super) struct Await {
    pub node: NodeId,
    pub incarnation: u64,
    pub leader: NodeId,
    pub cmd_id: (u64, u64),
    /// Whose waiter answers: the client and its label for the request.
    pub client: ClientId,
    pub label: u64,
}

impl WholeSim {
    /// Proposes `cmd` at member `to` for the caller `(client, label)`: forwarded by the caller
    /// if the member follows a known leader, else through the node.
    pub(super) fn propose_at(&mut self, to: NodeId, cmd: Command, client: ClientId, label: u64) {
        let member = self.members.get_mut(&to).expect("exists");
        let incarnation = member.incarnation;
        let Some(leader) = member.node().engine().leader().filter(|&l| l != to) else {
            return self.call(to, |node| {
                let waiter = node.host().waiter(client, label);
                node.propose(cmd, waiter);
            });
        };
        self.coverage.forwarded_by_callers += 1;
        // Before the entry can return from the leader, nearly always (the driver's next turn);
        // rarely later (a turn's inputs are bounded), after the entry applied or a new leader.
        let hops = if self.rng.chance(LATE_AWAIT_CHANCE) { AWAIT_DELAY_MAX_HOPS } else { 1 };
        let latest = hops * self.net_delay();
        let delay = self.rng.range(0, latest);
        let cmd_id = (cmd.client_id, cmd.seq);
        let waiting = Await { node: to, incarnation, leader, cmd_id, client, label };
        self.schedule(self.now() + delay, Event::AwaitForwarded(Box::new(waiting)));
        if !self.link_drops(to, leader) {
            let at = self.now() + self.net_delay();
            self.schedule(at, Event::Forward { from: to, to: leader, commands: vec![cmd] });
        }
    }

    pub(super) fn await_forwarded(&mut self, a: Await) {
        if !self.running(a.node, a.incarnation) {
            return;
        }
        let sm = self.members.get_mut(&a.node).expect("exists").node().state_machine();
        let applied = sm.read().expect("sm lock").sessions().get(a.cmd_id.0).is_some_and(|s| s.seq >= a.cmd_id.1);
        if applied {
            self.coverage.awaits_after_apply += 1;
        }
        self.call(a.node, |node| {
            let waiter = node.host().waiter(a.client, a.label);
            node.await_forwarded(a.cmd_id, a.leader, waiter);
        });
    }
}
